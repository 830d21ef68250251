"""Decoder-side changes that need no training, scored against the plain decode.

    python scripts/decode_probes.py griffin-lim --weights W --data data/corpus --iterations 4,16,32
    python scripts/decode_probes.py postfilter  --weights W --data data/corpus --gains 1.3,1.6
    python scripts/decode_probes.py grn-window  --weights W --data data/corpus --windows 200,400
    python scripts/decode_probes.py log-calibration --weights W --data data/corpus --out W_log.pt

Each idea attacks what the diagnostic blames (the decoded amplitude's content, the decoded
phase's inconsistency) after the network, at decode time:

* `griffin-lim`: a few fast Griffin-Lim iterations (momentum 0.99) that start from the
  decoded phase and keep the decoded amplitude, making the spectrogram consistent.
* `postfilter`: a contrast postfilter on the decoded log-amplitude, as speech codecs
  sharpen their spectral peaks: around its moving average over `--width` bins the
  log-amplitude is stretched by a gain, each frame's energy kept.
* `grn-window`: the full model's GRN pools each channel's energy over the whole signal
  (inside the product's chunks: 1.2 s); training crops are 200 STFT frames (0.17 s). This
  pools over a centred sliding window of `--windows` frames instead, as in training.
* `log-calibration`: the level calibration (`apcodec_cli.train.calibrate`) matches each
  bin's *energy*; this one matches each bin's mean *log* amplitude over the frames within
  `--range` dB of each training window's peak (the view of a dB-domain metric), with the
  total energy kept. It writes a weights file to score with `apcodec eval`.

The first three print the tables of `apcodec_cli.evaluate.diagnose` (whole-signal float32
passes over the first clips of the validation split), the plain decode as the first row.
Results (2026-12-05): `git show ad876bf:docs/training.md`.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable
from pathlib import Path

import click
import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from apcodec_cli.evaluate import metrics
from apcodec_cli.evaluate.diagnose import markdown
from apcodec_cli.evaluate.run import collect_clips, load_clip
from apcodec_cli.io import weights
from apcodec_cli.nn import grn, spectral
from apcodec_cli.nn.model import APCodec
from apcodec_cli.train.calibrate import pick_windows
from apcodec_cli.train.data import find_clips, read_window
from apcodec_cli.units import SAMPLE_RATE

Spectra = tuple[torch.Tensor, torch.Tensor]  # decoded log-amplitude, phase: (1, n_bins, F)


def griffin_lim(log_amp: torch.Tensor, phase: torch.Tensor, model: APCodec, iterations: int,
                momentum: float = 0.99) -> torch.Tensor:
    """Waveform after `iterations` fast Griffin-Lim steps from (log_amp, phase)."""
    config = model.config
    magnitude = torch.exp(log_amp.clamp(max=spectral.LOG_AMP_MAX))
    spec = previous = torch.polar(magnitude, phase)
    for _ in range(iterations):
        projected = spectral.stft(spectral.istft(spec, config), config)
        spec = magnitude * torch.exp(1j * torch.angle(projected + momentum * (projected - previous)))
        previous = projected
    return spectral.istft(spec, config)


def moving_average(x: torch.Tensor, width: int) -> torch.Tensor:
    """Mean of (1, n_bins, F) over `width` neighbouring bins (edges repeated)."""
    rows = x.transpose(1, 2)
    padded = F.pad(rows, (width // 2, width // 2), mode="replicate")
    return F.avg_pool1d(padded, width, stride=1).transpose(1, 2)


def postfilter(log_amp: torch.Tensor, gain: float, width: int) -> torch.Tensor:
    """The log-amplitude stretched by `gain` around its local mean, frame energies kept."""
    envelope = moving_average(log_amp, width)
    out = envelope + gain * (log_amp - envelope)
    shift = torch.logsumexp(2 * log_amp, 1, keepdim=True) - torch.logsumexp(2 * out, 1, keepdim=True)
    return out + 0.5 * shift


def _decode(model: APCodec, wav: torch.Tensor) -> Spectra:
    """The decoded spectra of the model's own pass (encode, quantize, decode)."""
    out = model(wav)
    return out.log_amp, out.phase


def _score(model: APCodec, data: str, max_clips: int, seconds: float, quiet: bool,
           systems: dict[str, Callable[..., torch.Tensor]], with_wav: bool = False) -> list[dict]:
    """Rows of every system (name -> f(log_amp, phase[, wav]) -> waveform) on every clip."""
    spf = model.config.samples_per_frame
    rows = []
    clips = collect_clips(data, None, max_clips)
    for clip in tqdm(clips, unit="clip", file=sys.stderr, disable=quiet):
        audio = load_clip(clip.path, seconds)
        audio = audio[: len(audio) - len(audio) % spf]
        wav = torch.from_numpy(np.ascontiguousarray(audio)).view(1, 1, -1)
        with torch.inference_mode():
            decoded = _decode(model, wav)
            for name, system in systems.items():
                args = (*decoded, wav) if with_wav else decoded
                out = system(*args).flatten().double().numpy()
                row = {"clip": clip.name, "category": clip.category, "system": name}
                row.update(metrics.score(audio.astype(np.float64), out, SAMPLE_RATE,
                                         speech=clip.category == "speech"))
                rows.append(row)
    return rows


def _ints(text: str) -> list[int]:
    return [int(v) for v in text.split(",")]


def _floats(text: str) -> list[float]:
    return [float(v) for v in text.split(",")]


common = [
    click.option("--weights", "weights_path", required=True, type=click.Path(exists=True)),
    click.option("--data", required=True, type=click.Path(exists=True, file_okay=False)),
    click.option("--threads", default=2, show_default=True),
]
scored = [
    click.option("--max-clips", default=4, show_default=True, help="Clips per category."),
    click.option("--seconds", default=10.0, show_default=True),
    click.option("-q", "--quiet", is_flag=True, help="No progress bar."),
]


def options(*groups):
    def wrap(f):
        for group in groups:
            for option in reversed(group):
                f = option(f)
        return f
    return wrap


@click.group()
def main() -> None:
    """Decoder-side probes (see the module docstring)."""


@main.command("griffin-lim")
@options(common, scored)
@click.option("--iterations", default="4,16,32", show_default=True)
def griffin_lim_command(weights_path, data, threads, max_clips, seconds, quiet, iterations):
    """Fast Griffin-Lim from the decoded phase."""
    weights.set_threads(threads)
    model = weights.load(weights_path).model.float().eval()
    systems = {"decoded": lambda a, p: spectral.synthesise(a, p, model.config)}
    for n in _ints(iterations):
        systems[f"griffin-lim {n}"] = lambda a, p, n=n: griffin_lim(a, p, model, n)
    click.echo(markdown(_score(model, data, max_clips, seconds, quiet, systems)))


@main.command("postfilter")
@options(common, scored)
@click.option("--gains", default="1.3,1.6", show_default=True)
@click.option("--width", default=9, show_default=True, help="Bins of the moving average.")
def postfilter_command(weights_path, data, threads, max_clips, seconds, quiet, gains, width):
    """Contrast postfilter on the decoded log-amplitude."""
    weights.set_threads(threads)
    model = weights.load(weights_path).model.float().eval()
    config = model.config
    systems = {"decoded": lambda a, p: spectral.synthesise(a, p, config)}
    for g in _floats(gains):
        systems[f"postfilter x{g:g} / {width} bins"] = (
            lambda a, p, g=g: spectral.synthesise(postfilter(a, g, width), p, config))
    click.echo(markdown(_score(model, data, max_clips, seconds, quiet, systems)))


class WindowedGRN(grn.GRN):
    """GRN whose per-channel energy is summed over a centred window of `window` frames
    (zeros past the ends; the response is a ratio across channels, so the missing frames
    only change the mix)."""

    def __init__(self, source: grn.GRN, window: int) -> None:
        super().__init__(source.gamma.shape[-1], source.eps)
        self.load_state_dict(source.state_dict())
        self.window = window

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.window
        energy = F.pad(x.double().square(), (0, 0, w // 2 + 1, w - w // 2 - 1))
        total = energy.cumsum(dim=1)
        norm = (total[:, w:] - total[:, :-w]).clamp(min=grn.ENERGY_FLOOR).sqrt().to(x.dtype)
        return self.beta + x + self.gamma * (x * grn.grn_scale(norm, self.eps))


def with_windowed_grn(model: APCodec, window: int) -> APCodec:
    """A copy of the full `model` whose GRNs pool over `window` frames."""
    copy = type(model)(model.config)
    copy.load_state_dict(model.state_dict())
    for module in list(copy.modules()):
        for name, child in module.named_children():
            if type(child) is grn.GRN:
                setattr(module, name, WindowedGRN(child, window))
    return copy.eval()


@main.command("grn-window")
@options(common, scored)
@click.option("--windows", default="200,400", show_default=True, help="Frames pooled.")
def grn_window_command(weights_path, data, threads, max_clips, seconds, quiet, windows):
    """GRN statistics over a centred sliding window (as the training crops see them)."""
    weights.set_threads(threads)
    model = weights.load(weights_path).model.float().eval()
    config = model.config
    variants = {w: with_windowed_grn(model, w) for w in _ints(windows)}

    def rerun(variant: APCodec):
        # the decoded spectra of the plain model are not used: the whole pass changes
        return lambda a, p, wav: variant(wav).wav[..., : wav.shape[-1]]

    systems = {"decoded": lambda a, p, wav: spectral.synthesise(a, p, config)}
    systems.update({f"GRN over {w} frames": rerun(v) for w, v in variants.items()})
    click.echo(markdown(_score(model, data, max_clips, seconds, quiet, systems, with_wav=True)))


@torch.no_grad()
def log_offsets(model: APCodec, windows, samples: int, range_db: float):
    """(n_bins,) mean log-amplitude of source minus decoded output over the frames within
    `range_db` of each window's peak (every window alike), and the per-bin energies of
    source and output (each window normalised by its source's total)."""
    config = model.config
    n = config.n_bins
    diff, count = torch.zeros(n, dtype=torch.float64), torch.zeros(n, dtype=torch.float64)
    source, decoded = torch.zeros(n, dtype=torch.float64), torch.zeros(n, dtype=torch.float64)
    floor = range_db / 20 * math.log(10)
    for clip, start in windows:
        wav = torch.from_numpy(read_window(clip, start, samples)).float().view(1, 1, -1)
        x = spectral.stft(wav, config).abs()[0].double()
        y = spectral.stft(model(wav).wav, config).abs()[0].double()
        lx, ly = torch.log(x + 1e-7), torch.log(y + 1e-7)
        weight = (lx > lx.max() - floor).double()
        weight /= weight.sum().clamp(min=1)
        diff += ((lx - ly) * weight).sum(1)
        count += weight.sum(1)
        total = x.square().sum()
        source += x.square().sum(1) / total
        decoded += y.square().sum(1) / total
    return diff / count.clamp(min=1e-12), source, decoded


@main.command("log-calibration")
@options(common)
@click.option("--out", required=True, type=click.Path(dir_okay=False))
@click.option("--range", "range_db", default=60.0, show_default=True)
@click.option("--clips", default=96, show_default=True, help="Training windows of 4 s.")
@click.option("--passes", default=2, show_default=True)
def log_calibration_command(weights_path, data, threads, out, range_db, clips, passes):
    """Per-bin calibration of the mean log-amplitude (total energy kept)."""
    weights.set_threads(threads)
    loaded = weights.load(weights_path)
    model = loaded.model.float().eval()
    samples = int(4.0 * SAMPLE_RATE) // model.config.samples_per_frame * model.config.samples_per_frame
    windows = pick_windows(find_clips(data), clips, samples)
    head = model.decoder.amplitude_head
    for n in range(passes):
        delta, source, decoded = log_offsets(model, windows, samples, range_db)
        delta += 0.5 * torch.log(source.sum() / (decoded * torch.exp(2 * delta)).sum())
        head.bias.data += delta.float()
        db = delta * 20 / math.log(10)
        quarters = ", ".join(f"{float(q.mean()):+.2f}" for q in torch.tensor_split(db, 4))
        click.echo(f"pass {n + 1}: offset {float(db.mean()):+.2f} dB mean; by quarter of the "
                   f"band {quarters}")
    weights.save(Path(out), model, trained=loaded.trained, code_tables=loaded.code_tables,
                 tables_info=loaded.tables_info,
                 **{k: v for k, v in loaded.info.items() if k != "trained"},
                 log_calibrated_from=loaded.fingerprint.hex())
    click.echo(f"wrote {out}")


if __name__ == "__main__":
    main()
