"""CUDA checks: do the CUDA paths give the CPU's codes and audio?

Run it on a machine with a GPU (docs/gpu.md); on a machine without CUDA it runs the same
checks on the CPU (`--device cpu`), which is how tests/test_gpu_tools.py exercises it.

    python scripts/gpu_checks.py --out OUTDIR [--device cuda] [--seconds 7.4]

Writes OUTDIR/checks.json and prints one line per check, on the first SECONDS of the speech
sample (default: all of it):
  * codes CPU vs DEVICE (full and streamable model): share of identical codes;
  * decoded audio CPU vs DEVICE from the same codes: SNR in dB;
  * stream == whole on DEVICE (the streamable model's file path vs its array path).
tests/test_gpu.py asserts the policy these figures follow (docs/gpu.md); the timed folder
conversion is scripts/folder_speed.py.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from apcodec_cli.codec import Codec  # noqa: E402


def snr_db(reference: np.ndarray, test: np.ndarray) -> float:
    noise = float(np.sum((reference - test) ** 2))
    return float("inf") if noise == 0 else 10 * np.log10(float(np.sum(reference ** 2)) / noise)


def cli(*args: str) -> None:
    """Run `python -m apcodec_cli ARGS`."""
    subprocess.run([sys.executable, "-m", "apcodec_cli", *args], check=True, cwd=ROOT)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--seconds", type=float, default=None,
                        help="length of the speech excerpt checked (default: all of it)")
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
    wav = wav.T[:1, :None if args.seconds is None else int(args.seconds * rate)]  # one channel
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
        one = Path(tmp, "one.wav")
        sf.write(one, wav[0], rate, subtype="PCM_16")
        coded, decoded = Path(tmp, "one.apc"), Path(tmp, "back.wav")
        cli("encode", "-q", "-s", "--device", args.device, str(one), str(coded))
        cli("decode", "-q", "-s", "--device", args.device, str(coded), str(decoded))
        whole = Codec.load(device=args.device, streamable=True, precision="fp32")
        ref = whole.decode(whole.encode(sf.read(one, dtype="float32")[0], rate))
        got = sf.read(decoded, dtype="float32")[0]
        n = min(ref.shape[-1], got.shape[-1])
        report("stream_file_vs_array_snr_db", round(snr_db(ref[0, :n], got[:n]), 2))
    print("checks done", flush=True)


if __name__ == "__main__":
    main()
