"""Estimate the range coder's code tables from training audio and store them in the weights.

    python scripts/code_tables.py --weights weights/apcodec-r4-7aea9d63b2b27a9b.pt --data data/corpus \\
        --max-minutes 30 --speech-share 0.5 --measure

Encodes the corpus's training segments (manifest.jsonl rows with split "train", in an
order that mixes sources and categories; --speech-share fixes the share of speech, which
the corpus's own mix, about a quarter, leaves too small for tables that save on speech:
weights/README.md) with the weights until --max-minutes have passed,
counts their codes as the coder sees them, fits the tables (`apcodec_cli/train/
codetables.py`) and writes them into the weights file (atomically; everything else in it
is kept; --out writes a copy instead). The weights fingerprint changes: files coded
afterwards are range-coded (format version 2) and name these tables.

--measure then codes the validation rows (all of them, or --measure-minutes' worth) and
prints, per category: the size of the version 1 and version 2 files of every clip, the
order-0 entropy of the codes for scale, whether every version 2 file reads back to exactly
the codes, and (--time-seconds) the CPU time of the range coder against the model's.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import time
from collections import defaultdict
from pathlib import Path

import click
import numpy as np
import torch

from apcodec_cli import runtime
from apcodec_cli.codec import Codec
from apcodec_cli.format import bitstream
from apcodec_cli.format.audio import read_blocks
from apcodec_cli.models import releases, weights
from apcodec_cli.train.codetables import TableCounts


def _rows(data: Path, split: str) -> list[dict]:
    """Manifest rows of `split`, ordered by a hash of their path (mixes sources)."""
    with open(data / "manifest.jsonl") as f:
        rows = [json.loads(line) for line in f if line.strip()]
    rows = [r for r in rows if r.get("split") == split]
    return sorted(rows, key=lambda r: hashlib.sha256(r["path"].encode()).hexdigest())


def _mixed(rows: list[dict], speech_share: float) -> list[dict]:
    """`rows` reordered so that every prefix holds about `speech_share` of its seconds (the
    manifest's durations) in speech rows; the rest of the longer category follows."""
    speech = [r for r in rows if r["category"] == "speech"][::-1]
    other = [r for r in rows if r["category"] != "speech"][::-1]
    mixed, seconds = [], {True: 0.0, False: 0.0}
    while speech and other:
        total = seconds[True] + seconds[False]
        pick = seconds[True] <= speech_share * total
        row = (speech if pick else other).pop()
        seconds[pick] += float(row["duration"])
        mixed.append(row)
    return mixed + speech[::-1] + other[::-1]


class _Coder:
    """Codes of corpus segments, optionally cached in an .npz keyed by network and path."""

    def __init__(self, codec: Codec, cache: Path | None) -> None:
        self.codec, self.cache = codec, cache
        self.prefix = codec.weights.network_fingerprint.hex() + ":"
        self.saved = dict(np.load(cache)) if cache and cache.exists() else {}

    def __call__(self, data: Path, row: dict) -> tuple[np.ndarray, int, int, int]:
        """(codes (C, K, N), source rate, source length, coded length) of one segment."""
        rate = self.codec.config.sample_rate
        info, total, blocks = read_blocks(str(data / row["path"]), rate)
        key = self.prefix + row["path"]
        if key not in self.saved:
            wav = np.concatenate(list(blocks), axis=1)
            self.saved[key] = self._encode(wav).astype(np.int16)
        return self.saved[key].astype(np.int64), info.sample_rate, info.frames, total

    def _encode(self, wav: np.ndarray) -> np.ndarray:
        """(C, T) audio at the codec rate -> (C, K, N) codes, as `apcodec encode` makes.

        The streamable model's whole-sequence pass over the audio padded with one more
        frame gives the codes of its frame-by-frame encoder, the extra last frame
        included (identical on the clips checked), several times faster."""
        if not self.codec.config.causal:
            return self.codec.encode(wav)
        spf = self.codec.config.samples_per_frame
        padded = np.pad(wav, ((0, 0), (0, -wav.shape[1] % spf + spf)))
        with torch.inference_mode():
            return self.codec.model.encode(torch.from_numpy(padded)[:, None]).numpy()

    def check_stream(self, data: Path, row: dict) -> bool:
        """Whether `_encode` gives the streamable model's frame-by-frame codes for a row."""
        rate = self.codec.config.sample_rate
        wav = np.concatenate(list(read_blocks(str(data / row["path"]), rate)[2]), axis=1)
        return bool(np.array_equal(self._encode(wav), self.codec.encode(wav)))

    def save(self) -> None:
        if self.cache:
            np.savez(self.cache, **self.saved)


def _count(codec: Codec, coder: _Coder, data: Path, minutes: float,
           speech_share: float | None) -> tuple[TableCounts, dict]:
    counts = TableCounts(codec.config.n_codebooks, 1 << codec.config.bits_per_code,
                         codec.chunk_frames)
    seconds: dict[str, float] = defaultdict(float)
    rows = _rows(data, "train")
    if speech_share is not None:
        rows = _mixed(rows, speech_share)
    start = time.monotonic()
    for row in rows:
        if time.monotonic() - start > minutes * 60:
            break
        codes = coder(data, row)[0]
        counts.add(codes)
        seconds[row["category"]] += codes.shape[2] / codec.config.frame_rate
    coder.save()
    return counts, dict(seconds)


def _measure(codec: Codec, coder: _Coder, data: Path, minutes: float | None) -> None:
    tables = codec.weights.code_tables
    sums: dict[str, np.ndarray] = defaultdict(lambda: np.zeros(4))  # s, v1 B, v2 B, o0 bits
    counts = {}  # order-0 reference: per category and codebook, from the clips themselves
    coder_seconds, identical, start = 0.0, True, time.monotonic()
    for row in _rows(data, "validation"):
        if minutes is not None and time.monotonic() - start > minutes * 60:
            break
        codes, rate, length, total = coder(data, row)
        v2 = _v2_header(codec, codes.shape[0], rate, length, total)
        v1 = dataclasses.replace(v2, version=1, network_fingerprint=None,
                                 fingerprint=codec.weights.network_fingerprint)
        t0 = time.process_time()
        buffer = io.BytesIO()
        bitstream.write_apc(buffer, v2, codes, tables)
        back = bitstream.read_apc(buffer.getvalue(), tables)[1]
        coder_seconds += time.process_time() - t0
        identical &= bool(np.array_equal(back, codes))
        cat = row["category"]
        sums[cat] += (v2.duration, v1.file_size, len(buffer.getvalue()), 0)
        hist = counts.setdefault(cat, np.zeros((codes.shape[1], 1 << v2.bits_per_code)))
        for k in range(codes.shape[1]):
            hist[k] += np.bincount(codes[:, k].ravel(), minlength=hist.shape[1])
    coder.save()
    if codec.config.causal:
        rows = _rows(data, "validation")[:3]
        same = all(coder.check_stream(data, row) for row in rows)
        click.echo(f"whole-sequence codes equal the streaming encoder's on {len(rows)} clips: "
                   f"{same}")
    click.echo("| category | audio | v1 kbit/s | v2 kbit/s | v2 smaller by | order-0 entropy of "
               "the codes, in-sample, kbit/s |")
    click.echo("|---|---|---|---|---|---|")
    for cat, (seconds, v1_bytes, v2_bytes, _) in sorted(sums.items()):
        p = counts[cat] / counts[cat].sum(axis=1, keepdims=True)
        bits = -(counts[cat] * np.log2(np.where(p > 0, p, 1))).sum()
        rate = 8 / seconds / 1000  # bytes -> kbit/s
        click.echo(f"| {cat} | {seconds / 60:.1f} min | {v1_bytes * rate:.3f} | "
                   f"{v2_bytes * rate:.3f} | {100 * (1 - v2_bytes / v1_bytes):.1f} % | "
                   f"{bits / seconds / 1000:.3f} |")
    audio = sum(s[0] for s in sums.values())
    click.echo(f"every v2 file reads back to exactly its codes: {identical}")
    click.echo(f"CPU time of writing and reading all v2 files: {1000 * coder_seconds / audio:.2f} "
               "ms per second of audio")


def _timing(codec: Codec, data: Path, seconds: float, repeats: int = 3) -> None:
    """Time the model's encoder and decoder and the range coder on the same clips (the
    first `seconds` of validation audio), interleaved; best of `repeats`, wall clock and
    CPU time of this process."""
    rate, clips, total = codec.config.sample_rate, [], 0.0
    for row in _rows(data, "validation"):
        if total >= seconds:
            break
        wav = np.concatenate(list(read_blocks(str(data / row["path"]), rate)[2]), axis=1)
        clips.append(wav)
        total += wav.shape[1] / rate
    parts = ("model encoder", "model decoder", "range coder")
    best = {(clock, part): np.inf for clock in ("wall", "cpu") for part in parts}
    for _ in range(repeats):
        spent = dict.fromkeys(best, 0.0)

        def timed(part: str, run):  # noqa: ANN001, ANN202 - a local helper
            wall, cpu = time.perf_counter(), time.process_time()
            result = run()
            spent["wall", part] += time.perf_counter() - wall
            spent["cpu", part] += time.process_time() - cpu
            return result

        for wav in clips:
            codes = timed("model encoder", lambda: codec.encode(wav))
            timed("model decoder", lambda: codec.decode(codes))
            header = _v2_header(codec, codes.shape[0], rate, wav.shape[1], wav.shape[1])
            timed("range coder", lambda: _write_read(header, codes, codec.weights.code_tables))
        best = {key: min(best[key], spent[key]) for key in best}
    for clock in ("wall", "cpu"):
        share = best[clock, "range coder"] / (best[clock, "model encoder"]
                                              + best[clock, "model decoder"])
        click.echo(f"{clock} time on {total:.0f} s of validation audio (best of {repeats}): "
                   + ", ".join(f"{p} {1000 * best[clock, p] / total:.2f} ms/s" for p in parts)
                   + f"; the range coder adds {100 * share:.2f} % to encode + decode")


def _v2_header(codec: Codec, channels: int, rate: int, length: int, total: int
               ) -> bitstream.Header:
    """The header of a range-coded file without level gains (format version 2): what the
    tables code, whose sizes these measurements compare (version 3 adds one byte per 0.2 s
    and channel to either)."""
    return dataclasses.replace(codec.file_header(channels, rate, length, total),
                               version=bitstream.VERSION_CODED, level_frames=0)


def _write_read(header: bitstream.Header, codes: np.ndarray, tables) -> np.ndarray:  # noqa: ANN001
    buffer = io.BytesIO()
    bitstream.write_apc(buffer, header, codes, tables)
    return bitstream.read_apc(buffer.getvalue(), tables)[1]


@click.command()
@click.option("--weights", "weights_path", required=True,
              type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--data", required=True, type=click.Path(exists=True, file_okay=False,
                                                       path_type=Path),
              help="Corpus folder with manifest.jsonl (read only).")
@click.option("--max-minutes", required=True, type=click.FloatRange(min=0),
              help="Time for encoding training audio (the fit itself comes after); 0: keep "
                   "the tables the weights hold (to --measure them).")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the weights with their tables here (default: --weights itself).")
@click.option("--buckets", default=128, show_default=True, type=click.IntRange(1, 1024),
              help="Context buckets per codebook.")
@click.option("--smoothing", default=64.0, show_default=True, type=click.FloatRange(min=0),
              help="Pseudo-counts of each codebook's overall distribution per table.")
@click.option("--speech-share", type=click.FloatRange(0, 1),
              help="Code training rows so that this share of the audio is speech (default: "
                   "the corpus's own mix, about a quarter speech).")
@click.option("--measure", is_flag=True, help="Report sizes on the validation rows.")
@click.option("--measure-minutes", type=click.FloatRange(min=0),
              help="Time for encoding validation audio (default: all of it).")
@click.option("--cache", type=click.Path(dir_okay=False, path_type=Path),
              help="An .npz that keeps the codes of the segments between runs.")
@click.option("--time-seconds", default=60.0, show_default=True, type=click.FloatRange(min=0),
              help="With --measure: validation audio on which the model and the range "
                   "coder are timed; 0: no timing.")
@click.option("--threads", default=None, type=int, help="Torch threads (default: torch's).")
def main(weights_path: Path, data: Path, max_minutes: float, out: Path | None, buckets: int,
         smoothing: float, speech_share: float | None, measure: bool,
         measure_minutes: float | None, cache: Path | None, time_seconds: float,
         threads: int | None) -> None:
    runtime.set_threads(threads or 0)
    if max_minutes and out is None and releases.is_release_file(weights_path):
        raise click.ClickException(
            f"{weights_path} is a release's file, which is never rewritten: write the new "
            "tables elsewhere (--out) and add them with scripts/add_release.py")
    codec = Codec.load(weights_path, device="cpu")
    coder = _Coder(codec, cache)
    if not max_minutes:  # nothing to estimate: measure the tables the weights hold
        if codec.weights.code_tables is None:
            raise click.ClickException(f"{weights_path} holds no code tables to measure")
        if measure:
            _measure(codec, coder, data, measure_minutes)
        if measure and time_seconds:
            _timing(codec, data, time_seconds)
        return
    counts, seconds = _count(codec, coder, data, max_minutes, speech_share)
    if not counts.frames:
        raise click.ClickException("no training audio was coded: raise --max-minutes")
    click.echo(f"coded {sum(seconds.values()) / 3600:.2f} h of training audio "
               f"({', '.join(f'{c} {s / 3600:.2f} h' for c, s in sorted(seconds.items()))})")
    tables = counts.fit(buckets, smoothing)
    target = out or weights_path
    new = weights.store_code_tables(
        weights_path, tables, out, data=str(data), frames=counts.frames,
        hours=round(sum(seconds.values()) / 3600, 3),
        speech_hours=round(seconds.get("speech", 0.0) / 3600, 3), buckets=buckets,
        smoothing=smoothing)
    click.echo(f"wrote {tables.frequencies.shape[0]} tables into {target}: weights fingerprint "
               f"{new.hex()} (network {codec.weights.network_fingerprint.hex()}, tables "
               f"{tables.fingerprint.hex()})")
    if measure:
        coded = Codec.load(target, device="cpu")
        coder.codec = coded
        _measure(coded, coder, data, measure_minutes)
        if time_seconds:
            _timing(coded, data, time_seconds)


if __name__ == "__main__":
    main()
