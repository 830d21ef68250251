"""The listening report in a real browser: headless Chromium opens the page from a file://
URL, every player must load its audio (duration > 0) and every image must decode
(naturalWidth > 0); a screenshot must come out. Skipped only where Chromium is not
installed (the README's test set-up installs Debian's `chromium`)."""

from __future__ import annotations

import html
import json
import re
import shutil
import struct
import subprocess
from pathlib import Path

import pytest
import soundfile as sf
from click.testing import CliRunner

from apcodec_cli.evaluate.cli import evaluate
from apcodec_cli.evaluate.listening import page
from helpers import tone

BROWSER = next((shutil.which(name) for name in ("chromium", "chromium-browser",
                                                "google-chrome") if shutil.which(name)), None)
pytestmark = pytest.mark.skipif(BROWSER is None, reason="no Chromium (apt-get install chromium)")

# Appended to a copy of the page: waits for every <audio> to load its metadata (or fail)
# and every <img> to load (or fail), then writes what it found into the DOM as JSON.
CHECK = """<script>
function settle(el, ready, events) {
  return new Promise(done => {
    if (ready()) return done();
    for (const e of events) el.addEventListener(e, () => done(), {once: true});
  });
}
Promise.all([
  ...[...document.querySelectorAll('audio')].map(a =>
    settle(a, () => a.readyState >= 1 || a.error, ['loadedmetadata', 'error'])
      .then(() => ({src: a.getAttribute('src'), duration: a.duration,
                    error: a.error ? a.error.code : null}))),
  ...[...document.images].map(i =>
    settle(i, () => i.complete, ['load', 'error'])
      .then(() => ({src: i.getAttribute('src'), width: i.naturalWidth}))),
]).then(found => {
  const out = document.createElement('pre');
  out.id = 'check';
  out.textContent = JSON.stringify(found);
  document.body.appendChild(out);
});
</script>"""


def chromium(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([BROWSER, "--headless", "--no-sandbox", "--disable-gpu",
                           "--no-first-run", *args], capture_output=True, text=True,
                          timeout=60)


def load_in_browser(report: Path, profile: Path) -> list[dict]:
    """What the browser found for every <audio> and <img> of the report's page."""
    checked = report / "check.html"  # beside the page, so its relative links hold
    text = (report / page.PAGE).read_text(encoding="utf-8")
    checked.write_text(text.replace("</body>", CHECK + "</body>"), encoding="utf-8")
    out = chromium(f"--user-data-dir={profile}", "--virtual-time-budget=20000",
                   "--dump-dom", checked.as_uri())
    checked.unlink()
    found = re.search(r'<pre id="check">(.*?)</pre>', out.stdout, flags=re.S)
    assert found, f"the check did not finish: {out.stderr[-2000:]}"
    return json.loads(html.unescape(found.group(1)))


@pytest.fixture(scope="module")
def report(tmp_path_factory, tiny_weights) -> Path:
    """A report of two short clips by the tiny model (Opus too where opus-tools is)."""
    pytest.importorskip("visqol")
    root = tmp_path_factory.mktemp("browser")
    (root / "clips").mkdir()
    for i in range(2):
        sf.write(root / "clips" / f"c{i}.wav", tone(1.1, seed=i)[0], 48_000)
    opus = [] if shutil.which("opusenc") and shutil.which("opusdec") else ["--no-opus"]
    result = CliRunner().invoke(evaluate, [
        "-w", str(tiny_weights), "--data", str(root / "clips"), "--category", "music",
        "--seconds", "1", "--device", "cpu", "-q", "--report", str(root / "report"), *opus])
    assert result.exit_code == 0, result.output
    return root / "report"


def test_every_player_and_image_loads_from_a_file_url(report, tmp_path) -> None:
    found = load_in_browser(report, tmp_path / "profile")
    audio = [f for f in found if "duration" in f]
    images = [f for f in found if "width" in f]
    systems = 3 if shutil.which("opusenc") else 2
    assert len(audio) == 2 * systems and len(images) == 1 + 2 * 2 * systems
    for player in audio:
        assert player["error"] is None and player["duration"] == pytest.approx(1.0), player
    assert all(image["width"] > 0 for image in images), images


def test_the_check_sees_a_missing_file(report, tmp_path) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(report, broken)
    gone = next(broken.glob("clips/*/apcodec.flac"))
    gone.unlink()
    next(broken.glob("clips/*/source-zoom.png")).unlink()
    found = load_in_browser(broken, tmp_path / "profile")
    failed = [f["src"] for f in found if f.get("error") or f.get("width") == 0]
    assert len(failed) == 2 and any(src.endswith("/apcodec.flac") for src in failed)


def test_screenshot(report, tmp_path) -> None:
    shot = tmp_path / "page.png"
    out = chromium(f"--user-data-dir={tmp_path / 'profile'}", "--hide-scrollbars",
                   "--window-size=1280,2000", f"--screenshot={shot}",
                   (report / page.PAGE).as_uri())
    assert shot.is_file(), out.stderr[-2000:]
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert struct.unpack(">II", data[16:24]) == (1280, 2000)
    assert len(data) > 50_000  # a page of tables and spectrograms, not a blank one
