"""`apcodec info`: a readable (or JSON) account of a `.apc` file and its integrity."""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import BinaryIO

import numpy as np

from ..format.bitstream import ApcError, ApcReader, Header, peek_header
from ..format.levels import STEP_DB, describe
from ..models.limits import check_decodable


def expand(paths: tuple[str, ...]) -> list[str]:
    """The files to describe: each path, with a folder replaced by the `.apc` files under
    it (sorted, as encode and decode find them)."""
    from .plan import APC_EXTENSION, scan

    found: list[str] = []
    for path in paths:
        if path != "-" and os.path.isdir(path):
            found += [str(p) for p in scan(Path(path), frozenset({APC_EXTENSION}))[0]]
        else:
            found.append(path)
    return found


def _human(seconds: float) -> str:
    minutes, secs = divmod(seconds, 60)
    return f"{int(minutes)}:{secs:06.3f}" if minutes else f"{secs:.3f} s"


def describe_file(path: str, as_json: bool = False, fileobj: BinaryIO | None = None
                  ) -> tuple[str, bool]:
    """Describe one file (read from `fileobj`, a seekable file, when given; `path` then
    only names it); returns (text, intact). Never raises for a bad file."""
    try:
        with open(path, "rb") if fileobj is None else contextlib.nullcontext(fileobj) as f:
            h, problems, chunks, gains = _check(f)
            size = f.seek(0, os.SEEK_END)
    except (ApcError, OSError) as exc:
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if as_json:
            return json.dumps({"file": path, "ok": False, "errors": [message]}), False
        return f"{path}: error: {message}", False
    actual = size * 8 / h.duration if h.duration else None
    model = _model(h)
    fields = {
        "file": path,
        "ok": not problems,
        "format_version": h.version,
        "model": h.model_name,
        "streamable": h.streamable,
        "live": chunks is not None,
        "weights_fingerprint": h.fingerprint.hex(),
        "network_fingerprint": h.network_fingerprint.hex() if h.coded else None,
        "level_segment_s": h.level_samples / h.sample_rate if h.has_levels else None,
        "level_gains_db": None if gains is None else  # per channel, segment by segment
        [[round(float(g) * STEP_DB, 2) for g in channel] for channel in gains],
        "decodes_with": model,
        "channels": h.channels,
        "source_sample_rate": h.source_sample_rate,
        "source_samples": h.source_length,
        "sample_rate": h.sample_rate,
        "duration_s": round(h.duration, 6),
        "frame_rate": h.frame_rate,
        "codebooks": h.n_codebooks,
        "bits_per_code": h.bits_per_code,
        "chunk_frames": h.chunk_frames,
        "chunks": h.n_chunks if chunks is None else chunks,
        "bytes": size,
        "nominal_bitrate": h.nominal_bitrate,
        "bitrate_on_disk": round(actual, 1) if actual else None,
        "errors": [str(p) for p in problems],
    }
    if as_json:
        return json.dumps(fields), not problems
    lines = [
        f"{path}",
        f"  model        {h.model_name}{' (streamable)' if h.streamable else ''}, "
        f"weights {h.fingerprint.hex()}",
        f"  decodes with {model or _not_installed(h)}",
        f"  source       {h.channels} ch, {h.source_sample_rate} Hz, {h.source_length} samples",
        f"  duration     {_human(h.duration)} at {h.sample_rate} Hz",
        f"  codes        {h.n_codebooks} x {h.bits_per_code} bit at {h.frame_rate:g} frames/s "
        f"= {h.nominal_bitrate:g} bit/s nominal, "
        + {1: "bit-packed (format 1)", 2: "range-coded (format 2)",
           3: "range-coded with level gains (format 3)"}[h.version],
        f"  size         {size} bytes"
        + (f", {actual / 1000:.3f} kbit/s on disk ({100 * actual / h.nominal_bitrate:.1f} % "
           "of nominal)" if actual else ""),
        (f"  integrity    {h.n_chunks} chunks of {h.chunk_frames} frames: "
         if chunks is None else
         f"  integrity    live stream, {chunks} records of up to {h.chunk_frames} frames: ")
        + ("all intact" if not problems else f"{len(problems)} damaged"),
    ]
    if gains is not None:
        lines.insert(6, f"  level gains  {h.n_level_segments} segments of "
                     f"{h.level_samples / h.sample_rate:g} s: {describe(gains)}")
    lines += [f"    {p}" for p in problems]
    return "\n".join(lines), not problems


_NOT_INSTALLED = "not installed: no release in the searched folders has it (apcodec models)"


def _not_installed(h: Header) -> str:
    from ..models.releases import retired

    gone = retired(h)
    return _NOT_INSTALLED if gone is None else f"not installed: release {gone.how_to_get()}"


def _model(h: Header) -> str | None:
    """The installed release (or other weights file) that decodes the codes of `h`."""
    from ..errors import ApcodecError
    from ..models.releases import find  # torch only if weights files must be opened

    try:
        match = find(h)
    except (ApcodecError, OSError):
        return None
    return None if match is None else match.describe()


def _check(f: object) -> tuple[Header, list[ApcError], int | None, np.ndarray | None]:
    """(header with lengths, problems, records of a live stream or None for a file, the
    level gains of a version 3 file (0 for damaged chunks) or None). A live stream is read
    to its end (its lengths record says where that is); a damaged record raises, as a
    damaged header does."""
    header = peek_header(f)
    check_decodable(header)  # what decode checks first: the same function
    if not header.live:
        reader = ApcReader(f)
        problems = reader.verify()
        gains = None
        if header.has_levels:
            try:
                gains = reader.levels(skip={getattr(p, "chunk", None) for p in problems})
            except ApcError:  # a chunk cut short: its problem is listed already
                pass
        return reader.header, problems, None, gains
    from ..format.live import LiveReader

    reader = LiveReader(f)
    records = sum(1 for _ in reader)
    check_decodable(reader.file_header)
    return reader.file_header, [], records, None
