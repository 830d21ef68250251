#!/usr/bin/env python3
"""Build the APCodec training corpus (48 kHz mono FLAC segments + manifest) and a compact pack.

Examples:

    # Every package of /work/shared/DATA.md (installed with apt-get), plus a 50 MiB Opus pack:
    python scripts/build_corpus.py --debian --pack-out data/pack

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

import click
from tqdm import tqdm

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from apcodec_cli.train import corpus, pack  # noqa: E402
from apcodec_cli.train.debian import debian_sources, install_packages, is_installed  # noqa: E402


def _log(message: str) -> None:
    click.echo(message, err=True)


def _budgets(total: float, shares: dict[str, float], available: dict[str, float]) -> dict[str, float]:
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


def _print_table(title: str, table: dict[str, dict[str, float]]) -> None:
    click.echo(title)
    for key, cell in table.items():
        click.echo(f"  {key:45s} {cell['hours']:8.3f} h {cell['segments']:8d} segments")


@click.command(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("--debian", is_flag=True, help="Install the DATA.md packages with apt-get and use their audio.")
@click.option("--packages", default="", metavar="A,B",
              help="With --debian: only these packages (default: all of DATA.md).")
@click.option("--no-install", is_flag=True, help="With --debian: do not run apt-get; use installed packages.")
@click.option("--folder", "folders", multiple=True, type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="A folder of audio (any format soundfile reads, searched recursively). Repeatable.")
@click.option("--category", type=click.Choice(corpus.CATEGORIES), default="other", show_default=True,
              help="Category of the --folder audio.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              default=REPO / "data" / "corpus", show_default=True, help="Corpus folder (segments/, manifest.jsonl).")
@click.option("--segment-seconds", default=10.0, show_default=True, help="Segment length in seconds.")
@click.option("--min-seconds", default=0.5, show_default=True, help="Shortest segment kept (file ends, short clips).")
@click.option("--silence-db", default=-50.0, show_default=True,
              help="A 20 ms frame below this RMS (dBFS) is silent; a segment more than half silent is dropped.")
@click.option("--val-fraction", default=0.05, show_default=True, help="Fraction of source files for validation.")
@click.option("--quality", type=click.Choice(["HQ", "VHQ"]), default="HQ", show_default=True, help="soxr quality.")
@click.option("--jobs", "-j", default=2, show_default=True, help="Decoding processes.")
@click.option("--pack-out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Also write a compact Ogg Opus pack of training segments to this folder.")
@click.option("--pack-hours", type=float, default=None,
              help="Hours in the pack (default: as many as fit in --pack-max-mib).")
@click.option("--pack-max-mib", default=50.0, show_default=True, help="Size cap of the pack in MiB.")
@click.option("--pack-kbps", default=64.0, show_default=True, help="Opus bitrate of the pack (mono, VBR).")
@click.option("--pack-share", "pack_shares", multiple=True, metavar="CATEGORY=WEIGHT",
              help="Relative share of a category in the pack, e.g. music=0.6 (default: equal shares).")
@click.option("--pack-min-bandwidth", default=0.0, show_default=True,
              help="Leave segments with a smaller measured bandwidth (Hz) out of the pack.")
def main(debian: bool, packages: str, no_install: bool, folders: tuple[Path, ...], category: str,
         out_dir: Path, segment_seconds: float, min_seconds: float, silence_db: float, val_fraction: float,
         quality: str, jobs: int, pack_out: Path | None, pack_hours: float | None, pack_max_mib: float,
         pack_kbps: float, pack_shares: tuple[str, ...], pack_min_bandwidth: float) -> None:
    """Build a 48 kHz mono training corpus, and optionally a compact pack of it.

    Every source file is decoded, mixed to mono, resampled to 48 kHz (soxr), trimmed of leading
    and trailing silence, cut into segments, and segments that are mostly silent are dropped.
    Segments are written as 16-bit FLAC under OUT/segments; OUT/manifest.jsonl lists them with
    source, package, category, split (train/validation, by a hash of the source path), start,
    duration, RMS level, source rate and measured bandwidth. Runs are idempotent: sources
    already cut with the same settings are not decoded again, and several runs (--debian, then
    --folder) into one OUT add up in one manifest.
    """
    if not debian and not folders:
        raise click.UsageError("give --debian and/or --folder DIR")
    started = time.time()
    report: dict = {"missing_packages": [], "empty_packages": []}
    sources: list[corpus.Source] = []
    if debian:
        names = [p.strip() for p in packages.split(",") if p.strip()] or list(corpus.DEBIAN_PACKAGES)
        unknown = sorted(set(names) - set(corpus.DEBIAN_PACKAGES))
        if unknown:
            raise click.BadParameter(f"not in DATA.md: {', '.join(unknown)}", param_hint="--packages")
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
            if not found:
                report["empty_packages"].append(name)
            sources += found
    for folder in folders:
        found = corpus.folder_sources(folder, category)
        _log(f"{folder}: {len(found)} audio files")
        sources += found
    sources, duplicates = corpus.dedupe_sources(sources)
    _log(f"{len(sources)} sources ({len(duplicates)} byte-identical duplicates dropped)")
    report["install_seconds"] = round(time.time() - started, 1)

    params = corpus.SegmentParams(segment_seconds, min_seconds, silence_db, 0.5, quality)
    out_dir.mkdir(parents=True, exist_ok=True)
    work = partial(corpus.process_source, out_dir=out_dir, params=params)
    counts = {"done": 0, "cached": 0, "error": 0}
    decode_start, decoded_seconds = time.time(), 0.0
    with tqdm(total=len(sources), unit="file", file=sys.stderr, desc="decoding") as bar:
        pool = Pool(jobs) if jobs > 1 else None
        results = pool.imap_unordered(work, sources, chunksize=1) if pool else map(work, sources)
        for result in results:
            counts[result["status"]] += 1
            if result["status"] == "done":
                decoded_seconds += result["seconds"]
            if result["status"] == "error":
                _log(f"warning: {result['key']}: {result['error']}")
            bar.update()
        if pool:
            pool.close()
            pool.join()
    report["decode_seconds"] = round(time.time() - decode_start, 1)
    report["decoded_hours"] = round(decoded_seconds / 3600, 3)
    report["sources"] = counts

    sidecars = corpus.load_sidecars(out_dir, params)
    splits = corpus.assign_splits({s["key"]: s["package"] for s in sidecars}, val_fraction)
    rows = [{**r, "split": splits[r["source"]]} for s in sidecars for r in s["rows"]]
    manifest = corpus.write_manifest(out_dir, rows, splits)
    report["source_hours"] = round(sum(s["seconds"] for s in sidecars) / 3600, 3)
    report["by_category_split"] = corpus.summarize(rows)
    report["by_package"] = corpus.summarize(rows, ("package", "split"))
    report["bandwidth"] = corpus.summarize(
        [{**r, "band": "full (>=15 kHz)" if r["bandwidth_hz"] >= 15000 else "limited (<15 kHz)"} for r in rows],
        ("category", "band"))
    _print_table(f"manifest {manifest} ({len(rows)} segments from {len(sidecars)} sources):",
                 report["by_category_split"])
    _print_table("by package:", report["by_package"])

    if pack_out is not None:
        pack_start = time.time()
        available = {c: sum(r["duration"] for r in rows if r["category"] == c and r["split"] == "train"
                            and r["bandwidth_hz"] >= pack_min_bandwidth) / 3600 for c in corpus.CATEGORIES}
        shares = {c: 1.0 for c in corpus.CATEGORIES}
        for item in pack_shares:
            key, _, value = item.partition("=")
            if key not in shares or not value:
                raise click.BadParameter(f"{item!r}: expected CATEGORY=WEIGHT", param_hint="--pack-share")
            shares[key] = float(value)
        hours = min(pack_hours or 1e9, pack.hours_for_size(pack_max_mib, pack_kbps))
        for _attempt in range(4):
            budgets = _budgets(hours, shares, available)
            chosen = pack.select_segments(rows, budgets, min_bandwidth_hz=pack_min_bandwidth)
            _log(f"packing {len(chosen)} segments, budgets {budgets} h, Opus {pack_kbps:g} kbit/s ...")
            index = pack.write_pack(out_dir, chosen, pack_out, kbps=pack_kbps, jobs=jobs)
            size_mib = sum(index["files"].values()) / 2**20
            if size_mib <= pack_max_mib:
                break
            hours *= 0.98 * pack_max_mib / size_mib
            _log(f"pack is {size_mib:.1f} MiB > {pack_max_mib:g} MiB: retrying with {hours:.3f} h")
        else:
            raise click.ClickException(f"could not fit the pack in {pack_max_mib} MiB")
        _log("measuring the pack's quality loss against the FLAC segments ...")
        index["quality"] = pack.measure_pack_quality(out_dir, pack_out)
        (pack_out / pack.INDEX_NAME).write_text(json.dumps(index, indent=1))
        report["pack"] = {"dir": str(pack_out), "mib": round(size_mib, 2), "hours": index["hours"],
                          "segments": len(index["segments"]), "kbps": pack_kbps, "quality": index["quality"],
                          "seconds": round(time.time() - pack_start, 1)}
        click.echo(f"pack {pack_out}: {size_mib:.1f} MiB, {sum(index['hours'].values()):.3f} h {index['hours']}, "
                   f"{len(index['segments'])} segments")
        click.echo(f"pack quality (log-spectral distance vs FLAC, dB): {json.dumps(index['quality'])}")
    report["total_seconds"] = round(time.time() - started, 1)
    (out_dir / "build_report.json").write_text(json.dumps(report, indent=1))
    click.echo(f"done in {report['total_seconds']:.0f} s; report in {out_dir / 'build_report.json'}")


if __name__ == "__main__":
    main()
