#!/usr/bin/env python3
"""Build the APCodec training corpus (48 kHz mono FLAC segments + manifest) and a compact pack.

Examples:

    # Every package of /work/shared/DATA.md (installed with apt-get), plus a 34 MiB Opus pack:
    python scripts/build_corpus.py --debian --pack-out data/pack

    # The held-out packages (never trained on) as their own corpus, for out-of-source scores:
    python scripts/build_corpus.py --heldout --out data/heldout

    # A folder of your own (VCTK, your music), as speech:
    python scripts/build_corpus.py --folder ~/VCTK-Corpus --category speech --out data/vctk
"""

from __future__ import annotations

import json
import sys
import time
from functools import partial
from multiprocessing import Pool
from pathlib import Path
from typing import Any

import click
from tqdm import tqdm

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from apcodec_cli.data import corpus, pack  # noqa: E402
from apcodec_cli.data.debian import debian_sources, install_packages, is_installed  # noqa: E402


def _log(message: str) -> None:
    click.echo(message, err=True)


def _print_table(title: str, table: dict[str, dict[str, float]]) -> None:
    click.echo(title)
    for key, cell in table.items():
        click.echo(f"  {key:45s} {cell['hours']:8.3f} h {cell['segments']:8d} segments")


def _collect(debian: bool, heldout: bool, packages: str, no_install: bool,
             folders: tuple[Path, ...], category: str, report: dict[str, Any]
             ) -> list[corpus.Source]:
    """Sources of the chosen Debian packages and folders, byte-identical duplicates dropped."""
    sources: list[corpus.Source] = []
    known = [*(corpus.DEBIAN_PACKAGES if debian else ()),
             *(corpus.HELDOUT_PACKAGES if heldout else ())]
    if known:
        names = [p.strip() for p in packages.split(",") if p.strip()] or known
        unknown = sorted(set(names) - set(known))
        if unknown:
            raise click.BadParameter(f"not among the chosen packages: {', '.join(unknown)}",
                                     param_hint="--packages")
        if not no_install:
            _log(f"installing {len(names)} packages with apt-get ...")
            install_packages(names)
        for name in names:
            if not is_installed(name):
                _log(f"warning: {name} is not installed, skipped")
                report["missing_packages"].append(name)
                continue
            found = debian_sources(name)
            _log(f"{name}: {len(found)} sources")
            sources += found
    for folder in folders:
        found = corpus.folder_sources(folder, category)
        _log(f"{folder}: {len(found)} audio files")
        sources += found
    sources, duplicates = corpus.dedupe_sources(sources)
    report["duplicates_dropped"] = len(duplicates)
    _log(f"{len(sources)} sources ({len(duplicates)} byte-identical duplicates dropped)")
    return sources


def _cut(sources: list[corpus.Source], out_dir: Path, params: corpus.SegmentParams, jobs: int,
         report: dict[str, Any]) -> None:
    """Decode and cut every source (in ``jobs`` processes), with a progress bar on stderr."""
    work = partial(corpus.process_source, out_dir=out_dir, params=params)
    counts = {"done": 0, "cached": 0, "error": 0}
    started, decoded = time.time(), 0.0
    pool = Pool(jobs) if jobs > 1 else None
    try:
        results = pool.imap_unordered(work, sources, chunksize=1) if pool else map(work, sources)
        for result in tqdm(results, total=len(sources), unit="file", file=sys.stderr,
                           desc="decoding"):
            counts[result["status"]] += 1
            decoded += result["seconds"] if result["status"] == "done" else 0.0
            if result["status"] == "error":
                _log(f"warning: {result['key']}: {result['error']}")
    finally:
        if pool:
            pool.close()
            pool.join()
    report.update(sources=counts, decoded_hours=round(decoded / 3600, 3),
                  decode_seconds=round(time.time() - started, 1))


def _budgets(total: float, shares: dict[str, float], available: dict[str, float]
             ) -> dict[str, float]:
    """Split ``total`` hours by ``shares``; what a category cannot fill goes to the others."""
    budgets = {c: 0.0 for c in shares}
    left, open_ = total, {c for c, s in shares.items() if s > 0 and available.get(c, 0) > 0}
    while left > 1e-9 and open_:
        weight = sum(shares[c] for c in open_)
        given = {c: left * shares[c] / weight for c in open_}
        left = 0.0
        for c, hours in given.items():
            room = available[c] - budgets[c]
            budgets[c] += min(hours, room)
            if hours >= room:
                left += hours - room
                open_.discard(c)
    return {c: round(h, 4) for c, h in budgets.items() if h > 0}


def _pack(rows: list[dict[str, Any]], out_dir: Path, pack_out: Path, hours: float | None,
          max_mib: float, kbps: float, share_items: tuple[str, ...], min_bandwidth: float,
          val_minutes: float, jobs: int) -> dict[str, Any]:
    """Write the Opus pack under the size cap and measure its quality loss."""
    started = time.time()
    shares = {c: 1.0 for c in corpus.CATEGORIES}
    for item in share_items:
        key, _, value = item.partition("=")
        if key not in shares or not value:
            raise click.BadParameter(f"{item!r}: expected CATEGORY=WEIGHT",
                                     param_hint="--pack-share")
        shares[key] = float(value)
    usable = [r for r in rows if r["bandwidth_hz"] >= min_bandwidth]
    available = {c: sum(r["duration"] for r in usable if r["category"] == c
                        and r["split"] == "train") / 3600 for c in corpus.CATEGORIES}
    val_budgets = {c: val_minutes / 60 for c in corpus.CATEGORIES
                   if any(r["category"] == c and r["split"] == "validation" for r in usable)}
    train_hours = min(hours or 1e9,
                      pack.hours_for_size(max_mib, kbps) - sum(val_budgets.values()))
    val_rows = pack.select_segments(usable, val_budgets, "validation") if val_minutes > 0 else []
    for _attempt in range(4):
        budgets = _budgets(train_hours, shares, available)
        chosen = pack.select_segments(usable, budgets, "train") + val_rows
        _log(f"packing {len(chosen)} segments: train {budgets} h, validation "
             f"{val_minutes:g} min per category, Opus {kbps:g} kbit/s ...")
        index = pack.write_pack(out_dir, chosen, pack_out, kbps=kbps, jobs=jobs)
        size_mib = (sum(index["files"].values())
                    + (pack_out / pack.INDEX_NAME).stat().st_size) / 2**20
        if size_mib <= max_mib:
            break
        train_hours *= 0.98 * max_mib / size_mib
        _log(f"pack is {size_mib:.1f} MiB > {max_mib:g} MiB: retrying with {train_hours:.3f} h")
    else:
        raise click.ClickException(f"could not fit the pack in {max_mib:g} MiB")
    _log("measuring the pack's quality loss against the FLAC segments ...")
    index["quality"] = pack.measure_pack_quality(out_dir, pack_out)
    (pack_out / pack.INDEX_NAME).write_text(json.dumps(index, indent=1))
    click.echo(f"pack {pack_out}: {size_mib:.1f} MiB, {len(index['segments'])} segments, "
               f"hours {index['hours']}")
    click.echo(f"pack quality (log-spectral distance vs FLAC, dB): {json.dumps(index['quality'])}")
    return {"dir": str(pack_out), "mib": round(size_mib, 2), "hours": index["hours"],
            "segments": len(index["segments"]), "kbps": kbps, "quality": index["quality"],
            "seconds": round(time.time() - started, 1)}


@click.command(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("--debian", is_flag=True,
              help="Install the training packages (DATA.md) with apt-get and use their audio.")
@click.option("--heldout", is_flag=True,
              help="Install the held-out packages (corpus.HELDOUT_PACKAGES): whole sources "
                   "never trained on, all in the split 'heldout' (out-of-source validation).")
@click.option("--packages", default="", metavar="A,B",
              help="With --debian/--heldout: only these packages (default: all chosen).")
@click.option("--no-install", is_flag=True,
              help="With --debian: do not run apt-get; use the packages already installed.")
@click.option("--folder", "folders", multiple=True,
              type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="A folder of audio (any format soundfile reads, searched recursively). "
                   "Repeatable.")
@click.option("--category", type=click.Choice(corpus.CATEGORIES), default="other",
              show_default=True, help="Category of the --folder audio.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              default=None, help="Corpus folder: segments/, manifest.jsonl, build_report.json "
                                 "[default: data/corpus in the repository, git-ignored].")
@click.option("--segment-seconds", default=10.0, show_default=True,
              help="Segment length in seconds.")
@click.option("--min-seconds", default=0.5, show_default=True,
              help="Shortest segment kept (ends of files, short clips).")
@click.option("--silence-db", default=-50.0, show_default=True,
              help="A 20 ms frame below this RMS (dBFS) is silent; a segment more than half "
                   "silent is dropped, silent file ends are trimmed.")
@click.option("--val-fraction", default=0.05, show_default=True,
              help="Fraction of source files in validation (every package of 3+ files gets one).")
@click.option("--quality", type=click.Choice(["HQ", "VHQ"]), default="HQ", show_default=True,
              help="soxr resampling quality.")
@click.option("--jobs", "-j", default=2, show_default=True, help="Decoding processes.")
@click.option("--pack-out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Also write a compact Ogg Opus pack of the corpus to this folder.")
@click.option("--pack-hours", type=float, default=None,
              help="Training hours in the pack (default: as many as fit in --pack-max-mib).")
@click.option("--pack-max-mib", default=34.0, show_default=True,
              help="Size cap of the pack (with the tracked tree, about 24 MiB since the "
                   "weights hold code tables, and the carried wheels, it must stay under the "
                   "64 MiB that travels to a GPU machine).")
@click.option("--pack-kbps", default=64.0, show_default=True,
              help="Opus bitrate of the pack (mono, VBR).")
@click.option("--pack-share", "pack_shares", multiple=True, metavar="CATEGORY=WEIGHT",
              help="Relative share of a category in the pack's training hours, e.g. music=0.6 "
                   "(default: equal shares). Repeatable.")
@click.option("--pack-min-bandwidth", default=0.0, show_default=True,
              help="Leave segments with a smaller measured bandwidth (Hz) out of the pack.")
@click.option("--pack-val-minutes", default=4.0, show_default=True,
              help="Minutes of validation segments per category also put in the pack.")
def main(debian: bool, heldout: bool, packages: str, no_install: bool,
         folders: tuple[Path, ...], category: str, out_dir: Path | None,
         segment_seconds: float, min_seconds: float, silence_db: float, val_fraction: float,
         quality: str, jobs: int, pack_out: Path | None, pack_hours: float | None,
         pack_max_mib: float, pack_kbps: float, pack_shares: tuple[str, ...],
         pack_min_bandwidth: float, pack_val_minutes: float) -> None:
    """Build a 48 kHz mono training corpus, and optionally a compact pack of it.

    Every source file is decoded, mixed to mono, resampled to 48 kHz (soxr), trimmed of
    leading and trailing silence and cut into segments; segments that are mostly silent are
    dropped. Segments are written as 16-bit FLAC under OUT/segments; OUT/manifest.jsonl lists
    them with source, package, category, split (train/validation, by a hash of the source
    path), start, duration, RMS level, source rate and measured bandwidth.

    Runs are idempotent: sources already cut with the same settings are not decoded again,
    and several runs into one OUT (--debian, then --folder) add up in one manifest.
    """
    if not debian and not heldout and not folders:
        raise click.UsageError("give --debian, --heldout and/or --folder DIR")
    started = time.time()
    report: dict[str, Any] = {"missing_packages": []}
    sources = _collect(debian, heldout, packages, no_install, folders, category, report)
    params = corpus.SegmentParams(segment_seconds, min_seconds, silence_db, 0.5, quality)
    out_dir = out_dir or REPO / "data" / "corpus"
    out_dir.mkdir(parents=True, exist_ok=True)
    _cut(sources, out_dir, params, jobs, report)

    sidecars = corpus.load_sidecars(out_dir, params)
    splits = corpus.assign_splits({s["key"]: s["package"] for s in sidecars}, val_fraction,
                                  heldout=corpus.HELDOUT_PACKAGES)
    rows = [{**r, "split": splits[r["source"]]} for s in sidecars for r in s["rows"]]
    manifest = corpus.write_manifest(out_dir, rows, splits)
    report["source_hours"] = round(sum(s["seconds"] for s in sidecars) / 3600, 3)
    report["by_category_split"] = corpus.summarize(rows)
    report["by_package"] = corpus.summarize(rows, ("package", "split"))
    report["bandwidth"] = corpus.summarize(
        [{**r, "band": ">=15kHz" if r["bandwidth_hz"] >= 15000 else "<15kHz"} for r in rows],
        ("category", "band"))
    _print_table(f"manifest {manifest} ({len(rows)} segments from {len(sidecars)} sources):",
                 report["by_category_split"])
    _print_table("by package:", report["by_package"])
    _print_table("by measured bandwidth:", report["bandwidth"])
    if pack_out is not None:
        report["pack"] = _pack(rows, out_dir, pack_out, pack_hours, pack_max_mib, pack_kbps,
                               pack_shares, pack_min_bandwidth, pack_val_minutes, jobs)
    report["total_seconds"] = round(time.time() - started, 1)
    (out_dir / "build_report.json").write_text(json.dumps(report, indent=1))
    click.echo(f"done in {report['total_seconds']:.0f} s; report in "
               f"{out_dir / 'build_report.json'}")


if __name__ == "__main__":
    main()
