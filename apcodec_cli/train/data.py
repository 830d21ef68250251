"""Training audio: find the clips of a data folder and read them at 48 kHz mono.

Three layouts are understood:

* a corpus folder (`corpus.py`): `manifest.jsonl` rows with `path` and `split`;
* a pack folder (`pack.py`): `index.json` whose segments lie at (file, offset, frames);
* any other folder: every audio file below it; about 5 % of the files (by a hash of their
  relative path, as the corpus does) form the validation split.

Files that are not 48 kHz mono are resampled and downmixed when read whole; reading a window
(`read_window`, used when streaming crops from disk) needs 48 kHz mono files.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np
import soundfile as sf

from ..data.corpus import list_audio_files
from ..data.manifest import read_manifest, split_score
from ..data.pack import INDEX_NAME, read_pack_index
from ..errors import ApcodecError
from ..format.audio import AudioError, probe, read_blocks, resampled_length
from ..units import SAMPLE_RATE

MANIFEST = "manifest.jsonl"
FOLDER_VAL_FRACTION = 0.05


class DataError(ApcodecError):
    """A data folder that holds no usable audio, or audio that cannot be read as asked."""


@dataclasses.dataclass(frozen=True)
class Clip:
    """One stretch of audio in a file.

    Attributes:
        path: The file.
        offset: First sample of the clip in the file (at the file's rate).
        frames: Samples of the clip at 48 kHz.
        split: "train" or "validation".
        native: The file is 48 kHz mono, so windows can be read without resampling.
        category: "speech", "music", "other", or "" where the data folder does not say.
        package: The source the clip comes from (a corpus manifest's "package"), or "".
    """

    path: str
    offset: int
    frames: int
    split: str
    native: bool = True
    category: str = ""
    package: str = ""


def find_clips(root: str | os.PathLike) -> list[Clip]:
    """Every clip of a corpus, pack or plain folder, in a deterministic order."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"data folder not found: {root}")
    if (root / MANIFEST).is_file():
        clips = [_file_clip(root / row["path"], row.get("split", "train"),
                            row.get("category", ""), row.get("package", ""))
                 for row in read_manifest(root / MANIFEST)]
    elif (root / INDEX_NAME).is_file():
        clips = [Clip(str(root / e["file"]), int(e["offset"]), int(e["frames"]),
                      e.get("split", "train"), category=e.get("category", ""))
                 for e in read_pack_index(root)["segments"]]
    else:
        clips = [_file_clip(p, _folder_split(p.relative_to(root).as_posix()))
                 for p in list_audio_files(root)]
    clips = [c for c in clips if c.frames > 0]
    if not clips:
        raise DataError(f"no audio found in {root}")
    return clips


def _folder_split(relative: str) -> str:
    return "validation" if split_score(relative) < FOLDER_VAL_FRACTION else "train"


def _file_clip(path: Path, split: str, category: str = "", package: str = "") -> Clip:
    try:
        info = probe(str(path))
    except AudioError as exc:
        raise DataError(str(exc)) from None
    native = info.sample_rate == SAMPLE_RATE and info.channels == 1
    frames = resampled_length(info.frames, info.sample_rate, SAMPLE_RATE)
    return Clip(str(path), 0, frames, split, native, category, package)


def read_clip(clip: Clip) -> np.ndarray:
    """The whole clip as float32 (frames,) at 48 kHz mono."""
    if clip.native:
        return read_window(clip, 0, clip.frames)
    _, _, blocks = read_blocks(clip.path, SAMPLE_RATE, mono=True)
    return np.concatenate([b[0] for b in blocks])[: clip.frames]


def read_window(clip: Clip, start: int, length: int) -> np.ndarray:
    """`length` samples (float32) of a native clip from `start`, zero-padded past its end."""
    if not clip.native:
        raise DataError(f"{clip.path} is not 48 kHz mono: load the data resident "
                        "or build a corpus from it first")
    frames = max(0, min(length, clip.frames - start))
    audio, _ = sf.read(clip.path, start=clip.offset + start, frames=frames,
                       dtype="float32", always_2d=True)
    out = np.zeros(length, np.float32)
    out[: audio.shape[0]] = audio[:, 0]
    return out
