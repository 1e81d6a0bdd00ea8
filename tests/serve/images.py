"""Bad and unusual uploads, built in memory: one function per class of input the app must survive."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np

from tests.serve.tinybundle import photo


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that *claims* width x height (a decompression bomb's header) with a few bytes of pixel data.
    If a decoder allocated or decoded its pixels, it would fail as truncated, not as too large."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
            + chunk(b"IEND", b""))


def truncated_jpeg() -> bytes:
    data = photo("red", (400, 300))
    return data[: len(data) // 2]


def corrupt_png() -> bytes:
    data = bytearray(photo("red", (400, 300), fmt="PNG"))
    data[len(data) // 2] ^= 0xFF  # one flipped byte in the compressed pixels: CRC and zlib both notice
    return bytes(data)


def broken_header_jpeg() -> bytes:
    return photo("red", (400, 300))[:100]


def heic_header() -> bytes:
    return b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + b"\x00" * 64


NOT_IMAGES = {
    "text": b"hello, this is not a photo\n",
    "pdf": b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\n",
    "svg": b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><rect width="10" height="10"/></svg>',
    "html": b"<!doctype html><html><body>hi</body></html>",
    "zip": b"PK\x03\x04" + b"\x00" * 64,
}


def animated_gif(first=(200, 30, 30), second=(30, 60, 200)) -> bytes:
    from PIL import Image

    frames = [Image.new("RGB", (64, 48), first), Image.new("RGB", (64, 48), second)]
    buf = io.BytesIO()
    frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    return buf.getvalue()


def sixteen_bit_png(level: int = 32768) -> bytes:
    from PIL import Image

    img = Image.fromarray(np.full((40, 60), level, dtype=np.uint16))
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def rgba_png() -> bytes:
    """Left half opaque red, right half fully transparent (with black under the transparency)."""
    from PIL import Image

    a = np.zeros((40, 60, 4), np.uint8)
    a[:, :30] = (200, 30, 30, 255)
    buf = io.BytesIO()
    Image.fromarray(a, "RGBA").save(buf, format="PNG")
    return buf.getvalue()


def exif_rotated_jpeg() -> bytes:
    """Stored 60x40, left half red and right half blue, EXIF Orientation 6 (display rotated 90 degrees clockwise)."""
    from PIL import Image

    a = np.zeros((40, 60, 3), np.uint8)
    a[:, :30] = (220, 20, 20)
    a[:, 30:] = (20, 20, 220)
    img = Image.fromarray(a)
    exif = Image.Exif()
    exif[0x0112] = 6
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=95, exif=exif.tobytes())
    return buf.getvalue()
