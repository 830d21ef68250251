"""The evaluation run: pick clips, code each with APCodec and Opus, score every result.

Clips come from a corpus folder (its `manifest.jsonl`: the splits never trained on, the
in-source "validation" and the out-of-source "heldout" of held-out packages) or from any
folder of audio files labelled with one category. The choice is deterministic: within each
package (or sub-folder) clips are ordered by a hash of their path, and packages take turns,
so `--max-clips 3` gives three different packages and the same three clips on every run.

Each clip is read as 48 kHz mono and cropped to its first `seconds`. APCodec codes it
through real files (`encode_file` to a `.apc`, whose size gives the bitrate, then
`decode_file`), Opus through opusenc/opusdec. Every system yields one row (a dict): the
clip, its category, the system, the measured kbit/s, the coding time and each metric.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import itertools
import math
import os
import time
from collections import defaultdict
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, Sequence

import numpy as np
import soundfile as sf

from .. import runtime
from ..data.manifest import read_manifest, split_score
from ..errors import ApcodecError
from ..format.atomic import scratch_dir
from ..format.audio import AUDIO_EXTENSIONS, probe, read_blocks
from ..units import SAMPLE_RATE as RATE
from . import metrics, opus

if TYPE_CHECKING:  # torch loads with the codec, only when a run starts
    from ..codec import Codec

CATEGORIES = ("speech", "music")
Row = dict[str, Any]


class ClipError(ApcodecError, ValueError):
    """No usable clips, or a folder that is neither a corpus nor holds audio."""


@dataclasses.dataclass(frozen=True)
class Clip:
    """One audio file to evaluate: a display name, its path, its category."""

    name: str
    path: str
    category: str


@dataclasses.dataclass(frozen=True)
class Settings:
    """What to run on every clip.

    Attributes:
        seconds: Longest stretch of a clip used, from its start.
        opus_kbps: Opus bitrates to compare with (empty: no Opus).
        opus_vbr: Opus in VBR (opusenc's default); False: hard CBR.
        report: Folder of a listening report: each clip's source and the decoding of the
            `listened` systems go there as audio and spectrograms (None: no report).
    """

    seconds: float = 10.0
    opus_kbps: tuple[float, ...] = (6.0, 12.0)
    opus_vbr: bool = True
    report: str | None = None

    def opus_system(self, kbps: float) -> str:
        """The name of the Opus system at `kbps` in the rows: 'opus-6k-vbr'."""
        return f"opus-{kbps:g}k-{'vbr' if self.opus_vbr else 'cbr'}"

    @property
    def listened(self) -> tuple[str, ...]:
        """The systems a listening report plays: APCodec, and Opus at the lowest bitrate
        of the run (6 kbit/s, APCodec's own) when Opus runs."""
        return ("apcodec",) + tuple(self.opus_system(k) for k in sorted(self.opus_kbps)[:1])


def _interleave(groups: dict[str, list[Clip]]) -> list[Clip]:
    """Hash-ordered clips of each group, the groups taking turns in name order."""
    ordered = [sorted(groups[g], key=lambda c: split_score(c.path)) for g in sorted(groups)]
    return [c for batch in itertools.zip_longest(*ordered) for c in batch if c is not None]


#: The splits of a corpus that no training run reads.
EVAL_SPLITS = ("validation", "heldout")


def corpus_clips(data: Path, category: str | None, min_seconds: float) -> list[Clip]:
    """Clips of a corpus folder never trained on, by category, in the deterministic order."""
    groups: dict[str, list[Clip]] = defaultdict(list)
    for row in read_manifest(data / "manifest.jsonl"):
        if row["split"] in EVAL_SPLITS and row["duration"] >= min_seconds and \
                row["category"] == (category or row["category"]):
            name = Path(row["path"]).name
            groups[f"{row['category']}/{row['package']}"].append(
                Clip(name, str(data / row["path"]), row["category"]))
    return _interleave(groups)


def folder_clips(data: Path, category: str, min_seconds: float) -> list[Clip]:
    """Every audio file under a folder (sub-folders taking turns), labelled `category`."""
    groups: dict[str, list[Clip]] = defaultdict(list)
    for path in sorted(data.rglob("*")):
        if path.suffix.lower() in AUDIO_EXTENSIONS and path.is_file() and \
                probe(str(path)).duration >= min_seconds:
            relative = path.relative_to(data)
            groups[str(relative.parent)].append(Clip(str(relative), str(path), category))
    return _interleave(groups)


def collect_clips(data: str | os.PathLike, category: str | None, max_clips: int | None,
                  min_seconds: float = 1.0) -> list[Clip]:
    """Clips to evaluate: at most `max_clips` per category, in the deterministic order.

    Raises:
        ClipError: A plain folder without `category`, or nothing usable found.
    """
    data = Path(data)
    if (data / "manifest.jsonl").is_file():
        clips = corpus_clips(data, category, min_seconds)
    elif category is None:
        raise ClipError(f"{data} has no manifest.jsonl: name the category of its audio "
                        f"(--category {'/'.join(CATEGORIES)})")
    else:
        clips = folder_clips(data, category, min_seconds)
    by_category: dict[str, list[Clip]] = defaultdict(list)
    for clip in clips:
        by_category[clip.category].append(clip)
    chosen = [c for cat in sorted(by_category) for c in by_category[cat][:max_clips]]
    if not chosen:
        raise ClipError(f"no audio clips of at least {min_seconds:g} s found in {data}")
    return chosen


def load_clip(path: str, seconds: float) -> np.ndarray:
    """The first `seconds` of an audio file as (T,) float32 mono at 48 kHz."""
    _, total, blocks = read_blocks(path, RATE, mono=True)
    wanted, parts = min(total, round(seconds * RATE)), []
    for block in blocks:
        parts.append(block[0])
        if sum(len(p) for p in parts) >= wanted:
            break
    return np.concatenate(parts)[:wanted] if parts else np.zeros(0, np.float32)


def apcodec_round_trip(codec: "Codec", wav: np.ndarray, tmp: Path) -> tuple[np.ndarray, int]:
    """APCodec round trip through real files: (decoded (T,) audio, `.apc` size in bytes)."""
    source, coded, decoded = tmp / "in.wav", tmp / "clip.apc", tmp / "out.wav"
    sf.write(source, wav, RATE, subtype="FLOAT")
    codec.encode_file(str(source), str(coded))
    codec.decode_file(str(coded), str(decoded), subtype="FLOAT")
    audio, _ = sf.read(decoded, dtype="float32", always_2d=True)
    return audio[:, 0], coded.stat().st_size


def _systems(codec: "Codec", wav: np.ndarray, settings: Settings,
             tmp: Path) -> Iterator[tuple[str, np.ndarray, int, float]]:
    """(system name, decoded audio, coded bytes, coding seconds) of every system."""
    start = time.perf_counter()
    audio, size = apcodec_round_trip(codec, wav, tmp)
    yield "apcodec", audio, size, time.perf_counter() - start
    for kbps in settings.opus_kbps:
        start = time.perf_counter()
        result = opus.round_trip(wav, kbps, settings.opus_vbr, tmp)
        yield settings.opus_system(kbps), result.audio, result.size_bytes, \
            time.perf_counter() - start


def evaluate_clip(codec: "Codec", clip: Clip, settings: Settings) -> list[Row]:
    """Code one clip with every system and score each result: one row per system.

    With `settings.report`, the clip's files of the listening report are written too."""
    wav = load_clip(clip.path, settings.seconds)
    seconds = len(wav) / RATE
    rows, heard = [], {"source": wav}
    with scratch_dir("apcodec-eval-") as tmp:  # removed even when a worker is stopped
        for system, audio, size, coding_s in _systems(codec, wav, settings, tmp):
            if settings.report and system in settings.listened:
                heard[system] = audio
            start = time.perf_counter()
            profile = metrics.hop_peak_profile(wav, audio, RATE)  # hop_peaks is its largest
            scores = metrics.score(wav, audio, RATE, speech=clip.category == "speech",
                                   known={"hop_peaks": float(np.max(profile))})
            rows.append({"clip": clip.name, "path": clip.path, "category": clip.category,
                         "system": system, "seconds": round(seconds, 4), "bytes": size,
                         "kbps": size * 8 / seconds / 1000 if seconds else math.nan, **scores,
                         "hop_peak_profile": profile,
                         "coding_s": round(coding_s, 3),
                         "scoring_s": round(time.perf_counter() - start, 3)})
    if settings.report:
        from .listening.media import write_clip  # only a report needs it

        write_clip(settings.report, dataclasses.asdict(clip), heard)
    return rows


def _load_codec(weights: str, device: str) -> "Codec":
    """A worker process's codec (the context `evaluate_clip` gets there)."""
    from ..codec import Codec

    return Codec.load(weights, device=device)


def evaluate_all(clips: Sequence[Clip], settings: Settings, codec: "Codec", jobs: int = 1,
                 threads: int = 0, on_clip: Callable[[Clip], None] | None = None) -> list[Row]:
    """Rows of every clip, in clip order.

    With `jobs` > 1 the clips are spread over worker processes, each loading the codec's
    weights file onto the codec's device and using `threads` torch threads (0: its share
    of the CPU cores).
    """
    results: list[list[Row]] = [[] for _ in clips]
    if jobs <= 1:
        for i, clip in enumerate(clips):
            results[i] = evaluate_clip(codec, clip, settings)
            if on_clip:
                on_clip(clip)
        return [row for rows in results for row in rows]
    device = str(next(codec.model.parameters()).device)
    threads = threads or max(1, (os.cpu_count() or 1) // jobs)
    # Spawned workers (runtime.py): the codec here may have initialised CUDA already.
    with runtime.process_pool(jobs, _load_codec, (str(codec.weights.path), device),
                                threads) as pool:
        with runtime.sigint_deferred():
            futures = {pool.submit(runtime.in_worker, evaluate_clip, clip, settings): i
                       for i, clip in enumerate(clips)}
        for future in concurrent.futures.as_completed(futures):
            results[futures[future]] = future.result()
            if on_clip:
                on_clip(clips[futures[future]])
    return [row for rows in results for row in rows]
