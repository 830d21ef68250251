"""Latency and per-frame compute of the streamable model, on one CPU thread.

    python scripts/streaming_latency.py [--weights weights/apcodec-s-r3-15e6d42560dee695.pt] [--seconds 10]

Prints (markdown):
* the algorithmic latency, computed from the configuration and measured: an impulse is
  streamed in one code frame (320 samples) at a time, and the delay is the input that
  had to arrive before the output sample at the impulse's position was released;
* the compute time per 320-sample frame of the encoder, of the decoder (a sender and a
  receiver each run one) and of both on the same core (mean, median, 95th percentile,
  worst) on one thread, and the real-time factor each leaves (6.67 ms / mean).

Random weights cost the same compute as trained ones; without --weights the untrained
apcodec-s-48k-small preset is timed.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from apcodec_cli import runtime
from apcodec_cli.models import weights
from apcodec_cli.nn.config import get_preset
from apcodec_cli.nn.model import APCodec
from apcodec_cli.engine.stream import StreamDecoder, StreamEncoder, algorithmic_latency


def measured_latency(model: APCodec, position: int) -> int:
    """Input samples that must arrive after sample `position` before it is decoded."""
    spf = model.config.samples_per_frame
    encoder, decoder = StreamEncoder(model), StreamDecoder(model)
    signal = torch.zeros(1, position + 8 * spf)
    signal[0, position] = 0.5
    released = 0
    for start in range(0, signal.shape[1], spf):
        released += decoder.push(encoder.push(signal[:, start:start + spf])).shape[-1]
        if released > position:
            return start + spf - 1 - position
    raise RuntimeError("the impulse never came out")


def frame_times(model: APCodec, seconds: float) -> tuple[list[float], list[float]]:
    """Seconds of encoder and of decoder compute for each 320-sample frame of noise."""
    spf = model.config.samples_per_frame
    encoder, decoder = StreamEncoder(model), StreamDecoder(model)
    audio = 0.1 * torch.randn(1, int(seconds * model.config.sample_rate) // spf * spf)
    enc, dec = [], []
    for start in range(0, audio.shape[1], spf):
        tic = time.perf_counter()
        codes = encoder.push(audio[:, start:start + spf])
        toc = time.perf_counter()
        decoder.push(codes)
        enc.append(toc - tic)
        dec.append(time.perf_counter() - toc)
    return enc[10:], dec[10:]  # the first frames include one-off allocations


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", help="streamable weights (default: untrained preset)")
    parser.add_argument("--seconds", type=float, default=10.0, help="audio timed")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    runtime.set_threads(args.threads)
    model = weights.load(args.weights).model if args.weights else \
        APCodec(get_preset("apcodec-s-48k-small")).eval()
    config = model.config
    rate, spf = config.sample_rate, config.samples_per_frame
    worst = max(measured_latency(model, p) for p in range(spf, 2 * spf, 8))
    enc, dec = frame_times(model, args.seconds)
    frame_ms = 1000 * spf / rate
    print(f"model {config.name}, {sum(p.numel() for p in model.parameters()) / 1e6:.2f} M "
          f"parameters, {args.threads} thread(s), torch {torch.__version__}\n")
    print("| latency | samples | ms |\n|---|---|---|")
    print(f"| algorithmic (configuration) | {algorithmic_latency(config)} | "
          f"{1000 * algorithmic_latency(config) / rate:.2f} |")
    print(f"| algorithmic (measured, worst case) | {worst} | {1000 * worst / rate:.2f} |")
    print(f"\ncompute per {spf}-sample frame ({frame_ms:.2f} ms of audio), "
          f"{len(enc)} frames:\n")
    print("| part | mean | median | 95th pct. | worst | real-time factor |")
    print("|---|---|---|---|---|---|")
    for name, times in (("encoder", enc), ("decoder", dec),
                        ("both, one core", [a + b for a, b in zip(enc, dec)])):
        times = sorted(times)
        mean = statistics.fmean(times)
        print(f"| {name} | {1000 * mean:.2f} ms | {1000 * statistics.median(times):.2f} ms | "
              f"{1000 * times[int(0.95 * len(times))]:.2f} ms | {1000 * times[-1]:.2f} ms | "
              f"{frame_ms / 1000 / mean:.1f}x |")


if __name__ == "__main__":
    main()
