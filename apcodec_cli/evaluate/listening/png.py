"""A PNG encoder for palette images, in numpy, zlib and struct (PNG 1.2, ISO/IEC 15948).

The listening report's spectrograms are 8-bit palette images: one byte per pixel, an index
into a colour table of at most 256 entries. A PNG is the 8-byte signature, then chunks of
(4-byte big-endian length, 4-byte type, data, CRC-32 of type and data): IHDR (width,
height, bit depth 8, colour type 3 = palette, compression, filter and interlace methods 0),
PLTE (the colour table, 3 bytes an entry), IDAT (the zlib stream of the filtered rows) and
IEND. Each row is stored after one byte naming its filter; this encoder tries None (0),
Sub (1, minus the pixel to the left) and Up (2, minus the pixel above) and keeps, per row,
the one with the smallest sum of absolute signed residuals (the heuristic the PNG
specification suggests). Spectrogram indices grow with level, so neighbours are close and
Sub or Up usually win.
"""

from __future__ import annotations

import struct
import zlib

import numpy as np

SIGNATURE = b"\x89PNG\r\n\x1a\n"
NONE, SUB, UP = 0, 1, 2


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + \
        struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def filter_rows(pixels: np.ndarray) -> bytes:
    """The filtered scanlines of (H, W) uint8 pixels: each row prefixed by its filter byte."""
    above = np.vstack([np.zeros((1, pixels.shape[1]), np.uint8), pixels[:-1]])
    left = np.hstack([np.zeros((pixels.shape[0], 1), np.uint8), pixels[:, :-1]])
    candidates = np.stack([pixels, pixels - left, pixels - above])  # uint8 wraps, as PNG's
    cost = np.abs(candidates.view(np.int8).astype(np.int32)).sum(axis=2)  # (3, H)
    choice = cost.argmin(axis=0)
    rows = candidates[choice, np.arange(pixels.shape[0])]
    return np.hstack([choice.astype(np.uint8)[:, None], rows]).tobytes()


def encode_palette_png(pixels: np.ndarray, palette: np.ndarray) -> bytes:
    """A PNG file holding a palette image.

    Args:
        pixels: (H, W) uint8 indices into `palette`, H and W at least 1.
        palette: (N, 3) uint8 RGB colours, N from 1 to 256, greater than every index.

    Returns:
        The bytes of the file.
    """
    pixels = np.ascontiguousarray(pixels, dtype=np.uint8)
    palette = np.asarray(palette, dtype=np.uint8)
    if pixels.ndim != 2 or 0 in pixels.shape:
        raise ValueError(f"pixels must be a non-empty (H, W) array, not {pixels.shape}")
    if palette.ndim != 2 or palette.shape[1] != 3 or not 1 <= len(palette) <= 256:
        raise ValueError(f"palette must be (N, 3) with 1 <= N <= 256, not {palette.shape}")
    if int(pixels.max()) >= len(palette):
        raise ValueError(f"index {int(pixels.max())} is beyond the {len(palette)} colours")
    height, width = pixels.shape
    header = struct.pack(">IIBBBBB", width, height, 8, 3, 0, 0, 0)
    return SIGNATURE + _chunk(b"IHDR", header) + _chunk(b"PLTE", palette.tobytes()) + \
        _chunk(b"IDAT", zlib.compress(filter_rows(pixels), 9)) + _chunk(b"IEND", b"")
