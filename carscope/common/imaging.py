"""The decode step of the preprocessing contract, shared by train, export and serve (Pillow only, no torch).

    python -c "from PIL import Image; from carscope.common.imaging import draft; im = Image.open('car.jpg'); \\
               draft(im, {'resize': 96, 'jpeg_draft': True}); im.load(); print(im.size)"

A spec with `"jpeg_draft": true` decodes JPEG photos with libjpeg's DCT scaling (Pillow's `draft`): at the
smallest 1/2, 1/4 or 1/8 scale whose sides are both still at least `resize` px. A 640x480 photo for a 96 px
model decodes as 160x120: about 5x cheaper to decode and 10x cheaper to resize than at full size, and the
DCT scaling is itself a clean low-pass downscale. Training has always decoded its training pixels this way, so
with the flag evaluation, export checks and serving see the same kind of pixels the model learnt from.
Specs without the flag (bundles made before it) decode at full size, as before.
"""

from __future__ import annotations

from typing import Any

JPEG_FORMATS = ("JPEG", "MPO")  # MPO: how Pillow names many phone JPEGs
ORIENTATION_TAG = 0x0112  # EXIF Orientation, which crawler and serve both apply


def draft_size(spec: dict[str, Any] | None) -> int | None:
    """The `size` a spec drafts JPEGs to, or None when it decodes them at full size."""
    if not spec or not spec.get("jpeg_draft"):
        return None
    return int(spec["resize"])


def jpeg_scale(width: int, height: int, size: int | None) -> int:
    """The scale denominator (1, 2, 4 or 8) Pillow's JPEG draft picks for a width x height photo: the largest
    power of two that keeps both sides at least `size`. 1 when `size` is None."""
    if not size:
        return 1
    fits = min(width // size, height // size)
    return next(s for s in (8, 4, 2, 1) if fits >= s or s == 1)


def draft(img, spec: dict[str, Any] | None) -> int:
    """Before `img`'s pixels are loaded: ask a JPEG for the spec's draft scale. Returns the scale used (1: none).
    A no-op for other formats, for specs without the flag, and for images already loaded."""
    size = draft_size(spec)
    if size is None or getattr(img, "format", None) not in JPEG_FORMATS:
        return 1
    width, height = img.size
    if not img.draft("RGB", (size, size)):  # already loaded, or not a single-tile JPEG: full size
        return 1
    return jpeg_scale(width, height, size)
