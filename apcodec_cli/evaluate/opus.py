"""Opus reference points: a round trip through Debian's opus-tools (`opusenc`, `opusdec`).

Opus runs in opusenc's default (unconstrained) VBR: it is how Opus is used, it is the
stronger reference, and on the project's validation clips it spent no more bits than hard
CBR at the same target (music, 10 s: 5.95 against 6.91 kbit/s of file at "6", with equal
ViSQOL; at "12" ViSQOL 3.33 against 2.70). `vbr=False` gives hard CBR, whose every packet
has the same size, as every APCodec frame does.

The bitrate is measured from the size of the `.opus` file, Ogg pages and the two header
packets included, as it is for `.apc` files; `--padding 0` stops opusenc from reserving
512 bytes of empty tag space. What remains is real overhead of an Ogg Opus file: about
160 bytes of headers (OpusHead, OpusTags with opusenc's vendor and ENCODER tags) and one page
header per second (about 77 bytes at 6 kbit/s, one lacing byte per 20 ms packet), so a 6
kbit/s file measures 6.8 kbit/s over 10 s and 8.7 kbit/s over 1 s.
"""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf

from ..errors import ApcodecError
from ..units import SAMPLE_RATE as RATE

INSTALL_HINT = "apt-get install opus-tools"


class OpusToolsMissingError(ApcodecError, RuntimeError):
    """opusenc or opusdec is not on the PATH."""


class OpusError(ApcodecError, RuntimeError):
    """opusenc or opusdec failed on a file."""


@dataclasses.dataclass(frozen=True)
class OpusResult:
    """A decoded Opus round trip.

    Attributes:
        audio: (T,) float32 at 48 kHz, exactly as long as the input.
        size_bytes: Size of the `.opus` file.
        kbps: size_bytes * 8 / duration of the input / 1000.
    """

    audio: np.ndarray
    size_bytes: int
    kbps: float


def require_opus_tools(way_out: str = "pass --no-opus") -> None:
    """Raise OpusToolsMissingError, naming the package to install (and `way_out`, the
    command's way to go without Opus, if it has one), if a tool is missing."""
    missing = [tool for tool in ("opusenc", "opusdec") if shutil.which(tool) is None]
    if missing:
        raise OpusToolsMissingError(
            f"{' and '.join(missing)} not found: install Debian's opus-tools "
            f"({INSTALL_HINT})" + (f", or {way_out}" if way_out else ""))


def version() -> str:
    """opusenc's own description of itself: 'opusenc opus-tools 0.2 (using libopus 1.3.1)'."""
    require_opus_tools()
    out = subprocess.run(["opusenc", "--version"], capture_output=True, text=True)
    lines = (out.stdout or out.stderr).strip().splitlines()
    return lines[0] if lines else "opusenc (version unknown)"


def _call(args: list[str]) -> None:
    try:
        subprocess.run(args, check=True, capture_output=True, text=True)
    except FileNotFoundError:
        require_opus_tools()
        raise
    except subprocess.CalledProcessError as exc:
        detail = (exc.stderr or "").strip().splitlines()
        raise OpusError(f"{args[0]} failed: {detail[-1] if detail else exc}") from None


def encoder_args(kbps: float, vbr: bool) -> list[str]:
    """opusenc options of a run at `kbps` kbit/s (hard CBR unless `vbr`)."""
    return ["opusenc", "--quiet", "--bitrate", f"{kbps:g}", "--padding", "0"] + \
        ([] if vbr else ["--hard-cbr"])


def round_trip(wav: np.ndarray, kbps: float, vbr: bool = True,
               workdir: str | Path | None = None) -> OpusResult:
    """Encode a 48 kHz mono signal with opusenc and decode it with opusdec at 48 kHz.

    Args:
        wav: (T,) float audio at 48 kHz.
        kbps: Target bitrate in kbit/s (opusenc accepts 6 to 256 per channel).
        vbr: Unconstrained VBR (opusenc's default); False: hard CBR.
        workdir: Folder for the temporary files (default: a new temporary folder).

    Returns:
        The decoded audio, cut or zero-padded to len(wav) (opusdec already removes the
        encoder's pre-skip, so the signals are aligned), and the measured file bitrate.
    """
    wav = np.asarray(wav, dtype=np.float32).reshape(-1)
    with tempfile.TemporaryDirectory(dir=workdir, prefix="opus-") as tmp:
        source, coded, decoded = (Path(tmp) / name for name in ("in.wav", "c.opus", "d.wav"))
        # 24-bit PCM: opus-tools 0.2 reads it silently (float WAV draws warnings) and its
        # quantisation noise lies ~145 dB below full scale.
        sf.write(source, wav, RATE, subtype="PCM_24")
        _call(encoder_args(kbps, vbr) + [str(source), str(coded)])
        _call(["opusdec", "--quiet", "--rate", str(RATE), "--float", str(coded), str(decoded)])
        audio, rate = sf.read(decoded, dtype="float32", always_2d=True)
        size = coded.stat().st_size
    if rate != RATE:
        raise OpusError(f"opusdec wrote {rate} Hz instead of {RATE}")
    out = np.zeros(len(wav), np.float32)
    out[:min(len(wav), len(audio))] = audio[:len(wav), 0]
    return OpusResult(out, size, size * 8 / (len(wav) / RATE) / 1000 if len(wav) else 0.0)
