"""Training corpus: decode, resample to 48 kHz mono, cut, drop silence, split, write a manifest.

Pipeline for one *source* (one audio file, or several stems mixed into one signal):

1. Decode with soundfile, average the channels to mono and resample to 48 kHz with soxr,
   block by block, so hour-long files never sit in memory at their source rate.
2. Measure the RMS level over 20 ms frames and trim leading and trailing silence (frames below
   ``silence_db``), keeping a 0.1 s margin on both sides.
3. Cut the rest into ``segment_seconds`` pieces; a shorter remainder is kept when it lasts at
   least ``min_seconds`` (short speech clips become one short segment each).
4. Silence rule: a segment is dropped when more than ``max_silent_fraction`` (default half) of
   its 20 ms frames are below ``silence_db`` (default -50 dBFS).
5. Write the kept segments as 16-bit FLAC plus one JSON sidecar per source. The sidecar makes
   the build idempotent: a source whose sidecar matches the parameters is not decoded again.

The split (by a hash of each source key) and the manifest I/O live in `manifest` and are
re-exported here; `debian` installs and lists the DATA.md packages; `pack` writes Opus packs.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import re
import zipfile
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import soundfile as sf
import soxr

from ..format.atomic import atomic_path, atomic_text
from ..format.audio import INT16_PEAK
from ..units import SAMPLE_RATE, ceil_div
from .manifest import (  # noqa: F401 - re-exported: the corpus API in one place
    assign_splits, read_manifest, split_score, summarize, write_manifest)

FRAME = 960  # 20 ms at 48 kHz: the frame of the silence rule.
CATEGORIES = ("speech", "music", "other")
ARCHIVE_SEP = "::"  # "archive.zip::member.ogg" names a file inside a zip (.pk3) archive.
AUDIO_EXTENSIONS = frozenset(
    ({ext.lower() for ext in sf.available_formats()} - {"raw", "wavex"})
    | {"oga", "opus", "aif", "aifc", "snd"}
)


@dataclasses.dataclass(frozen=True)
class Package:
    """Where the usable audio of one Debian package lies.

    Attributes:
        category: "speech" or "music".
        include: Regular expression a file path must match ("" keeps every audio file).
        archive: Zip (.pk3) file holding the audio, read instead of the files of ``dpkg -L``.
        stems: File names that are mixed into one source per folder (multitrack songs).
    """

    category: str
    include: str = ""
    archive: str = ""
    stems: tuple[str, ...] = ()


#: The training packages: the Debian audio that docs/data.md lists, whose sources are split
#: file by file into "train" and "validation" (in-source validation).
DEBIAN_PACKAGES: dict[str, Package] = {
    "wesnoth-1.16-music": Package("music"),
    "ufoai-music": Package("music", archive="/usr/share/games/ufoai/base/0music.pk3"),
    "warzone2100-music": Package("music"),
    "planetblupi-music-ogg": Package("music"),
    "nexuiz-music": Package("music", archive="/usr/share/games/nexuiz/data/music.pk3"),
    "naev-data": Package("music", include="/snd/music/"),
    "supertux-data": Package("music", include="/music/"),
    "widelands-data": Package("music", include="/data/music/"),
    "colobot-common-sounds": Package("music", include="/music/"),
    "fretsonfire-songs-muldjord": Package("music", stems=("song.ogg", "guitar.ogg")),
    "tuxpaint-stamps-default": Package("speech", include=r"_desc_[^/]*$"),
    "fillets-ng-data-cs": Package("speech"),
    "klettres-data": Package("speech"),
    "festvox-ru": Package("speech", include="/wav/"),
}

#: Debian packages held out of training as a whole: the out-of-source validation set. Their
#: voices, languages, composers and recording chains occur nowhere in the training audio, so
#: they measure what a user's audio gets, where a file-by-file split of the training packages
#: flatters the model. Sources of these packages always get the split "heldout".
#: ktuberling-data was a training package until 2026-12-06: weights released before then
#: (and runs started from them) have heard a part of it.
HELDOUT_PACKAGES: dict[str, Package] = {
    "fillets-ng-data-nl": Package("speech"),  # acted dialogue, Dutch actors
    "fillets-ng-data": Package("speech", include="/en/[^/]*$"),  # acted dialogue, English
    "ktuberling-data": Package("speech"),  # isolated read words, many languages
    "xmoto-data": Package("music", include="/Musics/"),  # electronic, rock
    "lincity-ng-data": Package("music", include="/music/"),  # ambient, blues
    "frozen-bubble-data": Package("music", include="zik[^/]*$"),  # pop, electronic
}


@dataclasses.dataclass(frozen=True)
class Source:
    """One unit of the corpus: the split and the output names follow its key.

    Attributes:
        key: Stable identifier "package/relative/path", unique within a corpus.
        paths: Files mixed into one signal (usually one; "archive::member" for zip members).
        package: Package or folder name, the group used for per-package validation quotas.
        category: "speech", "music" or "other".
    """

    key: str
    paths: tuple[str, ...]
    package: str
    category: str


@dataclasses.dataclass(frozen=True)
class SegmentParams:
    """Parameters of cutting; a change makes the build decode every source again."""

    segment_seconds: float = 10.0
    min_seconds: float = 0.5
    silence_db: float = -50.0
    max_silent_fraction: float = 0.5
    quality: str = "HQ"


def is_audio_name(name: str) -> bool:
    """Whether a file name has an extension soundfile can usually open."""
    return Path(name).suffix.lower().lstrip(".") in AUDIO_EXTENSIONS


def list_audio_files(root: str | os.PathLike[str]) -> list[Path]:
    """List audio files below ``root`` recursively, sorted (hidden files skipped)."""
    root = Path(root)
    return sorted(
        p for p in root.rglob("*")
        if p.is_file() and is_audio_name(p.name) and not p.name.startswith(".")
    )


def folder_sources(root: str | os.PathLike[str], category: str = "other",
                   package: str | None = None) -> list[Source]:
    """Sources for every audio file of a user's folder (one source per file)."""
    if category not in CATEGORIES:
        raise ValueError(f"category must be one of {CATEGORIES}, got {category!r}")
    root = Path(root).resolve()
    name = package or root.name
    return [Source(f"{name}/{p.relative_to(root).as_posix()}", (str(p),), name, category)
            for p in list_audio_files(root)]


def _open(path: str) -> sf.SoundFile:
    """Open a file, or a zip member given as "archive::member", with soundfile."""
    if ARCHIVE_SEP in path:
        archive, member = path.split(ARCHIVE_SEP, 1)
        with zipfile.ZipFile(archive) as zf:
            return sf.SoundFile(io.BytesIO(zf.read(member)))
    return sf.SoundFile(path)


def read_bytes(path: str) -> bytes:
    """Raw bytes of a file or of a zip member ("archive::member")."""
    if ARCHIVE_SEP in path:
        archive, member = path.split(ARCHIVE_SEP, 1)
        with zipfile.ZipFile(archive) as zf:
            return zf.read(member)
    return Path(path).read_bytes()


def decode_mono(path: str, quality: str = "HQ") -> tuple[np.ndarray, int]:
    """Decode one file to mono float32 at 48 kHz.

    Args:
        path: File path, or "archive::member" for a file inside a zip.
        quality: soxr quality ("HQ" or "VHQ").

    Returns:
        The signal (exactly round(n * 48000 / rate) samples) and the source sample rate.
    """
    with _open(path) as f:
        rate = f.samplerate
        stream = (None if rate == SAMPLE_RATE else
                  soxr.ResampleStream(rate, SAMPLE_RATE, 1, dtype="float32", quality=quality))
        parts, n_in = [], 0
        for block in f.blocks(blocksize=1 << 17, dtype="float32", always_2d=True):
            n_in += len(block)
            mono = block.mean(axis=1, dtype=np.float32)
            parts.append(mono if stream is None else stream.resample_chunk(mono))
        if stream is not None:
            parts.append(stream.resample_chunk(np.zeros(0, np.float32), last=True))
    x = np.concatenate(parts) if parts else np.zeros(0, np.float32)
    n_out = int(round(n_in * SAMPLE_RATE / rate))
    if len(x) < n_out:
        x = np.pad(x, (0, n_out - len(x)))
    return np.ascontiguousarray(x[:n_out], dtype=np.float32), rate


def decode_source(source: Source, quality: str = "HQ") -> tuple[np.ndarray, int]:
    """Decode and mix the files of a source; a mix that would clip is scaled to peak 1."""
    decoded = [decode_mono(p, quality) for p in source.paths]
    x = np.zeros(max(len(s) for s, _ in decoded), np.float32)
    for s, _ in decoded:
        x[: len(s)] += s
    peak = float(np.max(np.abs(x))) if len(x) else 0.0
    if len(decoded) > 1 and peak > 1.0:
        x /= peak
    return x, max(rate for _, rate in decoded)


def rms_db(x: np.ndarray) -> float:
    """RMS level in dBFS (a full-scale square wave is 0 dB)."""
    if not len(x):
        return -120.0
    return float(10 * np.log10(np.mean(np.square(x, dtype=np.float64)) + 1e-12))


def frame_db(x: np.ndarray, frame: int = FRAME) -> np.ndarray:
    """RMS level in dBFS of consecutive frames (the last one may be shorter)."""
    n = ceil_div(len(x), frame)
    padded = np.zeros(n * frame, np.float64)
    padded[: len(x)] = x
    energy = np.square(padded).reshape(n, frame).sum(axis=1)
    counts = np.full(n, frame, np.float64)
    if n:
        counts[-1] = len(x) - (n - 1) * frame
    return 10 * np.log10(energy / np.maximum(counts, 1) + 1e-12)


def measure_bandwidth(x: np.ndarray, source_rate: int, threshold_db: float = -90.0,
                      n_fft: int = 2048, band: int = 8, max_frames: int = 1500) -> float:
    """Effective audio bandwidth in Hz.

    The long-term power spectrum is averaged over bands of ``band`` bins (187.5 Hz); the
    bandwidth is the upper edge of the highest band within ``threshold_db`` of the loudest
    band, never above half the source rate (or 24 kHz).
    """
    nominal = min(source_rate / 2, SAMPLE_RATE / 2)
    n = len(x) // n_fft
    if n == 0:
        return float(nominal)
    picks = np.unique(np.linspace(0, n - 1, min(n, max_frames)).astype(int))
    frames = x[: n * n_fft].reshape(n, n_fft)[picks]
    power = np.mean(np.abs(np.fft.rfft(frames * np.hanning(n_fft), axis=1)) ** 2, axis=0)
    bands = power[: n_fft // 2].reshape(-1, band).mean(axis=1)
    if bands.max() <= 0:
        return float(nominal)
    above = np.nonzero(10 * np.log10(bands / bands.max() + 1e-30) > threshold_db)[0]
    return float(min(nominal, (above.max() + 1) * band * SAMPLE_RATE / n_fft))


def plan_segments(x: np.ndarray, params: SegmentParams) -> list[tuple[int, int, int]]:
    """Cut a 48 kHz signal: (grid index, start, end) of every segment that is kept."""
    db = frame_db(x)
    loud = np.nonzero(db >= params.silence_db)[0]
    if not loud.size:
        return []
    margin = int(0.1 * SAMPLE_RATE)
    first, last = max(0, loud[0] * FRAME - margin), min(len(x), (loud[-1] + 1) * FRAME + margin)
    length = round(params.segment_seconds * SAMPLE_RATE)
    min_length = round(params.min_seconds * SAMPLE_RATE)
    kept = []
    for index, start in enumerate(range(first, last, length)):
        end = min(start + length, last)
        if end - start < min_length:
            break
        if np.mean(frame_db(x[start:end]) < params.silence_db) <= params.max_silent_fraction:
            kept.append((index, start, end))
    return kept


def _safe(key: str) -> str:
    parts = key.split("/")
    return "/".join(re.sub(r"[^A-Za-z0-9._+-]", "_", p) for p in parts if p not in ("", ".", ".."))


def _write_json_atomic(path: Path, value: Any) -> None:
    atomic_text(path, json.dumps(value, indent=1, sort_keys=True))


def process_source(source: Source, out_dir: str | os.PathLike[str],
                   params: SegmentParams = SegmentParams()) -> dict[str, Any]:
    """Decode, cut and write one source; skipped when its sidecar is already up to date.

    Returns:
        Dict with "key", "status" ("done", "cached" or "error"), "rows" (manifest rows without
        the split), "seconds" (decoded duration) and "error" (message, for "error" only).
    """
    out_dir = Path(out_dir)
    base = out_dir / "segments" / _safe(source.key)
    sidecar = base.with_name(base.name + ".json")
    settings = dataclasses.asdict(params)
    if sidecar.exists():
        old = json.loads(sidecar.read_text())
        if (old.get("params") == settings and old.get("paths") == list(source.paths)
                and all((out_dir / r["path"]).exists() for r in old["rows"])):
            return {"key": source.key, "status": "cached", "rows": old["rows"],
                    "seconds": old["seconds"]}
        for row in old.get("rows", []):
            (out_dir / row["path"]).unlink(missing_ok=True)
    try:
        x, rate = decode_source(source, params.quality)
    except Exception as exc:  # noqa: BLE001 - one broken file must not stop the build
        return {"key": source.key, "status": "error", "rows": [], "seconds": 0.0,
                "error": f"{type(exc).__name__}: {exc}"}
    bandwidth = measure_bandwidth(x, rate)
    base.parent.mkdir(parents=True, exist_ok=True)
    rows = []
    for index, start, end in plan_segments(x, params):
        path = base.with_name(f"{base.name}.{index:04d}.flac")
        with atomic_path(path) as tmp:
            sf.write(tmp, np.clip(x[start:end], -1.0, INT16_PEAK), SAMPLE_RATE,
                     subtype="PCM_16", format="FLAC")
        rows.append({"path": path.relative_to(out_dir).as_posix(), "source": source.key,
                     "package": source.package, "category": source.category,
                     "start": round(start / SAMPLE_RATE, 3),
                     "duration": round((end - start) / SAMPLE_RATE, 3),
                     "rms_db": round(rms_db(x[start:end]), 2), "source_rate": rate,
                     "bandwidth_hz": bandwidth})
    seconds = len(x) / SAMPLE_RATE
    _write_json_atomic(sidecar, {"key": source.key, "package": source.package,
                                 "category": source.category, "paths": list(source.paths),
                                 "params": settings, "seconds": seconds, "rows": rows})
    return {"key": source.key, "status": "done", "rows": rows, "seconds": seconds}


def load_sidecars(out_dir: str | os.PathLike[str],
                  params: SegmentParams | None = None) -> list[dict[str, Any]]:
    """All source sidecars of a corpus folder (only those built with ``params`` when given)."""
    paths = sorted((Path(out_dir) / "segments").rglob("*.json"))
    sidecars = [json.loads(p.read_text()) for p in paths]
    if params is not None:
        sidecars = [s for s in sidecars if s.get("params") == dataclasses.asdict(params)]
    return sidecars


def dedupe_sources(sources: Iterable[Source]) -> tuple[list[Source], list[Source]]:
    """Drop sources whose bytes equal those of a source with a smaller key: (kept, dropped)."""
    seen: set[str] = set()
    kept, dropped = [], []
    for source in sorted(sources, key=lambda s: s.key):
        digests = b"".join(hashlib.sha1(read_bytes(p)).digest() for p in source.paths)
        digest = hashlib.sha1(digests).hexdigest()
        (dropped if digest in seen else kept).append(source)
        seen.add(digest)
    return kept, dropped
