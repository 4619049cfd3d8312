"""Bytes that make a decoder warn, raise, or ask for more memory than it may have, and
NASTY_DECODERS: the test-only decoders that hang, crash or raise (nasty_decoders.py), loaded by
path into the crawl's decoding workers through stages.sources.cleaning.PLUGIN_ENV."""

from __future__ import annotations

import io
import struct
import warnings
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

from helpers.images import picture

NASTY_DECODERS = Path(__file__).with_name("nasty_decoders.py")


def chunk(kind: bytes, data: bytes) -> bytes:
    """A PNG chunk: length, kind, data, CRC."""
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def big_png(side: int = 8000) -> bytes:
    """A valid 8-bit RGB PNG of 64 megapixels (under Pillow's bomb limit): 190 KB that need 192 MB
    decoded, past the 100 MB cap the tests set."""
    rows = zlib.compress((b"\0" * (1 + 3 * side)) * side, 9)
    header = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", rows) + chunk(b"IEND", b"")


def bomb_png(side: int = 10_000) -> bytes:
    """A valid 1-bit PNG of side x side black pixels: a few KB that decode to side**2 pixels
    (10,000 x 10,000 is beyond Pillow's 89-megapixel limit). Built by hand: Pillow would first
    allocate the whole picture to write it."""
    row = b"\0" * (1 + (side + 7) // 8)  # filter byte + packed bits
    header = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)  # 1-bit greyscale
    pixels = zlib.compress(row * side, 9)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")


def unknown_dds() -> bytes:
    """A DDS header with a pixel format Pillow does not know: it raises NotImplementedError."""
    header = struct.pack("<4sIIIIIII", b"DDS ", 124, 0x1007, 64, 64, 0, 0, 0) + b"\0" * 44
    pixel_format = struct.pack("<II4sIIIII", 32, 0x4, b"XYZW", 0, 0, 0, 0, 0)
    return header + pixel_format + b"\0" * 20 + b"\0" * 4096


def jpeg_with_bad_exif(tags: tuple[int, ...] = (0x010E,)) -> bytes:
    """A good picture whose EXIF `tags` point past its end: Pillow warns (once per tag), the picture is fine."""
    data_at = 8 + 2 + 12 * len(tags) + 4  # after the header, the entry count, the entries and the next-IFD link
    entries = b"".join(struct.pack("<HHII", tag, 2, 100 * (k + 1), data_at) for k, tag in enumerate(tags))
    exif = b"Exif\0\0II*\0\x08\0\0\0" + struct.pack("<H", len(tags)) + entries + b"\0" * 4
    out = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Pillow warns about it already here
        picture(9, (120, 90)).save(out, "JPEG", exif=exif, quality=90)
    return out.getvalue()


def corrupt_tiff() -> bytes:
    """A deflate-compressed TIFF with its compressed pixels scrambled: libtiff, in C, prints what went
    wrong straight to stderr (`ZIPDecode: Decoding error at scanline 0, ...`), then Pillow raises."""
    out = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (120, 160, 3), dtype=np.uint8)).save(
        out, "TIFF", compression="tiff_adobe_deflate")
    data = bytearray(out.getvalue())
    for i in range(100, len(data) // 2, 7):
        data[i] ^= 0x5A
    return bytes(data)
