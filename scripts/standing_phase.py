"""Where the buzz at multiples of the frame rate comes from: bins whose decoded phase stands.

    python scripts/standing_phase.py --weights W --data data/heldout --max-clips 4

Two tables, over the first `--seconds` of each clip (whole-signal float32 passes):

1. Phase coherence (`train.losses.coherence`: |sum of S| / sum of |S| over 64 STFT frames,
   amplitude-weighted mean) of the true and the decoded spectrum, by distance of the bin
   from the nearest multiple of the frame rate (1.2 kHz at a 40-sample hop), bins from
   600 Hz to 12 kHz. A decoder that leaves the phase of a bin standing where the true
   one turns slowly repeats that bin in every frame: the inverse STFT makes it a line at
   the multiple.
2. The hop lines (`evaluate.artefacts.hop_lines_db`, the largest of the first six) when
   only one band takes the decoded phase and every other bin keeps the true one: which
   bins make the lines.
"""

from __future__ import annotations

import sys

import click
import numpy as np
import torch
from tqdm import tqdm

from apcodec_cli.evaluate import artefacts
from apcodec_cli.evaluate.run import collect_clips, load_clip
from apcodec_cli.models.weights import load
from apcodec_cli.nn import spectral
from apcodec_cli.runtime import set_threads
from apcodec_cli.train.losses import coherence
from apcodec_cli.units import SAMPLE_RATE as RATE

OFFSETS_HZ = range(-600, 601, 50)  # rows of table 1, each +-25 Hz
BANDS_HZ = (0, 750, 1500, 3000, 6000, 12000, 24000)  # table 2


def _weighted_coherence(spec: torch.Tensor) -> np.ndarray:
    """(n_bins,) amplitude-weighted mean coherence of a (1, n_bins, F) complex spectrum."""
    value, mass = coherence(spec)
    return ((value * mass).sum(-1) / mass.sum(-1).clamp(min=1e-9))[0].numpy()


@torch.inference_mode()
def clip_rows(model, path: str, seconds: float) -> tuple[np.ndarray, np.ndarray, list[float]]:
    """(true coherence, decoded coherence) per bin, and the hop lines per band of table 2."""
    config = model.config
    audio = load_clip(path, seconds)
    audio = audio[: len(audio) - len(audio) % config.samples_per_frame]
    wav = torch.from_numpy(np.ascontiguousarray(audio)).view(1, 1, -1)
    log_amp, phase = spectral.analyse(wav, config)
    amp, decoded = model.decoder(model.quantizer(model.encoder(log_amp, phase)).latent)
    true_c = _weighted_coherence(spectral.spectrum(log_amp, phase))
    decoded_c = _weighted_coherence(spectral.spectrum(amp, decoded))
    hz = torch.arange(config.n_bins) * RATE / config.n_fft
    lines = []
    for low, high in zip(BANDS_HZ[:-1], BANDS_HZ[1:]):
        band = ((hz >= low) & (hz < high))[:, None]
        mixed = torch.where(band, decoded, phase)
        out = spectral.synthesise(amp, mixed, config).flatten().double().numpy()
        lines.append(float(artefacts.hop_lines_db(audio, out, RATE, config.hop_length).max()))
    return true_c, decoded_c, lines


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--weights", "weights_path", required=True, type=click.Path(dir_okay=False))
@click.option("--data", required=True, type=click.Path(exists=True, file_okay=False),
              help="Corpus folder (validation split), held-out folder, or one --category.")
@click.option("--category", type=click.Choice(["speech", "music"]), default=None)
@click.option("--max-clips", type=click.IntRange(min=1), default=4, show_default=True,
              help="Clips per category.")
@click.option("--seconds", type=click.FloatRange(min=1), default=10.0, show_default=True)
@click.option("--threads", type=click.IntRange(min=0), default=0, help="torch threads (0: default).")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
def main(weights_path: str, data: str, category: str | None, max_clips: int, seconds: float,
         threads: int, quiet: bool) -> None:
    """Print the decoded phase's coherence near the frame-rate lines, and each band's lines."""
    set_threads(threads)
    model = load(weights_path).model.float().eval()
    config = model.config
    frame_rate = RATE / config.hop_length
    clips = collect_clips(data, category, max_clips)
    true_c, decoded_c, lines = [], [], []
    for clip in tqdm(clips, unit="clip", file=sys.stderr, disable=quiet):
        t, d, l = clip_rows(model, clip.path, seconds)
        true_c.append(t), decoded_c.append(d), lines.append(l)
    true_m, decoded_m = np.mean(true_c, axis=0), np.mean(decoded_c, axis=0)
    hz = np.arange(config.n_bins) * RATE / config.n_fft
    offset = hz - frame_rate * np.round(hz / frame_rate)
    click.echo(f"weights {weights_path}, {len(clips)} clips of {data}, first {seconds:g} s\n")
    click.echo(f"### phase coherence over 64 frames, by distance from a multiple of "
               f"{frame_rate:g} Hz\n")
    click.echo("| distance Hz | true | decoded |\n|---:|---:|---:|")
    for centre in OFFSETS_HZ:
        pick = (np.abs(offset - centre) <= 25) & (hz > 600) & (hz < 12_000)
        click.echo(f"| {centre:+d} | {true_m[pick].mean():.2f} | {decoded_m[pick].mean():.2f} |")
    click.echo("\n### hop lines (dB above the source) with the decoded phase in one band only\n")
    click.echo("| band Hz | hop lines dB |\n|---|---:|")
    for i, (low, high) in enumerate(zip(BANDS_HZ[:-1], BANDS_HZ[1:])):
        click.echo(f"| {low}-{high} | {np.mean([row[i] for row in lines]):.1f} |")


if __name__ == "__main__":
    main()
