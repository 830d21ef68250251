"""Where the loss comes from: resynthesis from mixes of true and decoded spectra.

    python scripts/diagnose.py --weights W --data data/corpus --max-clips 8

For each validation clip (whole-signal float32 pass, no chunking, no file) the waveform is
rebuilt by the inverse STFT from these pairs of (log-amplitude, phase) spectra:

    system              amplitude             phase                   isolates
    codec               decoded (codes)       decoded (codes)         the product
    unquantized         decoded (latent)      decoded (latent)        the quantizer's cost
    true-amp            true                  decoded (codes)         the phase decoder
    true-phase          decoded (codes)       true                    the amplitude decoder
    true-amp+rand-phase true                  uniform random          what phase alone is worth
    analysis-synthesis  true                  true                    the STFT round trip

and scored with the metrics of `apcodec eval` (ViSQOL, LSD, log-mel; PESQ-WB and ESTOI for
speech) plus the level error in dB. If `unquantized` is no better than `codec`, the decoder
(not the bitrate) is what limits quality; `true-amp` and `true-phase` say which half of the
decoder costs more. The tables carry the artefacts of `evaluate.artefacts` too (hop and code
lines, the quiet floor, the bandwidth lost); a second table sets the peak measures beside
their chance level (`artefacts.peak_spread`: what the largest of six bins drawn at random
reads, and the mean and spread of the excess prominence over all bins), and a last table
the level and pitch of sines at 1, 2 and 8 kHz and of a sweep through the codec.
"""

from __future__ import annotations

import math
import sys
from typing import Any, Sequence

import click
import numpy as np
import torch
from tqdm import tqdm

from apcodec_cli.models.weights import load
from apcodec_cli.runtime import set_threads
from apcodec_cli.nn import spectral
from apcodec_cli.nn.model import APCodec
from apcodec_cli.units import SAMPLE_RATE as RATE
from apcodec_cli.evaluate import artefacts, metrics, report
from apcodec_cli.evaluate.cli import clip_study_options
from apcodec_cli.codec import Codec
from apcodec_cli.format.atomic import scratch_dir
from apcodec_cli.evaluate.run import Clip, apcodec_round_trip, collect_clips, load_clip
from apcodec_cli.train.validation import tone_scores

Spectra = tuple[torch.Tensor, torch.Tensor]  # log-amplitude, phase, each (1, n_bins, F)


def _systems(model: APCodec, wav: torch.Tensor, seed: int) -> dict[str, Spectra]:
    """The (log-amplitude, phase) pair of every system for one (1, 1, T) waveform."""
    config = model.config
    log_amp, phase = spectral.analyse(wav, config)
    latent = model.encoder(log_amp, phase)
    amp_q, phase_q = model.decoder(model.quantizer(latent).latent)
    amp_u, phase_u = model.decoder(latent)
    g = torch.Generator().manual_seed(seed)
    random_phase = (torch.rand(phase.shape, generator=g) * 2 - 1) * math.pi
    return {"codec": (amp_q, phase_q), "unquantized": (amp_u, phase_u),
            "true-amp": (log_amp, phase_q), "true-phase": (amp_q, phase),
            "true-amp+rand-phase": (log_amp, random_phase),
            "analysis-synthesis": (log_amp, phase)}


@torch.inference_mode()
def diagnose_clip(model: APCodec, clip: Clip, seconds: float, seed: int = 0) -> list[dict]:
    """One row per system for `clip`: {clip, category, system, metric: value, level}."""
    audio = load_clip(clip.path, seconds)
    spf = model.config.samples_per_frame
    audio = audio[: len(audio) - len(audio) % spf]
    wav = torch.from_numpy(np.ascontiguousarray(audio)).view(1, 1, -1)
    rows = []
    for system, (amp, phase) in _systems(model, wav, seed).items():
        out = spectral.synthesise(amp, phase, model.config).flatten().double().numpy()
        row: dict[str, Any] = {"clip": clip.name, "category": clip.category, "system": system}
        row.update(metrics.score(audio.astype(np.float64), out, RATE,
                                 speech=clip.category == "speech"))
        spread = artefacts.peak_spread(audio.astype(np.float64), out, RATE)
        row.update({f"spread_{k}": v for k, v in spread.items()})
        rows.append(row)
    return rows


def markdown(rows: list[dict]) -> str:
    """One table per category: each system's metrics (mean ± standard error) and level."""
    columns = [(k, h, d) for k, h, d in report.COLUMNS if k != "kbps"]
    return _tables(rows, columns, "{category} ({clips} clips)")


PEAK_COLUMNS = (("hop_peaks", "hop peaks dB", 2), ("off_peaks", "off peaks dB", 2),
                ("spread_random_max", "six random bins dB", 2),
                ("spread_mean", "mean excess dB", 2), ("spread_std", "excess sd dB", 2))


def peaks_markdown(rows: list[dict]) -> str:
    """One table per category: the peak measures beside their chance level
    (`artefacts.peak_spread`). A line shows as hop peaks above the six random bins."""
    return _tables(rows, PEAK_COLUMNS, "{category}: peaks against their chance level")


def _tables(rows: list[dict], columns: Sequence[tuple[str, str, int]], title: str) -> str:
    """One table per category of `rows`, headed `title` (formatted with the category and
    its number of clips): a line per system, a cell per (key, header, decimals) column
    that any of the category's rows has, the mean ± standard error over its clips."""
    out = []
    for category in sorted({r["category"] for r in rows}):
        mine = [r for r in rows if r["category"] == category]
        present = [(k, h, d) for k, h, d in columns if any(k in r for r in mine)]
        clips = len({r["clip"] for r in mine})
        out.append(f"### {title.format(category=category, clips=clips)}\n")
        out.append("| system | " + " | ".join(h for _, h, _ in present) + " |")
        out.append("|---|" + "---:|" * len(present))
        for system in dict.fromkeys(r["system"] for r in mine):
            cells = [report.format_stat(report.mean_se(r.get(k) for r in mine
                                                       if r["system"] == system), d, clips)
                     for k, _, d in present]
            out.append(f"| {system} | " + " | ".join(cells) + " |")
        out.append("")
    return "\n".join(out)


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@clip_study_options(default_clips=8)
def main(weights_path: str, data: str, category: str | None, max_clips: int, seconds: float,
         threads: int, quiet: bool) -> None:
    """Print the amplitude / phase / quantizer split of a weights file's quality."""
    set_threads(threads)
    model = load(weights_path).model.float().eval()
    clips = collect_clips(data, category, max_clips)
    rows: list[dict] = []
    for clip in tqdm(clips, unit="clip", file=sys.stderr, disable=quiet):
        rows += diagnose_clip(model, clip, seconds)
    click.echo(f"weights {weights_path}, {len(clips)} clips, first {seconds:g} s each, "
               "whole-signal float32 passes\n")
    click.echo(markdown(rows))
    click.echo(peaks_markdown(rows))
    click.echo(tones_markdown(model, Codec.load(weights_path, device="cpu", precision="fp32")))


@torch.inference_mode()
def tones_markdown(model: APCodec, codec: Codec | None = None) -> str:
    """Sines and a sweep at -20 dBFS through the network (whole signal, float32): each
    one's level error and the sines' peak shift (`artefacts.tone_errors`); with `codec`,
    also the level error through an encoded file, after its level gains."""
    errors = tone_scores(model, torch.device("cpu"))
    filed: dict[str, float] = {}
    if codec is not None:
        with scratch_dir("apcodec-tones-") as tmp:
            filed = artefacts.tone_errors(
                lambda x: apcodec_round_trip(codec, x.astype(np.float32), tmp)[0], RATE)
    lines = [f"### tones at {artefacts.TONE_DBFS:g} dBFS\n",
             "| signal | level dB, network | level dB, file (level gains) | peak shift Hz |",
             "|---|---:|---:|---:|"]
    for name in artefacts.probe_signals(RATE):
        shift = errors.get(f"{name}_shift_hz")
        through = filed.get(f"{name}_level_db")
        lines.append(f"| {name} | {errors[f'{name}_level_db']:+.1f} | "
                     f"{'' if through is None else f'{through:+.1f}'} | "
                     f"{'' if shift is None else f'{shift:+.0f}'} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
