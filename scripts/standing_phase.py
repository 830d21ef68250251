"""Where the lines at multiples of 150 Hz and 1.2 kHz come from: decoded phases locked to
the code pattern.

    python scripts/standing_phase.py --weights W --data data/heldout --max-clips 4

Two tables, over the first `--seconds` of each clip (whole-signal float32 passes):

1. Phase lock (`train.losses.coherence`: over 64 STFT frames, |sum of S_t e^(-2 pi i j t /
   8)| / sum of |S_t|, amplitude-weighted mean) of the true and the decoded spectrum, for
   the bins within 25 Hz of a frequency that turns by j/8 of a turn every frame (those
   at 150 j Hz modulo 1.2 kHz, from 600 Hz to 12 kHz), at their own rate j. The decoder
   works in patterns of 8 frames, one per code; a bin whose phase it locks to one of the
   pattern's rates is repeated with the pattern, and the inverse STFT makes it a line at a
   multiple of 150 Hz (j = 0: the phase stands, a line at a multiple of 1.2 kHz).
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
from apcodec_cli.evaluate.cli import clip_study_options
from apcodec_cli.evaluate.run import collect_clips, load_clip
from apcodec_cli.models.weights import load
from apcodec_cli.nn import spectral
from apcodec_cli.runtime import set_threads
from apcodec_cli.train.losses import COHERENCE_FRAMES, coherence
from apcodec_cli.units import SAMPLE_RATE as RATE

BANDS_HZ = (0, 750, 1500, 3000, 6000, 12000, 24000)  # table 2


def _weighted_coherence(spec: torch.Tensor, period: int) -> np.ndarray:
    """(n_bins, period) amplitude-weighted mean coherence of a (1, n_bins, F) complex
    spectrum at each rate of the pattern."""
    value, mass = coherence(spec, period)
    weighted = (value * mass.unsqueeze(-1)).sum(-2) / mass.sum(-1, keepdim=True).clamp(min=1e-9)
    return weighted[0].numpy()


@torch.inference_mode()
def clip_rows(model, path: str, seconds: float) -> tuple[np.ndarray, np.ndarray, list[float]]:
    """(true coherence, decoded coherence) per bin, and the hop lines per band of table 2."""
    config = model.config
    audio = load_clip(path, seconds)
    audio = audio[: len(audio) - len(audio) % config.samples_per_frame]
    wav = torch.from_numpy(np.ascontiguousarray(audio)).view(1, 1, -1)
    log_amp, phase = spectral.analyse(wav, config)
    amp, decoded = model.decoder(model.quantizer(model.encoder(log_amp, phase)).latent)
    true_c = _weighted_coherence(spectral.spectrum(log_amp, phase), config.downsample)
    decoded_c = _weighted_coherence(spectral.spectrum(amp, decoded), config.downsample)
    hz = torch.arange(config.n_bins) * RATE / config.n_fft
    lines = []
    for low, high in zip(BANDS_HZ[:-1], BANDS_HZ[1:]):
        band = ((hz >= low) & (hz < high))[:, None]
        mixed = torch.where(band, decoded, phase)
        out = spectral.synthesise(amp, mixed, config).flatten().double().numpy()
        lines.append(float(artefacts.hop_lines_db(audio, out, RATE, config.hop_length).max()))
    return true_c, decoded_c, lines


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@clip_study_options(default_clips=4)
def main(weights_path: str, data: str, category: str | None, max_clips: int, seconds: float,
         threads: int, quiet: bool) -> None:
    """Print the decoded phase's lock to the code pattern, and each band's lines."""
    set_threads(threads)
    model = load(weights_path).model.float().eval()
    config = model.config
    frame_rate = RATE / config.hop_length
    clips = collect_clips(data, category, max_clips)
    rows = [clip_rows(model, clip.path, seconds)
            for clip in tqdm(clips, unit="clip", file=sys.stderr, disable=quiet)]
    true_c, decoded_c, lines = zip(*rows)
    true_m, decoded_m = np.mean(true_c, axis=0), np.mean(decoded_c, axis=0)
    hz = np.arange(config.n_bins) * RATE / config.n_fft
    period = config.downsample
    step = frame_rate / period  # the code frame rate, 150 Hz
    rate = np.round(hz / step).astype(int) % period
    near = (np.abs(hz - step * np.round(hz / step)) <= 25) & (hz > 600) & (hz < 12_000)
    click.echo(f"weights {weights_path}, {len(clips)} clips of {data}, first {seconds:g} s\n")
    click.echo(f"### phase lock at the {period} rates of the code pattern "
               f"({COHERENCE_FRAMES} frames)\n")
    click.echo(f"| rate j (turns / {period} a frame) | bins at | true | decoded |\n"
               "|---:|---|---:|---:|")
    for j in range(period):
        pick = near & (rate == j)
        click.echo(f"| {j} | {step * j:g} Hz + k x {frame_rate:g} Hz | "
                   f"{true_m[pick, j].mean():.2f} | {decoded_m[pick, j].mean():.2f} |")
    click.echo("\n### hop lines (dB above the source) with the decoded phase in one band only\n")
    click.echo("| band Hz | hop lines dB |\n|---|---:|")
    for i, (low, high) in enumerate(zip(BANDS_HZ[:-1], BANDS_HZ[1:])):
        click.echo(f"| {low}-{high} | {np.mean([row[i] for row in lines]):.1f} |")


if __name__ == "__main__":
    main()
