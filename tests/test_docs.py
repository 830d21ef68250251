"""The README's set-up works as written (issue 11, item 12): CPU torch from PyTorch's CPU
index in the README and in CI alike, a mono sample under a 6 kbit/s headline, and the
main job's outputs in a folder that git ignores."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import soundfile as sf

ROOT = Path(__file__).resolve().parent.parent
CPU_INDEX = "--index-url https://download.pytorch.org/whl/cpu"


def _shell_blocks(text: str) -> list[str]:
    return re.findall(r"```sh\n(.*?)```", text, flags=re.S)


def _torch_installs(script: str) -> list[str]:
    return [part.strip() for line in script.splitlines() for part in line.split("&&")
            if "install torch" in part]


def test_torch_comes_from_the_cpu_index_in_the_readme_and_in_ci() -> None:
    setup, tests = _shell_blocks((ROOT / "README.md").read_text())[:2]
    ci = (ROOT / ".ci" / "run").read_text()
    installs = _torch_installs(setup) + _torch_installs(tests) + _torch_installs(ci)
    assert len(installs) == 3 and len(set(installs)) == 1, installs
    assert installs[0] == f"pip install torch==2.13.0 {CPU_INDEX}"
    # CI runs the README's test command itself, not a variant of it.
    assert tests.strip() in ci


def test_the_test_set_up_installs_the_browser_opus_tools_and_parallel() -> None:
    """Without them the listening report's browser test, the Opus tests and the GNU
    parallel recipe's test would skip."""
    tests = _shell_blocks((ROOT / "README.md").read_text())[1]
    first = tests.split("&&")[:2]
    assert [part.strip() for part in first] == ["apt-get update",
                                                "apt-get install -y chromium opus-tools parallel"]


def test_the_main_job_codes_a_mono_sample_into_an_ignored_folder() -> None:
    setup = _shell_blocks((ROOT / "README.md").read_text())[0]
    outputs = [w for w in shlex.split(setup) if w.endswith((".apc", ".wav"))]
    assert outputs and all(o.startswith("out/") for o in outputs), outputs
    assert "/out/" in (ROOT / ".gitignore").read_text().split()
    info = sf.info(ROOT / "samples" / "speech.flac")
    assert info.channels == 1  # so the first run shows the 6 kbit/s of the headline
    assert "mono" in (ROOT / "samples" / "README.md").read_text()
