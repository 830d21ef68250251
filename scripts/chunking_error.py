"""Measure how far chunked coding is from whole-signal coding, per context size.

    python scripts/chunking_error.py --weights weights/apcodec-r4-7aea9d63b2b27a9b.pt AUDIO [AUDIO ...]

For each context size it prints: the share of codes identical to those of one whole-signal
forward pass, and the SNR of the chunk-decoded audio against the whole-signal decode of the
same codes (so encoder and decoder effects are reported separately). Results for the
shipped weights are in docs/chunking.md.
"""

from __future__ import annotations

import click
import numpy as np
import torch

from apcodec_cli.codec import Codec
from apcodec_cli.format.audio import read_blocks
from apcodec_cli.models.weights import load


def _snr(reference: np.ndarray, test: np.ndarray) -> float:
    noise = np.sum((reference - test) ** 2)
    return float("inf") if noise == 0 else float(10 * np.log10(np.sum(reference**2) / noise))


@click.command()
@click.argument("audio", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--weights", "weights_path", required=True, type=click.Path(exists=True))
@click.option("--contexts", default="0,4,8,16,32", show_default=True)
@click.option("--seconds", default=10.0, show_default=True, help="Audio taken from each file.")
def main(audio: tuple[str, ...], weights_path: str, contexts: str, seconds: float) -> None:
    loaded = load(weights_path)
    spf = loaded.model.config.samples_per_frame
    click.echo("| context (frames) | codes equal to whole-signal | decoder SNR vs whole (dB) |")
    click.echo("|---|---|---|")
    signals = []
    for path in audio:
        _, _, blocks = read_blocks(path, loaded.model.config.sample_rate, mono=True)
        wav = np.concatenate(list(blocks), axis=1)[:, : int(seconds * 48000)]
        signals.append(np.pad(wav, ((0, 0), (0, -wav.shape[1] % spf))))
    with torch.inference_mode():
        whole = [loaded.model.encode(torch.from_numpy(w)[None]) for w in signals]
        whole_audio = [loaded.model.decode(c)[0].numpy() for c in whole]
    for context in (int(c) for c in contexts.split(",")):
        codec = Codec(loaded, context_frames=context)
        equal, snrs = [], []
        for wav, codes, reference in zip(signals, whole, whole_audio):
            equal.append(np.mean(codec.encode(wav) == codes.numpy()))
            snrs.append(_snr(reference, codec.decode(codes.numpy())))
        click.echo(f"| {context} | {100 * np.mean(equal):.2f} % | {np.mean(snrs):.1f} |")


if __name__ == "__main__":
    main()
