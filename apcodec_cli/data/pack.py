"""Compact training pack: chosen corpus segments re-encoded as Ogg Opus, with a JSON index.

A pack is a folder with a few ``CATEGORY_SPLIT_NN.opus`` files (mono, 48 kHz) and
``index.json``. Segments are written one after another with ``gap_frames`` of digital silence
between them (so codec frames never straddle two segments); each index entry gives its
``file``, ``offset`` and ``frames`` in samples, plus the manifest fields (``split`` included: a
pack holds training segments and, optionally, a few validation ones). soundfile (libsndfile
>= 1.1) reads and seeks Ogg Opus sample-exactly, so nothing else is needed to read it back::

    index = read_pack_index("data/pack")
    audio = read_pack_segment("data/pack", index["segments"][0])
"""

from __future__ import annotations

import hashlib
import heapq
import json
import os
from collections import defaultdict
from functools import partial
from multiprocessing import Pool
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import numpy as np
import soundfile as sf

from ..format.atomic import atomic_path, atomic_text
from .corpus import SAMPLE_RATE

INDEX_NAME = "index.json"
PACK_FORMAT = "apcodec-pack-1"
GAP_FRAMES = 960
_META = ("source", "package", "category", "split", "start", "duration", "rms_db",
         "source_rate", "bandwidth_hz")


def opus_compression_level(kbps: float) -> float:
    """soundfile compression level giving ``kbps`` for mono Opus.

    libsndfile maps level q to a target of (1 - q) * 250 + 6 kbit/s per channel.
    """
    return float(np.clip(1.0 - (kbps - 6.0) / 250.0, 0.0, 1.0))


def hours_for_size(max_mib: float, kbps: float, overhead: float = 1.06) -> float:
    """Hours of mono audio at ``kbps`` that fit in ``max_mib`` (with VBR and Ogg overhead)."""
    return max_mib * 2**20 * 8 / (kbps * 1000 * overhead) / 3600


def _order(path: str) -> str:
    return hashlib.sha1(path.encode("utf-8")).hexdigest()


def select_segments(rows: Sequence[Mapping[str, Any]], budgets: Mapping[str, float],
                    split: str = "train", min_bandwidth_hz: float = 0.0) -> list[dict[str, Any]]:
    """Choose the segments of one split for a pack: per category up to its budget in hours.

    Within a category, packages take turns (the one with the fewest seconds so far goes next),
    so every package gets about the same time; each package's segments come in the order of a
    hash of their path, which spreads the choice over sources and over time. Deterministic.
    """
    chosen: list[dict[str, Any]] = []
    for category, hours in sorted(budgets.items()):
        queues: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
        for row in rows:
            if (row["category"] == category and row["split"] == split
                    and row["bandwidth_hz"] >= min_bandwidth_hz):
                queues[row["package"]].append(row)
        for queue in queues.values():
            queue.sort(key=lambda r: _order(r["path"]), reverse=True)  # pop() takes the smallest
        heap = [(0.0, name) for name in sorted(queues)]
        total = 0.0
        while heap and total < hours * 3600:
            seconds, name = heapq.heappop(heap)
            row = queues[name].pop()
            chosen.append(dict(row))
            total += row["duration"]
            if queues[name]:
                heapq.heappush(heap, (seconds + row["duration"], name))
    return chosen


def _write_shard(job: tuple[str, list[dict[str, Any]]], corpus_dir: Path, pack_dir: Path,
                 kbps: float) -> list[dict[str, Any]]:
    name, rows = job
    entries, offset, gap = [], 0, np.zeros(GAP_FRAMES, np.float32)
    with atomic_path(pack_dir / name) as tmp:
        with sf.SoundFile(tmp, "w", SAMPLE_RATE, 1, format="OGG", subtype="OPUS",
                          compression_level=opus_compression_level(kbps)) as f:
            for row in rows:
                audio, rate = sf.read(corpus_dir / row["path"], dtype="float32")
                if rate != SAMPLE_RATE or audio.ndim != 1:
                    raise ValueError(f"{row['path']}: expected 48 kHz mono")
                f.write(gap)
                offset += GAP_FRAMES
                f.write(audio)
                entries.append({"file": name, "offset": offset, "frames": len(audio),
                                "segment": row["path"], **{k: row[k] for k in _META if k in row}})
                offset += len(audio)
            f.write(gap)
    return entries


def _shards(rows: Sequence[Mapping[str, Any]], shard_hours: float
            ) -> list[tuple[str, list[dict[str, Any]]]]:
    """Group rows into files "CATEGORY_SPLIT_NN.opus" of at most ``shard_hours``."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        groups[(row["category"], row.get("split", "train"))].append(dict(row))
    shards = []
    for (category, split), members in sorted(groups.items()):
        parts: list[list[dict[str, Any]]] = [[]]
        seconds = 0.0
        for row in members:
            if parts[-1] and seconds >= shard_hours * 3600:
                parts.append([])
                seconds = 0.0
            parts[-1].append(row)
            seconds += row["duration"]
        shards += [(f"{category}_{split}_{i:02d}.opus", part) for i, part in enumerate(parts)]
    return shards


def write_pack(corpus_dir: str | os.PathLike[str], rows: Sequence[Mapping[str, Any]],
               pack_dir: str | os.PathLike[str], kbps: float = 64.0, shard_hours: float = 0.5,
               jobs: int = 1) -> dict[str, Any]:
    """Encode segments into a pack; reuses an existing pack made of the same segments.

    Args:
        corpus_dir: Folder the rows' ``path`` fields are relative to.
        rows: Manifest rows to pack (see `select_segments`).
        pack_dir: Output folder (created).
        kbps: Opus target bitrate (VBR).
        shard_hours: Most audio in one .opus file; a file holds one category and one split.
        jobs: Files encoded in parallel.

    Returns:
        The index (also written to ``pack_dir/index.json``).
    """
    corpus_dir, pack_dir = Path(corpus_dir), Path(pack_dir)
    pack_dir.mkdir(parents=True, exist_ok=True)
    shards = _shards(rows, shard_hours)
    wanted = [r["path"] for _, part in shards for r in part]
    if (pack_dir / INDEX_NAME).exists():
        old = read_pack_index(pack_dir)
        if (old.get("kbps") == kbps and [e["segment"] for e in old["segments"]] == wanted
                and all((pack_dir / n).exists() and (pack_dir / n).stat().st_size == size
                        for n, size in old["files"].items())):
            return old
        (pack_dir / INDEX_NAME).unlink()  # first: an index never names missing shards
        for name in old.get("files", {}):
            (pack_dir / name).unlink(missing_ok=True)
    work = partial(_write_shard, corpus_dir=corpus_dir, pack_dir=pack_dir, kbps=kbps)
    if jobs > 1 and len(shards) > 1:
        with Pool(min(jobs, len(shards))) as pool:
            results = pool.map(work, shards, chunksize=1)
    else:
        results = [work(s) for s in shards]
    segments = [e for part in results for e in part]
    hours: dict[str, float] = defaultdict(float)
    for e in segments:
        hours[f"{e['category']}/{e.get('split', 'train')}"] += e["frames"] / SAMPLE_RATE / 3600
    index = {"format": PACK_FORMAT, "sample_rate": SAMPLE_RATE, "codec": "opus", "kbps": kbps,
             "gap_frames": GAP_FRAMES,
             "files": {n: (pack_dir / n).stat().st_size for n, _ in shards},
             "hours": {k: round(v, 6) for k, v in sorted(hours.items())}, "segments": segments}
    atomic_text(pack_dir / INDEX_NAME, json.dumps(index, indent=1))  # last, and whole
    return index


def read_pack_index(pack_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """Load a pack's ``index.json``."""
    return json.loads((Path(pack_dir) / INDEX_NAME).read_text())


def read_pack_segment(pack_dir: str | os.PathLike[str], entry: Mapping[str, Any]) -> np.ndarray:
    """Decode one segment of a pack (float32, mono, 48 kHz) with soundfile."""
    audio, _ = sf.read(Path(pack_dir) / entry["file"], start=entry["offset"],
                       frames=entry["frames"], dtype="float32")
    return audio


def iter_pack(pack_dir: str | os.PathLike[str]) -> Iterator[tuple[dict[str, Any], np.ndarray]]:
    """Yield (index entry, audio) for every segment, decoding each file once."""
    by_file: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for entry in read_pack_index(pack_dir)["segments"]:
        by_file[entry["file"]].append(entry)
    for name, entries in by_file.items():
        audio, _ = sf.read(Path(pack_dir) / name, dtype="float32")
        for entry in entries:
            yield entry, audio[entry["offset"]: entry["offset"] + entry["frames"]]
