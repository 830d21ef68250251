"""Time a folder conversion with the CLI: whole `apcodec encode/decode DIR DIR` processes.

    python scripts/folder_speed.py --out speed.json [--device cuda] [--minutes 30]
        [--files 30] [--variants 32/fp32,32/bf16,0/fp32] [--limit 60] [--no-startup]

The folder holds FILES files of MINUTES / FILES minutes each, cut at different places from
samples/speech.flac (44.1 kHz, so encoding resamples), as 16-bit WAV. Reported for each
conversion: seconds and x real time of the whole process, and x real time after start-up,
where start-up is the time the same command takes on a folder of one 1-second file
(importing torch, loading the weights, initialising the device). A conversion that fails
or runs past `--limit` seconds is reported as such.

Each variant ROWS/PRECISION encodes the folder with $APCODEC_FILE_BATCH=ROWS (rows per
forward pass shared between files, engine/shared.py; 0: file by file; the default on CUDA is
the codec's batch size, 32) and $APCODEC_PRECISION=PRECISION; the first variant also
decodes. Results are written after every measurement.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]


def convert(command: str, source: Path, target: Path, device: str, variant: str,
            limit: float) -> float | str:
    """Wall seconds of `apcodec COMMAND -q --device DEVICE SOURCE TARGET` with the settings
    of `variant` (ROWS/PRECISION), or why it has none."""
    rows, precision = variant.split("/")
    env = {**os.environ, "APCODEC_FILE_BATCH": rows, "APCODEC_PRECISION": precision}
    start = time.perf_counter()
    try:
        subprocess.run([sys.executable, "-m", "apcodec_cli", command, "-q", "--force",
                        "--device", device, str(source), str(target)],
                       check=True, cwd=ROOT, env=env, timeout=limit)
    except subprocess.TimeoutExpired:
        return f"stopped after {limit:g} s"
    except subprocess.CalledProcessError as exc:
        return f"failed (exit status {exc.returncode})"
    return time.perf_counter() - start


def write_folder(folder: Path, files: int, seconds: float) -> float:
    """FILES WAV files of SECONDS each from the speech sample; their total seconds."""
    wav, rate = sf.read(ROOT / "samples" / "speech.flac", dtype="float32", always_2d=True)
    loop = np.resize(wav[:, 0], int(seconds * rate))
    folder.mkdir(parents=True)
    for i in range(files):
        sf.write(folder / f"f{i:03d}.wav", np.roll(loop, i * 997), rate, subtype="PCM_16")
    return files * int(seconds * rate) / rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="JSON file of the results")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--minutes", type=float, default=30.0, help="audio in the folder")
    parser.add_argument("--files", type=int, default=30)
    parser.add_argument("--variants", default="32/fp32,32/bf16,0/fp32",
                        help="ROWS/PRECISION settings to encode with; the first also decodes")
    parser.add_argument("--limit", type=float, default=60.0, help="seconds per conversion")
    parser.add_argument("--startup", action=argparse.BooleanOptionalAction, default=True,
                        help="time the start-up as well (two more conversions)")
    args = parser.parse_args()
    results: dict[str, object] = {"device": args.device, "files": args.files}

    def report(name: str, value: object) -> None:
        results[name] = value
        print(f"{name}: {value}", flush=True)
        args.out.write_text(json.dumps(results, indent=1) + "\n")

    variants = args.variants.split(",")
    with tempfile.TemporaryDirectory(prefix="apcodec-speed-") as tmp:
        tmp = Path(tmp)
        total = write_folder(tmp / "in", args.files, 60.0 * args.minutes / args.files)
        report("audio_seconds", round(total, 1))
        startup: dict[str, float | str] = {}
        if args.startup:
            write_folder(tmp / "one", 1, 1.0)
            startup = {c: convert(c, tmp / s, tmp / t, args.device, variants[0], args.limit)
                       for c, s, t in (("encode", "one", "one-apc"),
                                       ("decode", "one-apc", "one-wav"))}
            report("startup_s", {c: round(t, 2) if isinstance(t, float) else t
                                 for c, t in startup.items()})
        plan = [("encode", v, "in", f"apc{i}") for i, v in enumerate(variants)]
        plan.insert(1, ("decode", variants[0], "apc0", "wav"))
        for command, variant, source, target in plan:
            name = f"{command} rows={variant.replace('/', ' ')}"
            seconds = convert(command, tmp / source, tmp / target, args.device, variant,
                              args.limit)
            if isinstance(seconds, str):
                report(name, seconds)
                continue
            begun = startup.get(command)
            work = seconds - begun if isinstance(begun, float) else 0.0
            report(name, {"seconds": round(seconds, 2), "x_real_time": round(total / seconds, 1),
                          "x_real_time_after_startup": round(total / work, 1) if work > 0
                          else None})

if __name__ == "__main__":
    main()
