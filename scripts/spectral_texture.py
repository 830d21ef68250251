"""How smooth the decoded amplitude spectrum is, against the true one.

    python scripts/spectral_texture.py --weights weights/apcodec.pt --data data/corpus

A decoder trained on mean-square losses predicts the average of what the codes allow: an
amplitude spectrum smoother, frame to frame and bin to bin, than the signal's. For each
validation clip (first `--seconds`, whole-signal float32 pass) this prints, in dB and over
the bins within `--range` dB of the clip's peak, the mean absolute change of the
log-amplitude from one STFT frame to the next and from one bin to the next, for the true
spectrum, the decoded one, and the spectrum of the output waveform (the inverse STFT of the
decoded amplitude and phase, analysed again: what a listener gets), and the mean
decoded-minus-true difference (its bias). Then the mean of each over the clips of a
category. Results (2026-12-05): `git show ad876bf:docs/training.md`.
"""

from __future__ import annotations

import math

import click
import numpy as np
import torch

from apcodec_cli.evaluate.run import collect_clips, load_clip
from apcodec_cli.io.weights import load, set_threads
from apcodec_cli.nn import spectral

DB = 20 / math.log(10)  # natural log of an amplitude -> dB


def texture(true_db: np.ndarray, decoded_db: np.ndarray, range_db: float,
            output_db: np.ndarray | None = None) -> dict[str, float]:
    """Texture figures of (n_bins, F) log-amplitude spectra in dB (see module doc); the
    output's figures only with `output_db`."""
    loud = true_db > true_db.max() - range_db
    frames, bins = loud[:, 1:] & loud[:, :-1], loud[1:] & loud[:-1]
    spectra = {"true": true_db, "decoded": decoded_db}
    if output_db is not None:
        spectra["output"] = output_db
    figures = {}
    for name, db in spectra.items():
        figures[f"{name}_frame"] = float(np.abs(np.diff(db, axis=1))[frames].mean())
        figures[f"{name}_bin"] = float(np.abs(np.diff(db, axis=0))[bins].mean())
    figures["bias"] = float((decoded_db - true_db)[loud].mean())
    return figures


def _cells(figures: dict[str, float], keys: tuple[str, ...]) -> str:
    """Markdown cells of one table row (the bias signed)."""
    return " | ".join(f"{figures[k]:+.2f}" if k == "bias" else f"{figures[k]:.2f}" for k in keys)


@click.command()
@click.option("--weights", "weights_path", required=True, type=click.Path(exists=True))
@click.option("--data", required=True, type=click.Path(exists=True),
              help="A corpus folder (its validation split is used).")
@click.option("--max-clips", default=8, show_default=True, help="Clips per category.")
@click.option("--seconds", default=10.0, show_default=True)
@click.option("--range", "range_db", default=60.0, show_default=True,
              help="Count the bins within this many dB of the clip's peak.")
@click.option("--threads", default=2, show_default=True)
def main(weights_path: str, data: str, max_clips: int, seconds: float, range_db: float,
         threads: int) -> None:
    set_threads(threads)
    model = load(weights_path).model
    spf = model.config.samples_per_frame
    keys = ("true_frame", "decoded_frame", "output_frame", "true_bin", "decoded_bin",
            "output_bin", "bias")
    print("| category | clip | frame-to-frame true | decoded | output "
          "| bin-to-bin true | decoded | output | bias |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for category in ("music", "speech"):
        rows = []
        for clip in collect_clips(data, category, max_clips):
            audio = load_clip(clip.path, seconds)
            wav = torch.from_numpy(np.ascontiguousarray(audio[: len(audio) - len(audio) % spf]))
            with torch.inference_mode():
                log_amp, _ = spectral.analyse(wav.view(1, 1, -1), model.config)
                out = model(wav.view(1, 1, -1))  # encode, quantize, decode, re-synthesise
                output_amp, _ = spectral.analyse(out.wav[..., : wav.shape[-1]], model.config)
            n = min(log_amp.shape[-1], out.log_amp.shape[-1], output_amp.shape[-1])
            row = texture(log_amp[0, :, :n].numpy() * DB, out.log_amp[0, :, :n].numpy() * DB,
                          range_db, output_amp[0, :, :n].numpy() * DB)
            rows.append(row)
            print(f"| {category} | {clip.name} | {_cells(row, keys)} |")
        mean = {k: float(np.mean([r[k] for r in rows])) for k in keys}
        print(f"| **{category}** | mean of {len(rows)} | {_cells(mean, keys)} |")


if __name__ == "__main__":
    main()
