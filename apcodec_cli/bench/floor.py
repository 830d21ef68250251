"""The compute floor: floating-point operations per second of audio over matmul throughput.

FLOPs are counted by `torch.utils.flop_counter.FlopCounterMode` (matrix products and
convolutions; elementwise work and FFTs are not counted, so the floor is a true lower bound).
Throughput is a timed large float32 matmul with a given thread count, on the same machine
in the same run.
"""

from __future__ import annotations

import dataclasses
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from ..nn.model import APCodec


@dataclasses.dataclass(frozen=True)
class ModelFlops:
    """FLOPs to encode and to decode one second of audio, whole-signal and as chunked.

    `*_chunked` count what the chunked engine computes: each chunk of `chunk_frames` frames
    is processed with `context_frames` more on each side.
    """

    encode: float
    decode: float
    encode_chunked: float
    decode_chunked: float


def _count(fn, *args) -> float:
    with FlopCounterMode(display=False) as counter:
        fn(*args)
    return float(counter.get_total_flops())


def model_flops(model: APCodec, chunk_frames: int = 150, context_frames: int = 16) -> ModelFlops:
    """Count the FLOPs of `model` per second of audio (one channel)."""
    config = model.config
    device = next(model.parameters()).device
    frames = round(config.frame_rate)  # frames in one second
    window = chunk_frames + 2 * context_frames
    per_window_seconds = chunk_frames / config.frame_rate  # audio one window delivers
    with torch.inference_mode():
        counts = []
        for n in (frames, window):
            wav = torch.zeros(1, 1, n * config.samples_per_frame, device=device)
            codes = model.encode(wav)
            counts.append((_count(model.encode, wav), _count(model.decode, codes)))
    (enc, dec), (enc_w, dec_w) = counts
    scale = 1.0 / (frames / config.frame_rate)
    return ModelFlops(enc * scale, dec * scale, enc_w / per_window_seconds,
                      dec_w / per_window_seconds)


def matmul_flops_per_second(threads: int | None = None, device: str = "cpu", size: int = 2048,
                            min_seconds: float = 0.5) -> float:
    """Best measured float32 throughput (FLOP/s) of a size x size matmul.

    On a CPU with `threads` intra-op threads (restored afterwards); on CUDA without TF32.
    """
    old_threads = torch.get_num_threads()
    old_tf32 = torch.backends.cuda.matmul.allow_tf32
    if threads:
        torch.set_num_threads(threads)
    torch.backends.cuda.matmul.allow_tf32 = False
    try:
        gen = torch.Generator(device="cpu").manual_seed(0)
        a = torch.randn(size, size, generator=gen).to(device)
        b = torch.randn(size, size, generator=gen).to(device)
        sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
        out = torch.empty(size, size, device=device)
        torch.mm(a, b, out=out)  # warm-up
        sync()
        best, spent = float("inf"), 0.0
        while spent < min_seconds or best == float("inf"):
            start = time.perf_counter()
            torch.mm(a, b, out=out)
            sync()
            elapsed = time.perf_counter() - start
            best, spent = min(best, elapsed), spent + elapsed
        return 2.0 * size ** 3 / best
    finally:
        torch.set_num_threads(old_threads)
        torch.backends.cuda.matmul.allow_tf32 = old_tf32
