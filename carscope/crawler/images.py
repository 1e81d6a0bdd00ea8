"""The image pipeline's CPU part: full decode, validation, EXIF transpose, RGB JPEG, sha256. No I/O here.

    python -c "
    import io; from PIL import Image; from carscope.crawler.images import process_image, ImageRules
    b = io.BytesIO(); Image.new('RGB', (640, 480), 'red').save(b, 'JPEG'); print(process_image(b.getvalue(), ImageRules()))"

`process_image` runs in a thread pool sized to the cores (Pillow's decoders and encoders and hashlib release
the GIL), so the event loop keeps downloading while images are checked. An image is kept only if it decodes
completely (a truncated or corrupt file raises, unlike a header check), is large enough and not a sliver.
A baseline RGB JPEG that already fits is stored byte for byte (re-encoding would only lose quality and
CPU); anything else is transposed by its EXIF orientation, converted to RGB, shrunk to `max_side` (default
1024 px, the longest side) and saved as JPEG at `quality`. With `keep_original` the downloaded bytes are stored
as they are (after validation).

`width` and `height` are always the pixels as displayed, EXIF orientation applied, in both modes (a 800x600
JPEG tagged "rotate 90" is 600x800 stored either way); `orig_width`, `orig_height` (displayed too) and
`orig_format` (Pillow's name: JPEG, PNG, WEBP, ...) describe the photo as downloaded.
"""

from __future__ import annotations

import hashlib
import io
import warnings
from dataclasses import dataclass

from carscope.common.imaging import ORIENTATION_TAG


@dataclass(frozen=True)
class ImageRules:
    min_side: int = 64
    max_aspect: float = 4.0
    max_side: int = 1024
    quality: int = 90
    keep_original: bool = False
    max_pixels: int = 40_000_000


@dataclass
class Processed:
    ok: bool
    reason: str | None = None  # corrupt_image, too_small, bad_aspect, too_many_pixels, ...
    data: bytes | None = None  # the bytes to store
    sha256: str | None = None  # of `data`
    ext: str = "jpg"
    width: int | None = None
    height: int | None = None
    source_sha256: str | None = None
    orig_width: int | None = None  # the downloaded photo, as displayed (EXIF orientation applied)
    orig_height: int | None = None
    orig_format: str | None = None  # JPEG / PNG / WEBP ...


# EXIF orientations 5-8 turn the picture by 90 degrees: its displayed width is its stored height
TURNED = frozenset({5, 6, 7, 8})

EXT_BY_FORMAT = {"JPEG": "jpg", "PNG": "png", "WEBP": "webp", "GIF": "gif", "BMP": "bmp", "TIFF": "tif"}


THUMBNAIL_PX = 320  # a page type whose every stored photo is smaller (longest side) most likely links thumbnails


def thumbnail_warning(page_type: str, sides: list[int]) -> str | None:
    """The one-line warning `crawl --check` and the crawl summary give when every photo of a page type (`sides`:
    each stored photo's longest side) is under THUMBNAIL_PX; None otherwise."""
    if not sides or max(sides) >= THUMBNAIL_PX:
        return None
    return (f"every photo of page type {page_type} is under {THUMBNAIL_PX} px (largest {max(sides)} px); is there "
            f"a full-size URL? (see `rewrite` in the adapter reference)")


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def process_image(data: bytes, rules: ImageRules, source_sha256: str | None = None) -> Processed:
    from PIL import Image, ImageOps, UnidentifiedImageError

    src_sha = source_sha256 or sha256_hex(data)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            im = Image.open(io.BytesIO(data))
            fmt = im.format
            w, h = im.size
            if w * h > rules.max_pixels:
                return Processed(False, "too_many_pixels", width=w, height=h, source_sha256=src_sha, orig_format=fmt)
            im.load()  # the full decode: a truncated or corrupt body raises here, not at open()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError,
            Image.DecompressionBombWarning, EOFError) as exc:
        reason = "too_many_pixels" if "ecompression" in type(exc).__name__ else "corrupt_image"
        return Processed(False, reason, source_sha256=src_sha)
    orientation = 1
    try:
        orientation = im.getexif().get(ORIENTATION_TAG, 1) or 1
    except Exception:  # a broken EXIF block must not cost a good image
        orientation = 1
    if orientation in TURNED:
        w, h = h, w  # as displayed, which is what every size here describes
    orig = {"orig_width": w, "orig_height": h, "orig_format": fmt}
    if min(w, h) < rules.min_side:
        return Processed(False, "too_small", width=w, height=h, source_sha256=src_sha, **orig)
    if max(w, h) / max(1, min(w, h)) > rules.max_aspect:
        return Processed(False, "bad_aspect", width=w, height=h, source_sha256=src_sha, **orig)

    if rules.keep_original:
        return Processed(True, data=data, sha256=src_sha, ext=EXT_BY_FORMAT.get(fmt, "img"), width=w, height=h,
                         source_sha256=src_sha, **orig)
    if fmt == "JPEG" and im.mode == "RGB" and orientation == 1 and max(w, h) <= rules.max_side:
        return Processed(True, data=data, sha256=src_sha, width=w, height=h, source_sha256=src_sha, **orig)
    if orientation != 1:
        im = ImageOps.exif_transpose(im)
    if im.mode != "RGB":
        if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
            rgba = im.convert("RGBA")  # flatten transparency onto white, not black
            bg = Image.new("RGB", rgba.size, (255, 255, 255))
            bg.paste(rgba, mask=rgba.getchannel("A"))
            im = bg
        else:
            im = im.convert("RGB")
    if max(im.size) > rules.max_side:
        im.thumbnail((rules.max_side, rules.max_side), Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=rules.quality, optimize=False, progressive=False)
    out = buf.getvalue()
    return Processed(True, data=out, sha256=sha256_hex(out), width=im.size[0], height=im.size[1],
                     source_sha256=src_sha, **orig)
