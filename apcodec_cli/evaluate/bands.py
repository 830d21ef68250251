"""Where in frequency a music score is won or lost: ViSQOL's per-band similarity.

    python -m apcodec_cli.evaluate.bands --weights W --data data/corpus --max-clips 16

ViSQOL (audio mode) predicts its MOS-LQO from the NSIM of 32 gammatone bands between 50 Hz
and 24 kHz. A single score can hide a trade: on the evaluation's 16 music clips the weights
shipped on 2026-12-06 (network `ca236ba8a4d963bb`) matched Opus 12 kbit/s in MOS while their
NSIM from 600 Hz to 5 kHz was a third to three quarters of Opus's, made up above 13 kHz
where Opus drops the band (docs/training.md, "Tried and not kept"). For every music clip this codes the first `--seconds`
through apcodec (real files, as `apcodec eval` does) and through Opus at `--opus-kbps`,
and prints each band's mean NSIM for both, their difference, and both MOS-LQO.

It also prints the *hop lines*: how far the decoded long-term spectrum stands above the
source's at multiples of the STFT frame rate (48 kHz / 40-sample hop = 1.2 kHz). Whatever
the decoder repeats identically in every frame comes out of the inverse STFT as a signal
of period one hop, so as lines at those frequencies; in the same weights they stood
16 dB above the source at 1.2 kHz (mean of 16 music clips), and came from the decoded
phase (true amplitude with decoded phase kept them, decoded amplitude with true phase did
not). Removing them in training did not improve ViSQOL (docs/training.md).
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import click
import numpy as np
from tqdm import tqdm

from ..io.weights import set_threads
from ..units import SAMPLE_RATE as RATE
from . import metrics, opus
from .artefacts import hop_lines_db
from .run import apcodec_round_trip, collect_clips, load_clip


def markdown(centres: np.ndarray, ours: np.ndarray, theirs: np.ndarray, label: str) -> str:
    """The per-band table: (clips, bands) NSIM arrays of apcodec and of `label`."""
    lines = [f"| band | centre (Hz) | apcodec | {label} | difference |", "|---:|---:|---:|---:|---:|"]
    a, b = ours.mean(axis=0), theirs.mean(axis=0)
    for i, centre in enumerate(centres):
        lines.append(f"| {i} | {centre:.0f} | {a[i]:.3f} | {b[i]:.3f} | {a[i] - b[i]:+.3f} |")
    return "\n".join(lines)


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--weights", "weights_path", required=True, type=click.Path(dir_okay=False),
              help="Weights file to score.")
@click.option("--data", required=True, type=click.Path(exists=True, file_okay=False),
              help="Corpus folder (its music clips) or a folder of music.")
@click.option("--max-clips", type=click.IntRange(min=1), default=16, show_default=True,
              help="Music clips scored (a corpus's validation split, in `apcodec eval`'s order).")
@click.option("--seconds", type=click.FloatRange(min=1), default=10.0, show_default=True,
              help="Seconds coded from the start of each clip.")
@click.option("--opus-kbps", type=click.FloatRange(min=6, max=510), default=12.0,
              show_default=True, help="Opus bitrate to compare with (VBR).")
@click.option("--threads", type=click.IntRange(min=0), default=0, help="torch threads (0: default).")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
def main(weights_path: str, data: str, max_clips: int, seconds: float, opus_kbps: float,
         threads: int, quiet: bool) -> None:
    """Print ViSQOL's per-band NSIM of apcodec and of Opus on music clips."""
    from ..codec import Codec

    try:
        opus.require_opus_tools(way_out="")
        metrics.check_dependencies(speech=False)
    except (opus.OpusToolsMissingError, metrics.MissingDependencyError) as error:
        raise click.ClickException(str(error)) from None
    set_threads(threads)
    codec = Codec.load(weights_path, device="cpu")
    clips = collect_clips(data, "music", max_clips)
    hop = codec.model.config.hop_length
    lines: list[np.ndarray] = []
    mos: dict[str, list[float]] = {"apcodec": [], "opus": []}
    bands: dict[str, list[np.ndarray]] = {"apcodec": [], "opus": []}
    centres = np.zeros(0)
    for clip in tqdm(clips, unit="clip", file=sys.stderr, disable=quiet):
        wav = load_clip(clip.path, seconds)
        with tempfile.TemporaryDirectory(prefix="apcodec-bands-") as tmp:
            ours, _ = apcodec_round_trip(codec, wav, Path(tmp))
            theirs = opus.round_trip(wav, opus_kbps, True, Path(tmp)).audio
        lines.append(hop_lines_db(wav, ours, RATE, hop))
        for system, audio in (("apcodec", ours), ("opus", theirs)):
            try:
                centres, nsim, score = metrics.visqol_bands(wav, audio, RATE)
            except ValueError:  # too short for ViSQOL
                continue
            bands[system].append(nsim)
            mos[system].append(score)
    if not bands["apcodec"] or not bands["opus"]:
        raise click.ClickException("no clip long enough for ViSQOL")
    label = f"opus {opus_kbps:g}k"
    count = len(bands["apcodec"])
    click.echo(f"weights {weights_path}, {count} music clip{'s' * (count != 1)}, first "
               f"{seconds:g} s each; ViSQOL MOS-LQO apcodec {np.mean(mos['apcodec']):.3f}, "
               f"{label} {np.mean(mos['opus']):.3f}\n")
    click.echo(markdown(centres, np.array(bands["apcodec"]), np.array(bands["opus"]), label))
    excess = np.mean(lines, axis=0)
    click.echo(f"\nhop lines (multiples of {RATE / hop:g} Hz), decoded over source, mean of "
               "the clips: " + ", ".join(f"{RATE / hop * k / 1000:g} kHz {e:+.1f} dB"
                                         for k, e in enumerate(excess, 1)))


if __name__ == "__main__":
    main()
