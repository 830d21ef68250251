"""CUDA checks for a lent GPU: do the CUDA paths give the CPU's codes, and how fast are they?

Run by scripts/gpu_slice.sh (beside training) or alone; on a machine without CUDA it runs the
same checks on the CPU (`--device cpu`), which is how CI-like dry runs exercise it.

    python scripts/gpu_checks.py --out OUTDIR [--device cuda] [--minutes 10]

Writes OUTDIR/checks.json and prints one line per check:
  * codes CPU vs DEVICE (full and streamable model): share of identical codes, per file;
  * decoded audio CPU vs DEVICE: SNR in dB;
  * stream == whole on DEVICE (the streamable model's file path vs its array path);
  * folder conversion on DEVICE with the CLI (`apcodec encode/decode DIR DIR`): x real time.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from apcodec_cli.codec import Codec  # noqa: E402


def snr_db(reference: np.ndarray, test: np.ndarray) -> float:
    noise = float(np.sum((reference - test) ** 2))
    return float("inf") if noise == 0 else 10 * np.log10(float(np.sum(reference ** 2)) / noise)


def cli(*args: str) -> float:
    """Run `python -m apcodec_cli ARGS`; its wall time in seconds."""
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "apcodec_cli", *args], check=True, cwd=ROOT)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--minutes", type=float, default=10.0,
                        help="audio in the folder-conversion check")
    parser.add_argument("--files", type=int, default=10)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    results: dict[str, object] = {"device": args.device}

    def report(name: str, value: object) -> None:
        results[name] = value
        print(f"{name}: {value}", flush=True)
        (args.out / "checks.json").write_text(json.dumps(results, indent=1) + "\n")

    import torch
    report("torch", torch.__version__)
    if args.device.startswith("cuda"):
        report("gpu", torch.cuda.get_device_name(0))
    wav, rate = sf.read(ROOT / "samples" / "speech.flac", dtype="float32", always_2d=True)
    wav = wav.T[:1]  # one channel
    for streamable in (False, True):
        name = "apcodec-s" if streamable else "apcodec"
        cpu = Codec.load(device="cpu", streamable=streamable, precision="fp32")
        dev = Codec.load(device=args.device, streamable=streamable, precision="fp32")
        codes_cpu, codes_dev = cpu.encode(wav, rate), dev.encode(wav, rate)
        report(f"{name}.codes_equal_share", float(np.mean(codes_cpu == codes_dev)))
        out_cpu, out_dev = cpu.decode(codes_cpu), dev.decode(codes_cpu)
        report(f"{name}.decode_snr_db", round(snr_db(out_cpu, out_dev), 2))
        if args.device.startswith("cuda"):
            bf16 = Codec.load(device=args.device, streamable=streamable, precision="bf16")
            report(f"{name}.bf16_codes_equal_share",
                   float(np.mean(bf16.encode(wav, rate) == codes_cpu)))

    with tempfile.TemporaryDirectory() as tmp:
        folder, coded, decoded = Path(tmp, "in"), Path(tmp, "apc"), Path(tmp, "wav")
        folder.mkdir()
        seconds = 60.0 * args.minutes / args.files
        loop = np.resize(wav[0], int(seconds * rate))
        for i in range(args.files):
            sf.write(folder / f"f{i:03d}.wav", np.roll(loop, i * 997), rate, subtype="PCM_16")
        total = args.files * seconds
        t = cli("encode", "-q", "--device", args.device, str(folder), str(coded))
        report("folder_encode_x_realtime", round(total / t, 1))
        t = cli("decode", "-q", "--device", args.device, str(coded), str(decoded))
        report("folder_decode_x_realtime", round(total / t, 1))
        one = folder / "f000.wav"
        for flag in ("", "-s"):
            target = Path(tmp, f"one{flag}.apc")
            cli("encode", "-q", *([flag] if flag else []), "--device", args.device,
                str(one), str(target))
            cli("decode", "-q", *([flag] if flag else []), "--device", args.device,
                str(target), str(target.with_suffix(".wav")))
        whole = Codec.load(device=args.device, streamable=True, precision="fp32")
        ref = whole.decode(whole.encode(sf.read(one, dtype="float32")[0], rate))
        got = sf.read(Path(tmp, "one-s.wav"), dtype="float32")[0]
        n = min(ref.shape[-1], got.shape[-1])
        report("stream_file_vs_array_snr_db", round(snr_db(ref[0, :n], got[:n]), 2))
    print("checks done", flush=True)


if __name__ == "__main__":
    main()
