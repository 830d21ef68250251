"""scripts/code_tables.py: the order in which training rows are coded, CPU, fast."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

_PATH = Path(__file__).resolve().parents[2] / "scripts" / "code_tables.py"
_SPEC = importlib.util.spec_from_file_location("code_tables", _PATH)
tables_script = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(tables_script)


def _rows(category: str, n: int, seconds: float) -> list[dict]:
    return [{"category": category, "path": f"{category}{i}", "duration": seconds}
            for i in range(n)]


@pytest.mark.parametrize("share", [0.25, 0.5, 0.75])
def test_mixed_rows_hold_the_speech_share_in_every_prefix(share: float) -> None:
    rows = _rows("music", 300, 10.0) + _rows("speech", 200, 5.0)
    mixed = tables_script._mixed(rows, share)
    assert sorted(r["path"] for r in mixed) == sorted(r["path"] for r in rows)  # all, once
    speech = total = 0.0
    for row in mixed:
        speech += row["duration"] * (row["category"] == "speech")
        total += row["duration"]
        if total <= 1000:  # until one category runs out: off by at most one row
            assert abs(speech - share * total) <= 10.0
    # each category keeps its own order (the hash order that mixes sources)
    for category in ("music", "speech"):
        assert [r for r in mixed if r["category"] == category] == \
            [r for r in rows if r["category"] == category]


def test_a_release_file_is_never_rewritten(tmp_path: Path, tiny_weights: Path) -> None:
    """Fitting tables into a file named as a release's (network or tables file) is refused
    before anything is read; with --out, or into another file, the fit goes ahead."""
    from click.testing import CliRunner

    (tmp_path / "data").mkdir()
    for name in ("apcodec-r1-0123456789abcdef.pt",
                 "apcodec-s-r2-0123456789abcdef-tables1-fedcba9876543210.pt"):
        release = tmp_path / name
        release.write_bytes(tiny_weights.read_bytes())
        result = CliRunner().invoke(tables_script.main, [
            "--weights", str(release), "--data", str(tmp_path / "data"), "--max-minutes", "1"])
        assert result.exit_code == 1 and "never rewritten" in result.output, result.output
        assert release.read_bytes() == tiny_weights.read_bytes()
