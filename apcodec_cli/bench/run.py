"""Measurements of `apcodec bench`: whole processes, Opus, compute floor, baseline."""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import shutil
import sys
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..units import SAMPLE_RATE as RATE
from .measure import ProcessRun, run_process, thread_env

#: Durations of `--full`, in seconds: 10 s, 1 min, 10 min, 60 min.
FULL_SECONDS = (10.0, 60.0, 600.0, 3600.0)
#: The default quick subset.
QUICK_SECONDS = (10.0, 60.0)
OPUS_KBPS = 6


@dataclasses.dataclass
class Settings:
    """What to measure.

    Attributes:
        seconds: Durations of test audio.
        threads: CPU thread counts to run apcodec with.
        cuda: Also run on CUDA.
        weights: Weights file of the measured codec (None: the installed default).
        opus: Also time opusenc/opusdec (skipped with a note when absent).
        baseline_seconds: Duration of the whole-signal baseline (None: no baseline).
        baseline_preset: Preset of the baseline model.
        source: Audio file looped into the test audio (None: speech sample, else tones).
        workdir: Where the test files go.
    """

    seconds: tuple[float, ...]
    threads: tuple[int, ...]
    cuda: bool
    weights: str | None
    opus: bool
    baseline_seconds: float | None
    baseline_preset: str
    source: str | None
    workdir: Path


def default_source() -> Path | None:
    """The speech sample of a checkout, if there is one."""
    path = Path(__file__).resolve().parents[2] / "samples" / "speech.flac"
    return path if path.is_file() else None


def _source_signal(source: str | os.PathLike | None) -> np.ndarray:
    """Mono float32 signal at 48 kHz to loop: a file, else a synthetic chord with noise."""
    if source is not None:
        import soundfile as sf
        import soxr

        audio, rate = sf.read(source, dtype="float32", always_2d=True)
        mono = audio.mean(axis=1)
        if rate != RATE:
            mono = soxr.resample(mono, rate, RATE, quality="VHQ").astype(np.float32)
        if mono.size >= RATE // 10:
            return mono
    rng = np.random.default_rng(0)
    t = np.arange(7 * RATE) / RATE
    chord = sum(0.12 * np.sin(2 * np.pi * f * t) for f in (220.0, 277.2, 329.6, 440.0))
    return (chord * (0.6 + 0.4 * np.sin(2 * np.pi * 0.5 * t))
            + 0.02 * rng.standard_normal(t.size)).astype(np.float32)


def make_audio(path: Path, seconds: float, source: str | os.PathLike | None) -> None:
    """Write `seconds` of 48 kHz mono 16-bit WAV that loops `source`, in bounded memory."""
    import soundfile as sf

    loop = _source_signal(source)
    total = round(seconds * RATE)
    with sf.SoundFile(path, "w", samplerate=RATE, channels=1, subtype="PCM_16") as f:
        done = 0
        while done < total:
            start = done % loop.size
            n = min(loop.size - start, total - done, 10 * RATE)
            f.write(loop[start:start + n])
            done += n


def _apcodec(*args: str) -> list[str]:
    # The package's own entry point with this interpreter: what `apcodec` runs, without
    # whatever launcher (pyenv shim, venv wrapper) the console script sits behind.
    return [sys.executable, "-m", "apcodec_cli", *args]


@dataclasses.dataclass
class Row:
    """One line of the table: a system coding one duration."""

    seconds: float
    system: str
    threads: int | None
    encode: ProcessRun
    decode: ProcessRun
    floor_encode_s: float | None = None
    floor_decode_s: float | None = None

    def as_dict(self) -> dict[str, Any]:
        out = {"seconds": self.seconds, "system": self.system, "threads": self.threads}
        for name, run, floor in (("encode", self.encode, self.floor_encode_s),
                                 ("decode", self.decode, self.floor_decode_s)):
            out[f"{name}_s"] = run.seconds
            out[f"{name}_x_real_time"] = self.seconds / run.seconds
            out[f"{name}_peak_mb"] = run.peak_mb
            out[f"{name}_floor_s"] = floor
            out[f"{name}_efficiency"] = None if floor is None else floor / run.seconds
        return out


def machine() -> dict[str, Any]:
    """A description of this machine: CPU model, cores, OS, Python and torch versions."""
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    from ..runtime import resolve_precision

    info = {"cpu": cpu, "cores": os.cpu_count(), "os": platform.platform(),
            "python": platform.python_version(), "torch": torch.__version__,
            "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
            # What `apcodec encode/decode` use on the CPU here ($APCODEC_PRECISION, or auto).
            "cpu_precision": "bf16" if resolve_precision(None, torch.device("cpu")) else "fp32"}
    return info


def measure(settings: Settings, log: Callable[[str], None]) -> dict[str, Any]:
    """Run every measurement; returns the report as plain data (see `markdown`)."""
    from ..models import weights as weights_mod
    from .floor import matmul_flops_per_second, model_flops

    weights_path = str(settings.weights or weights_mod.default_path())
    model = weights_mod.load(weights_path, "cpu").model
    flops = model_flops(model)
    del model
    log(f"model: {flops.encode / 1e9:.2f} GFLOP to encode and {flops.decode / 1e9:.2f} to "
        "decode one second of audio")
    throughput: dict[str, float] = {}
    for n in settings.threads:
        throughput[f"cpu{n}"] = matmul_flops_per_second(n)
        log(f"matmul throughput, {n} thread(s): {throughput[f'cpu{n}'] / 1e9:.1f} GFLOP/s")
    configs: list[tuple[str, str, int | None]] = [("apcodec CPU", "cpu", n)
                                                  for n in settings.threads]
    if settings.cuda:
        throughput["cuda"] = matmul_flops_per_second(device="cuda")
        configs.append(("apcodec CUDA", "cuda", None))
    opus_note = None
    opus = settings.opus and shutil.which("opusenc") and shutil.which("opusdec")
    if settings.opus and not opus:
        opus_note = "Opus skipped: opusenc/opusdec (opus-tools) not found"
        log(opus_note)

    rows: list[Row] = []
    settings.workdir.mkdir(parents=True, exist_ok=True)
    for seconds in settings.seconds:
        wav = settings.workdir / f"in_{seconds:g}s.wav"
        make_audio(wav, seconds, settings.source)
        try:
            for system, device, n in configs:
                log(f"{seconds:g} s: {system}{f', {n} thread(s)' if n else ''}")
                key = f"cpu{n}" if device == "cpu" else "cuda"
                rows.append(_codec_row(settings, wav, seconds, system, device, n, weights_path,
                                       flops, throughput[key]))
            if opus:
                log(f"{seconds:g} s: Opus {OPUS_KBPS} kbit/s")
                rows.append(_opus_row(settings.workdir, wav, seconds))
        finally:  # only the files this run wrote
            for name in (wav.name, "out.apc", "out.wav", "out.opus", "out_opus.wav"):
                (settings.workdir / name).unlink(missing_ok=True)

    baseline = None
    if settings.baseline_seconds:
        n = max(settings.threads)
        log(f"baseline: whole-signal {settings.baseline_preset}, {settings.baseline_seconds:g} s, "
            f"{n} thread(s)")
        run = run_process([sys.executable, "-m", "apcodec_cli.bench.baseline", "--seconds",
                           str(settings.baseline_seconds), "--threads", str(n), "--preset",
                           settings.baseline_preset], env=thread_env(n))
        baseline = json.loads(run.stdout.strip().splitlines()[-1])
        baseline["peak_mb"] = run.peak_mb
        ours = [r for r in rows if r.system == "apcodec CPU" and r.threads == n
                and r.seconds == settings.baseline_seconds]
        if ours:
            whole = ours[0].encode.seconds + ours[0].decode.seconds
            baseline["apcodec_processes_s"] = whole
            baseline["speed_up"] = (baseline["encode_s"] + baseline["decode_s"]) / whole

    return {"machine": machine(), "weights": weights_path,
            "model_gflop_per_audio_second": {"encode": flops.encode / 1e9,
                                             "decode": flops.decode / 1e9,
                                             "encode_chunked": flops.encode_chunked / 1e9,
                                             "decode_chunked": flops.decode_chunked / 1e9},
            "matmul_gflop_per_second": {k: v / 1e9 for k, v in throughput.items()},
            "rows": [r.as_dict() for r in rows], "baseline": baseline, "notes": [
                n for n in (opus_note,) if n]}


def _codec_row(settings: Settings, wav: Path, seconds: float, system: str, device: str,
               threads: int | None, weights_path: str, flops: Any, throughput: float) -> Row:
    apc, out = settings.workdir / "out.apc", settings.workdir / "out.wav"
    env = thread_env(threads)
    common = ["-q", "-f", "--device", device, "--weights", weights_path]
    encode = run_process(_apcodec("encode", *common, str(wav), str(apc)), env)
    decode = run_process(_apcodec("decode", *common, str(apc), str(out)), env)
    # The encoder decodes what it codes too (level gains: format/levels.py).
    return Row(seconds, system, threads, encode, decode,
               seconds * (flops.encode + flops.decode) / throughput,
               seconds * flops.decode / throughput)


def _opus_row(workdir: Path, wav: Path, seconds: float) -> Row:
    opus, out = workdir / "out.opus", workdir / "out_opus.wav"
    encode = run_process(["opusenc", "--quiet", "--bitrate", str(OPUS_KBPS), str(wav), str(opus)])
    decode = run_process(["opusdec", "--quiet", str(opus), str(out)])
    return Row(seconds, f"Opus {OPUS_KBPS} kbit/s", None, encode, decode)


def _duration(seconds: float) -> str:
    if seconds >= 60 and seconds % 60 == 0:
        return f"{seconds / 60:g} min"
    return f"{seconds:g} s"


def markdown(report: dict[str, Any]) -> str:
    """The report as markdown: a preamble, the table, the baseline line."""
    m = report["machine"]
    flops = report["model_gflop_per_audio_second"]
    throughput = ", ".join(f"{'CUDA' if k == 'cuda' else k[3:] + ' thread(s)'} "
                           f"{v:.1f} GFLOP/s" for k, v in report["matmul_gflop_per_second"].items())
    lines = [
        f"Machine: {m['cpu']}, {m['cores']} cores"
        + (f", GPU {m['cuda']}" if m["cuda"] else ", no GPU")
        + f"; Python {m['python']}, torch {m['torch']}. Weights `{report['weights']}`; "
        f"on the CPU the full model runs in {m.get('cpu_precision', 'fp32')} "
        "(`--precision`, $APCODEC_PRECISION).",
        "",
        f"Model: {flops['encode']:.2f} GFLOP to encode and {flops['decode']:.2f} GFLOP to "
        f"decode one second of audio (matmul and convolution FLOPs; "
        f"{flops['encode_chunked']:.2f} / {flops['decode_chunked']:.2f} as chunked, with the "
        f"context frames). Measured float32 matmul throughput: {throughput}. Floor = model "
        "FLOPs / throughput (an encode runs the decoder too, for its level gains: both "
        "count); efficiency = floor / measured time of the whole process (start-up "
        "included).",
        "",
        "| audio | system | threads | encode | × real time | peak MB | decode | × real time "
        "| peak MB | efficiency enc / dec |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in report["rows"]:
        eff = "–" if r["encode_efficiency"] is None else \
            f"{100 * r['encode_efficiency']:.0f} % / {100 * r['decode_efficiency']:.0f} %"
        lines.append(
            f"| {_duration(r['seconds'])} | {r['system']} | {r['threads'] or '–'} "
            f"| {r['encode_s']:.2f} s | {r['encode_x_real_time']:.1f}x | {r['encode_peak_mb']:.0f} "
            f"| {r['decode_s']:.2f} s | {r['decode_x_real_time']:.1f}x | {r['decode_peak_mb']:.0f} "
            f"| {eff} |")
    b = report["baseline"]
    if b:
        lines += ["", (
            f"Baseline: whole-signal forward pass of `{b['preset']}` (random weights), "
            f"{_duration(b['seconds'])} in one call each, {b['threads']} thread(s): encode "
            f"{b['encode_s']:.2f} s + decode {b['decode_s']:.2f} s (peak {b['peak_mb']:.0f} MB, "
            "timed in-process, start-up excluded).")]
        if "speed_up" in b:
            lines[-1] += (f" apcodec's two whole processes on the same audio: "
                          f"{b['apcodec_processes_s']:.2f} s: **{b['speed_up']:.1f}x the "
                          "baseline's speed**.")
    for note in report["notes"]:
        lines += ["", note + "."]
    return "\n".join(lines) + "\n"

