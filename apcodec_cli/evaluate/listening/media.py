"""The files a listening report holds for one clip: audio players' sources and spectrograms.

`apcodec eval --report` calls `write_clip` for every clip, in the process that coded it,
with the clip's signals as scored (the source, APCodec's and Opus's decoding). It writes,
under `clips/<name>-<hash>/` of the report's folder:

    <signal>.flac        16-bit FLAC, 48 kHz mono: a lossless copy of the scored signal
                         rounded to 16 bits and clipped at full scale (browsers
                         play FLAC from a file:// page)
    <signal>-full.png    spectrogram 0-24 kHz     } one colour scale for the whole clip
    <signal>-zoom.png    spectrogram 0-4 kHz      } (spectrogram.py)
    clip.json            what the page needs: name, category, seconds, signals, dB scale

The folder's name is the clip's file name made safe for a URL, plus a hash of its path, so
two clips called `intro.ogg` in different packages get two folders.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import soundfile as sf

from ...io.audio import to_int16
from ...units import SAMPLE_RATE
from . import png, spectrogram

CLIPS = "clips"
AUDIO_SUFFIX = ".flac"
AUDIO_FORMAT = "16-bit FLAC, 48 kHz, mono"
COLOURS = 64  # 1.3 dB a step over 80 dB; images about 30 % smaller than with 256 colours
INDEX = "clip.json"


def clip_folder(name: str, path: str) -> str:
    """'clips/<safe name>-<8 hex digits>', relative to the report: unique by `path`."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(name).stem).strip("._") or "clip"
    return f"{CLIPS}/{stem[:40]}-{hashlib.sha1(path.encode()).hexdigest()[:8]}"


def file_names(signal: str) -> dict[str, str]:
    """The names of one signal's files in its clip's folder: audio and one image a view."""
    return {"audio": signal + AUDIO_SUFFIX,
            **{view.name: f"{signal}-{view.name}.png" for view in spectrogram.VIEWS}}


def write_clip(report: str | Path, clip: Mapping[str, Any],
               signals: Mapping[str, np.ndarray]) -> Path:
    """Write one clip's audio, spectrograms and `clip.json`; returns the clip's folder.

    Args:
        report: The report's folder.
        clip: "name", "path" (which names its folder) and "category" of the clip.
        signals: Signal name ("source", then a system's name) -> (T,) float audio at
            48 kHz, in the order the page shows them.
    """
    folder = Path(report) / clip_folder(clip["name"], clip["path"])
    folder.mkdir(parents=True, exist_ok=True)
    images, top = spectrogram.clip_images(signals, COLOURS)
    colours = spectrogram.palette(COLOURS)
    for signal, audio in signals.items():
        names = file_names(signal)
        samples, _ = to_int16(np.asarray(audio, np.float32))
        sf.write(folder / names["audio"], samples, SAMPLE_RATE, format="FLAC",
                 subtype="PCM_16")
        for view in spectrogram.VIEWS:
            (folder / names[view.name]).write_bytes(
                png.encode_palette_png(images[signal, view.name], colours))
    seconds = len(next(iter(signals.values()))) / SAMPLE_RATE
    index = {"name": clip["name"], "category": clip["category"],
             "seconds": round(seconds, 3), "signals": list(signals),
             "top_db": top, "range_db": spectrogram.RANGE_DB}
    (folder / INDEX).write_text(json.dumps(index, indent=1) + "\n")
    return folder
