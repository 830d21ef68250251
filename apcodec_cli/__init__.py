"""apcodec: the APCodec neural audio codec (48 kHz at 6 kbit/s) as a library and a command.

The public API is loaded lazily so that `import apcodec_cli` (and `apcodec --help`) do not
pay for importing torch:

    from apcodec_cli import Codec
    codec = Codec.load()                 # the installed weights, CUDA when present
    codes = codec.encode(wav, 44100)     # (C, T) float -> (C, 4, N) int codes
    audio = codec.decode(codes)          # -> (C, N * 320) float at 48 kHz
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["ApcodecError", "Codec", "CodecConfig", "read_apc", "write_apc", "__version__"]

_LAZY = {
    "ApcodecError": "errors",
    "Codec": "codec",
    "CodecConfig": "nn.config",
    "read_apc": "format.bitstream",
    "write_apc": "format.bitstream",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
