"""Add a model release: its files in weights/ and its golden pair in tests/data/releases/.

    python scripts/add_release.py runs/NAME/apcodec.pt        # a new network (with tables)
    python scripts/add_release.py refit.pt                    # new tables of a released network
    python scripts/add_release.py                             # only the missing golden files

WEIGHTS is a weights file as training and `scripts/code_tables.py` write it (network and,
normally, code tables). A network not yet released becomes the next release of its kind
(`weights/apcodec-rN-<network>.pt`, or `apcodec-s-rN-...` for a streamable one); code tables
not yet released become that network's next tables file (`...-tablesK-<weights
fingerprint>.pt`). Nothing is ever replaced (`apcodec_cli/models/releases.py`).

Then every release in weights/ gets what it lacks of its golden pair (weights/README.md,
"Adding a release"): `<network file stem>.flac`, the reference decode (16-bit, 48 kHz) of
2 s of samples/speech.flac; `<tables file stem>.apc`, those 2 s encoded with the network
and those tables; and for a streamable network `<network file stem>.live.apc`, the same 2 s
as a live stream (`encode -s - -`). A tables file whose golden `.apc` predates format
version 3 (level gains) also gets `<tables file stem>.v3.apc`, the 2 s encoded as today,
and its own reference decode `<tables file stem>.v3.flac`. Golden files are never
rewritten: delete one by hand only if it was wrong when written. Everything runs on the
CPU in float32 with one thread.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import soundfile as sf  # noqa: E402
import torch  # noqa: E402

from apcodec_cli.codec import Codec  # noqa: E402
from apcodec_cli import live  # noqa: E402
from apcodec_cli.format.bitstream import VERSION_LEVELS, peek_header  # noqa: E402
from apcodec_cli.models import releases  # noqa: E402

CLIP = ROOT / "samples" / "speech.flac"
CLIP_START, CLIP_SECONDS = 1.0, 2.0  # seconds of CLIP


def clip_wav(folder: Path) -> Path:
    """The golden clip as a 16-bit WAV at the sample's own rate."""
    audio, rate = sf.read(CLIP, dtype="float32", always_2d=True)
    start = int(CLIP_START * rate)
    path = folder / "clip.wav"
    sf.write(path, audio[start:start + int(CLIP_SECONDS * rate)], rate, subtype="PCM_16")
    return path


def decode(codec: Codec, apc: Path) -> np.ndarray:
    """The 16-bit samples (frames, channels) that `apcodec decode apc out.wav` writes."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out.wav"
        codec.decode_file(str(apc), str(out))
        return sf.read(out, dtype="int16", always_2d=True)[0]


def golden_pairs(weights_dir: Path, golden_dir: Path) -> list[Path]:
    """Write the golden files that the releases in `weights_dir` lack; returns them."""
    golden_dir.mkdir(parents=True, exist_ok=True)
    written = []
    with tempfile.TemporaryDirectory() as tmp:
        clip = clip_wav(Path(tmp))
        for release in releases.scan([weights_dir]):
            reference = golden_dir / f"{release.stem}.flac"
            wanted = [(golden_dir / f"{t.stem}.apc", t.path) for t in release.tables]
            if release.streamable:
                wanted.append((golden_dir / f"{release.stem}.live.apc", None))
            for target, tables in wanted:
                if target.exists():
                    continue
                codec = Codec.load(release.path, device="cpu", precision="fp32",
                                   tables=tables)
                if target.name.endswith(".live.apc"):
                    live.encode_pipe(codec, str(clip), str(target), mono=False, packet=15)
                else:
                    codec.encode_file(str(clip), str(target))
                written.append(target)
            if not reference.exists() and wanted:
                target, tables = wanted[0]  # the first golden .apc: its tables decode it
                codec = Codec.load(release.path, device="cpu", precision="fp32",
                                   tables=tables)
                sf.write(reference, decode(codec, target), 48000, subtype="PCM_16",
                         format="FLAC")
                written.append(reference)
            written += level_pairs(release, golden_dir, clip)
    return written


def level_pairs(release: releases.Release, golden_dir: Path, clip: Path) -> list[Path]:
    """For each tables file of `release` whose golden `.apc` is older than format
    version 3, the `.v3.apc` of today's encoder and its own reference `.v3.flac`."""
    written = []
    for tables in release.tables:
        with open(golden_dir / f"{tables.stem}.apc", "rb") as f:
            if peek_header(f).version >= VERSION_LEVELS:
                continue
        target, reference = (golden_dir / f"{tables.stem}.v3{ext}" for ext in (".apc", ".flac"))
        if target.exists() and reference.exists():
            continue
        codec = Codec.load(release.path, device="cpu", precision="fp32", tables=tables.path)
        if not target.exists():
            codec.encode_file(str(clip), str(target))
            written.append(target)
        if not reference.exists():
            sf.write(reference, decode(codec, target), 48000, subtype="PCM_16", format="FLAC")
            written.append(reference)
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("weights", nargs="?", help="weights file to release (none: only "
                        "the missing golden files)")
    parser.add_argument("--weights-dir", type=Path, default=ROOT / "weights")
    parser.add_argument("--golden-dir", type=Path, default=ROOT / "tests" / "data" / "releases")
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.weights:
        for path in releases.add(args.weights, args.weights_dir):
            print(f"added {path}")
    for path in golden_pairs(args.weights_dir, args.golden_dir):
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
