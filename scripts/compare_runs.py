"""Paired comparison of two `apcodec eval --json-out` files, clip by clip: the ship test of
a candidate (what it computes: `apcodec_cli/evaluate/compare.py`).

    python scripts/compare_runs.py shipped.json candidate.json
    python scripts/compare_runs.py run.json run.json --systems opus-12k-vbr apcodec
"""

from __future__ import annotations

from pathlib import Path

import click

from apcodec_cli.evaluate.compare import compare, read_rows


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("baseline", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("candidate", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--systems", nargs=2, metavar="BASE CAND", default=None,
              help="Pair system BASE of BASELINE with system CAND of CANDIDATE (e.g. "
                   "opus-12k-vbr apcodec, the same file twice) instead of each system "
                   "with itself.")
def main(baseline: Path, candidate: Path, systems: tuple[str, str] | None) -> None:
    """Compare CANDIDATE with BASELINE, two `apcodec eval --json-out` files, clip by clip."""
    if systems:
        label = f"{systems[1]} vs {systems[0]}"
        base_rows, cand_rows = read_rows(baseline, systems[0], label), \
            read_rows(candidate, systems[1], label)
    else:
        base_rows, cand_rows = read_rows(baseline), read_rows(candidate)
    records = list(compare(base_rows, cand_rows))
    if not records:
        raise click.ClickException("the two files share no scored clip"
                                   + (" of those systems" if systems else "")
                                   + " (clips are matched by path: score both with the "
                                     "same --data)")
    click.echo(f"candidate {candidate} against baseline {baseline}, paired by clip\n")
    click.echo("| category | system | metric | clips | baseline | candidate | difference ± SE "
               "| candidate better |")
    click.echo("|---|---|---|---:|---:|---:|---:|---:|")
    for r in records:
        click.echo(f"| {r['category']} | {r['system']} | {r['metric']} | {r['clips']} "
                   f"| {r['baseline']:.3f} | {r['candidate']:.3f} "
                   f"| {r['difference']:+.3f} ± {r['se']:.3f} "
                   f"| {'–' if r['better'] is None else r['better']}/{r['clips']} |")


if __name__ == "__main__":
    main()
