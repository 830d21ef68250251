"""The quality of a training-data pack: its Opus audio against the corpus it was made of.

    index["quality"] = measure_pack_quality("data/corpus", "data/pack")   # build_corpus.py

Here, not in `data/`: the corpus builder stays below the evaluation (data < evaluate), and
this is a measure, taken with `metrics.log_spectral_distance`.
"""

from __future__ import annotations

import os
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from ..data.pack import read_pack_index, read_pack_segment
from .metrics import log_spectral_distance


def measure_pack_quality(corpus_dir: str | os.PathLike[str], pack_dir: str | os.PathLike[str],
                         per_category: int = 100) -> dict[str, Any]:
    """Log-spectral distance of pack audio against its FLAC segments.

    Measured on up to ``per_category`` segments of each category, evenly spread in the index.

    Returns:
        Mean LSD in dB, overall ("all") and per category: over the full band and below 16 kHz
        with spectra floored at -100 dB (every quiet bin counts), and over the full band
        floored at -60 dB re full scale ("lsd_db_floor60": only the audible part of the
        spectrum counts); plus the number of segments measured.
    """
    by_category: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for entry in read_pack_index(pack_dir)["segments"]:
        by_category[entry["category"]].append(entry)
    picks = [entries[i] for entries in by_category.values()
             for i in sorted(set(np.linspace(0, len(entries) - 1,
                                             min(per_category, len(entries))).astype(int)))]
    bands = {"lsd_db": (None, -100.0), "lsd_db_0_16k": (16000.0, -100.0),
             "lsd_db_floor60": (None, -60.0)}
    values: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for entry in picks:
        reference, _ = sf.read(Path(corpus_dir) / entry["segment"], dtype="float32")
        decoded = read_pack_segment(pack_dir, entry)
        for name, (max_hz, floor_db) in bands.items():
            lsd = log_spectral_distance(reference, decoded, max_hz=max_hz, floor_db=floor_db)
            if np.isfinite(lsd):
                values["all"][name].append(lsd)
                values[entry["category"]][name].append(lsd)
    return {"segments": len(picks), **{group: {k: round(float(np.mean(v)), 3)
                                               for k, v in d.items()}
                                       for group, d in sorted(values.items())}}
