"""Band by band, how far the decoded output's energy is from the source's.

    python scripts/band_errors.py --weights weights/apcodec.pt --data data/corpus

For each validation clip (first `--seconds`, whole-signal float32 pass through the model)
the STFT energy of source and output is summed into `--bands` log-spaced bands from 50 Hz
to 24 kHz and averaged over blocks of 8 frames (53 ms). Over the blocks where the source's
band is within `--range` dB of the clip's loudest band, it takes the output-minus-source
difference in dB. Per category it prints, for each band, the mean difference (the bias),
its spread over clips, the mean absolute difference, and how much more (+) or less (-) the
output's level varies over time than the source's (difference of standard deviations).
Results (2026-12-05): `git show ad876bf:docs/training.md`.
"""

from __future__ import annotations

import warnings

import click
import numpy as np
import torch

from apcodec_cli.evaluate.run import collect_clips, load_clip
from apcodec_cli.io.weights import load, set_threads
from apcodec_cli.nn import spectral
from apcodec_cli.units import SAMPLE_RATE


def band_edges(n_bins: int, bands: int) -> np.ndarray:
    """Bin indices of `bands` log-spaced bands from 50 Hz to Nyquist (duplicates merged)."""
    hz_per_bin = SAMPLE_RATE / 2 / (n_bins - 1)
    edges = np.unique(np.round(np.geomspace(50, SAMPLE_RATE / 2, bands + 1) / hz_per_bin).astype(int))
    edges[-1] = n_bins
    return edges


def band_db(energy: np.ndarray, edges: np.ndarray, block: int = 8) -> np.ndarray:
    """(n_bins, F) energy -> (bands, F // block) band energy in dB."""
    summed = np.stack([energy[a:b].sum(0) for a, b in zip(edges[:-1], edges[1:])])
    frames = summed.shape[1] // block * block
    return 10 * np.log10(summed[:, :frames].reshape(len(summed), -1, block).mean(-1) + 1e-12)


@click.command()
@click.option("--weights", "weights_path", required=True, type=click.Path(exists=True))
@click.option("--data", required=True, type=click.Path(exists=True, file_okay=False))
@click.option("--max-clips", default=16, show_default=True, help="Clips per category.")
@click.option("--seconds", default=10.0, show_default=True)
@click.option("--bands", default=15, show_default=True)
@click.option("--range", "range_db", default=60.0, show_default=True)
@click.option("--threads", default=2, show_default=True)
def main(weights_path: str, data: str, max_clips: int, seconds: float, bands: int,
         range_db: float, threads: int) -> None:
    set_threads(threads)
    model = load(weights_path).model.float().eval()
    config = model.config
    edges = band_edges(config.n_bins, bands)
    hz = SAMPLE_RATE / 2 / (config.n_bins - 1)
    for category in ("music", "speech"):
        bias, absolute, spread = [], [], []
        for clip in collect_clips(data, category, max_clips):
            audio = load_clip(clip.path, seconds)
            audio = audio[: len(audio) - len(audio) % config.samples_per_frame]
            wav = torch.from_numpy(np.ascontiguousarray(audio)).view(1, 1, -1)
            with torch.inference_mode():
                source = spectral.stft(wav, config).abs().square()[0].numpy()
                output = spectral.stft(model(wav).wav[..., : wav.shape[-1]], config)
                output = output.abs().square()[0].numpy()
            true, out = band_db(source, edges), band_db(output, edges)
            loud = true > true.max() - range_db
            diff = np.where(loud, out - true, np.nan)
            with warnings.catch_warnings():  # a band never loud enough gives NaN, on purpose
                warnings.simplefilter("ignore", RuntimeWarning)
                bias.append(np.nanmean(diff, 1))
                absolute.append(np.nanmean(np.abs(diff), 1))
                spread.append(np.nanstd(np.where(loud, out, np.nan), 1)
                              - np.nanstd(np.where(loud, true, np.nan), 1))
        bias, absolute, spread = map(np.array, (bias, absolute, spread))
        print(f"\n{category} ({len(bias)} clips)\n")
        print("| band (Hz) | output - source (dB) | spread over clips | mean abs. | "
              "level variation, output - source |")
        print("|---|---:|---:|---:|---:|")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            for i, (a, b) in enumerate(zip(edges[:-1], edges[1:])):
                print(f"| {a * hz:.0f}-{b * hz:.0f} | {np.nanmean(bias[:, i]):+.2f} | "
                      f"{np.nanstd(bias[:, i]):.2f} | {np.nanmean(absolute[:, i]):.2f} | "
                      f"{np.nanmean(spread[:, i]):+.2f} |")


if __name__ == "__main__":
    main()
