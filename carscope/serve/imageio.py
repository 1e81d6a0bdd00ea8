"""Decode an uploaded photo in memory, safely, into an RGB Pillow image (no torch).

    python -c "from carscope.serve.imageio import decode_image; im = decode_image(open('car.jpg', 'rb').read()); print(im.image.size)"

Every way an upload can be bad ends as an `ImageRejected` (HTTP status + stable code + one-line message), never
as an unhandled exception:

    400 empty_file          no bytes at all
    415 not_an_image        the bytes are no image format we know (text, PDF, SVG, ...)
    415 unsupported_format  an image format we do not decode (HEIC/AVIF, ICO, ...)
    422 corrupt_image       a known format whose header or pixel data is broken or truncated
    422 too_many_pixels     a decompression bomb: rejected from the header, before any pixel is allocated
    422 bad_dimensions      zero, tiny, gigantic or absurdly elongated images

What comes out is what the classifiers were trained on: the first frame of an animation, EXIF orientation
applied, and 8-bit RGB (CMYK, greyscale, palette and 16-bit converted; transparency composited on white).
Given a preprocessing spec with `jpeg_draft`, a JPEG is decoded at the spec's draft scale (carscope/common/imaging.py),
exactly as train evaluated it: the full-size pixels of a photo that ends up 96 px wide are never made.
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass

from PIL import Image, ImageOps, UnidentifiedImageError

from carscope.common.imaging import ORIENTATION_TAG, draft

log = logging.getLogger("carscope.serve")

# What we decode: the formats browsers and phones produce (MPO is how Pillow names many phone JPEGs).
SUPPORTED = {
    "JPEG": ("JPEG", "MPO"),
    "PNG": ("PNG",),
    "GIF": ("GIF",),
    "WEBP": ("WEBP",),
    "BMP": ("BMP",),
    "TIFF": ("TIFF",),
}
SUPPORTED_MIME = ("image/jpeg", "image/png", "image/gif", "image/webp", "image/bmp", "image/tiff")


class ImageRejected(Exception):
    """An upload we refuse, with the HTTP status, a stable machine-readable code and a one-line message."""

    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


@dataclass(frozen=True)
class DecodeLimits:
    max_pixels: int = 50_000_000  # 50 MP: above any phone's default output, far below a bomb's billions
    max_side: int = 20_000
    min_side: int = 8  # smaller than this is an icon or a tracking pixel, not a photo of a car
    max_aspect: float = 20.0  # 20:1 is past any panorama; beyond it the resized long side explodes


@dataclass
class Decoded:
    image: Image.Image  # RGB, orientation applied
    format: str  # the container format Pillow read, e.g. JPEG, PNG
    original_mode: str  # the pixel mode before conversion, e.g. CMYK, I;16, P
    original_size: tuple[int, int]  # width, height as stored (before EXIF rotation)
    frames: bool  # True when it was an animation or multi-page file (we used the first frame)
    scale: int = 1  # JPEG draft scale: `image` is 1/scale of the photo's size (1: full size)
    size: tuple[int, int] = (0, 0)  # the photo's width, height at full size with EXIF orientation applied


def sniff(data: bytes) -> str | None:
    """The image format from the magic bytes, or None. Deciding from bytes, not from the client's filename or
    Content-Type, is what lets us tell "not an image" (415) from "a broken image" (422)."""
    if data[:3] == b"\xff\xd8\xff":
        return "JPEG"
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "PNG"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "GIF"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    if data[:2] == b"BM":
        return "BMP"
    if data[:4] in (b"II*\x00", b"MM\x00*"):
        return "TIFF"
    return None


def _unsupported_kind(data: bytes) -> str | None:
    """Name image formats we recognise but do not decode, for a more useful 415 message."""
    if data[4:8] == b"ftyp" and data[8:12] in (b"heic", b"heix", b"hevc", b"mif1", b"msf1", b"avif", b"avis"):
        return "HEIC/AVIF"
    if data[:4] == b"\x00\x00\x01\x00":
        return "ICO"
    if data[:4] in (b"8BPS",):
        return "PSD"
    if data[:12] == b"\x00\x00\x00\x0cjP  \r\n\x87\n" or data[:4] == b"\xff\x4f\xff\x51":
        return "JPEG 2000"
    if data[:8] == b"\x00\x00\x00\x0cJXL " or data[:2] == b"\xff\x0a":
        return "JPEG XL"
    return None


def check_dimensions(width: int, height: int, limits: DecodeLimits) -> None:
    if width <= 0 or height <= 0:
        raise ImageRejected(422, "bad_dimensions", f"the image claims to be {width}x{height} pixels")
    if width * height > limits.max_pixels:
        raise ImageRejected(422, "too_many_pixels",
                            f"the image is {width}x{height} ({width * height / 1e6:.0f} megapixels); "
                            f"the limit is {limits.max_pixels / 1e6:.0f} megapixels")
    if max(width, height) > limits.max_side:
        raise ImageRejected(422, "bad_dimensions",
                            f"the image is {width}x{height}; sides longer than {limits.max_side} px are refused")
    if min(width, height) < limits.min_side:
        raise ImageRejected(422, "bad_dimensions",
                            f"the image is {width}x{height}; it needs at least {limits.min_side} px on each side")
    if max(width, height) / min(width, height) > limits.max_aspect:
        raise ImageRejected(422, "bad_dimensions",
                            f"the image is {width}x{height}; an aspect ratio over {limits.max_aspect:g}:1 is not a photo")


def decode_image(data: bytes, limits: DecodeLimits | None = None, spec: dict | None = None) -> Decoded:
    """Bytes of an upload -> `Decoded` (RGB image), or `ImageRejected`. Never writes to disk.

    `spec`: a model's preprocessing spec; a JPEG is then decoded at its draft scale (full size without one)."""
    limits = limits or DecodeLimits()
    if not data:
        raise ImageRejected(400, "empty_file", "the uploaded file is empty")
    kind = sniff(data)
    if kind is None:
        other = _unsupported_kind(data)
        if other:
            raise ImageRejected(415, "unsupported_format",
                                f"{other} images are not supported; send a JPEG, PNG, WebP, GIF, BMP or TIFF photo")
        raise ImageRejected(415, "not_an_image",
                            "the upload is not an image; send a JPEG, PNG, WebP, GIF, BMP or TIFF photo")
    try:
        # Image.open reads the header only: dimensions are known before a single pixel is decoded.
        im = Image.open(io.BytesIO(data), formats=SUPPORTED[kind])
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        # Pillow's own guard (above ~89 MP; a warning turned error under pytest's filterwarnings).
        raise ImageRejected(422, "too_many_pixels", "the image has far too many pixels (decompression bomb)") from None
    except (UnidentifiedImageError, Exception):
        raise ImageRejected(422, "corrupt_image", f"the file looks like a {kind} image but its header is broken") from None
    width, height = im.size
    check_dimensions(width, height, limits)
    try:
        frames = bool(getattr(im, "is_animated", False))  # GIF/WebP/APNG animations, multi-page TIFF, MPO
        if frames:
            im.seek(0)  # the first frame of an animation is what a viewer shows before it plays
        scale = draft(im, spec)
        im.load()
    except Exception:  # Pillow raises OSError, SyntaxError, ValueError, EOFError, zlib.error... for broken data
        raise ImageRejected(422, "corrupt_image", f"the {kind} image is truncated or its pixel data is corrupt") from None
    original_mode = im.mode
    stored = im.size
    im = _apply_orientation(im)
    turned = im.size != stored  # rotated by 90 degrees: width and height swap
    size = (height, width) if turned else (width, height)
    try:
        rgb = to_rgb(im)
    except Exception:
        raise ImageRejected(415, "unsupported_format", f"{kind} images with {original_mode} pixels are not supported") from None
    return Decoded(image=rgb, format=im.format or kind, original_mode=original_mode, original_size=(width, height),
                   frames=frames, scale=scale, size=size)


def _apply_orientation(im: Image.Image) -> Image.Image:
    """Rotate/flip as the camera's EXIF Orientation tag says (phones store portraits sideways)."""
    try:
        if im.getexif().get(ORIENTATION_TAG, 1) == 1:
            return im  # upright already (most photos): no copy of the pixels
        fmt = im.format
        out = ImageOps.exif_transpose(im)
        out.format = fmt
        return out
    except Exception:  # a malformed EXIF block must not cost the user an answer: use the pixels as stored
        log.debug("ignoring unreadable EXIF orientation")
        return im


def to_rgb(im: Image.Image) -> Image.Image:
    """8-bit RGB from any Pillow mode, the way a browser would display the image."""
    import numpy as np

    mode = im.mode
    if mode == "RGB":
        return im
    if mode.startswith("I;16") or mode in ("I", "F"):
        # Pillow's convert('L') clips 16/32-bit values at 255 (a white image); scale the range instead.
        a = np.asarray(im).astype(np.float64)
        if mode == "F":
            top = 1.0 if a.size and float(np.nanmax(a)) <= 1.0 else 255.0
            a = a * (255.0 / top)
        elif mode.startswith("I;16") or (a.size and a.max() > 255):
            a = a / 257.0  # 65535 -> 255 exactly
        a = np.nan_to_num(np.clip(np.rint(a), 0, 255)).astype(np.uint8)
        return Image.fromarray(a).convert("RGB")
    has_alpha = mode in ("RGBA", "LA", "PA", "RGBa") or "transparency" in im.info
    if has_alpha:
        # Transparent pixels have undefined colour; catalog cut-outs sit on white, so composite onto white.
        rgba = im.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return im.convert("RGB")  # L, 1, P, CMYK (Pillow handles Adobe's inverted CMYK), YCbCr, LAB, HSV


def preview_data_uri(im: Image.Image, max_side: int = 720, quality: int = 85) -> str:
    """A small JPEG of the decoded photo as a data: URI, so the result page shows it without ever storing it."""
    import base64

    preview = im.copy()
    preview.thumbnail((max_side, max_side), Image.Resampling.BILINEAR)
    buf = io.BytesIO()
    preview.save(buf, format="JPEG", quality=quality)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")
