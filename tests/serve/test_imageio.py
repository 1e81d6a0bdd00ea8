"""serve/imageio.py: every bad upload is a clean rejection; unusual but valid photos become the right RGB."""

from __future__ import annotations

import numpy as np
import pytest

from serve.imageio import DecodeLimits, ImageRejected, decode_image, preview_data_uri, sniff
from tests.serve import images
from tests.serve.tinybundle import photo


def rejected(data: bytes, limits: DecodeLimits | None = None) -> ImageRejected:
    with pytest.raises(ImageRejected) as info:
        decode_image(data, limits)
    return info.value


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF"])
def test_supported_formats_decode_to_rgb(fmt):
    d = decode_image(photo("red", (100, 80), fmt=fmt))
    assert d.image.mode == "RGB" and d.image.size == (100, 80)
    assert sniff(photo("red", (20, 20), fmt=fmt)) == fmt
    r, g, b = np.asarray(d.image).reshape(-1, 3).mean(0)
    assert r > 120 and g < 80 and b < 80  # still red after the format's own conversions


def test_empty_is_400():
    e = rejected(b"")
    assert (e.status, e.code) == (400, "empty_file")


@pytest.mark.parametrize("kind", sorted(images.NOT_IMAGES))
def test_not_an_image_is_415(kind):
    e = rejected(images.NOT_IMAGES[kind])
    assert (e.status, e.code) == (415, "not_an_image")


def test_known_but_unsupported_format_is_415():
    e = rejected(images.heic_header())
    assert (e.status, e.code) == (415, "unsupported_format") and "HEIC" in e.message


@pytest.mark.parametrize("make", [images.truncated_jpeg, images.corrupt_png, images.broken_header_jpeg])
def test_truncated_or_corrupt_is_422(make):
    e = rejected(make())
    assert (e.status, e.code) == (422, "corrupt_image")


@pytest.mark.parametrize("size", [(9000, 9000), (100_000, 100_000)])
def test_decompression_bomb_is_rejected_from_the_header(size):
    # Above our 50 MP cap, and (the second) above Pillow's own bomb guard: both are refused as too many
    # pixels. Were the pixels decoded, this tiny IDAT would fail as "corrupt" instead.
    e = rejected(images.png_header_only(*size))
    assert (e.status, e.code) == (422, "too_many_pixels")


def test_pixel_limit_is_configurable():
    data = photo("red", (200, 100))
    e = rejected(data, DecodeLimits(max_pixels=10_000))
    assert e.code == "too_many_pixels"


@pytest.mark.parametrize("size", [(30_000, 100), (4, 4), (2000, 50)])
def test_absurd_dimensions_are_422(size):
    e = rejected(images.png_header_only(*size))
    assert (e.status, e.code) == (422, "bad_dimensions")


def test_animated_gif_uses_first_frame():
    d = decode_image(images.animated_gif(first=(200, 30, 30), second=(30, 60, 200)))
    assert d.frames
    r, g, b = np.asarray(d.image).reshape(-1, 3).mean(0)
    assert r > 150 and b < 80


@pytest.mark.parametrize("mode", ["CMYK", "L", "P", "LA", "RGBA", "1"])
def test_modes_are_converted(mode):
    fmt = "JPEG" if mode in ("CMYK", "L") else "PNG"
    d = decode_image(photo("red", (64, 48), fmt=fmt, mode=mode))
    assert d.image.mode == "RGB" and d.original_mode == mode
    if mode not in ("L", "LA", "1"):
        r, g, b = np.asarray(d.image).reshape(-1, 3).mean(0)
        assert r > 120 and g < 90 and b < 90, (mode, r, g, b)


def test_sixteen_bit_is_scaled_not_clipped():
    d = decode_image(images.sixteen_bit_png(32768))
    assert d.original_mode.startswith("I")
    values = np.unique(np.asarray(d.image))
    assert values.tolist() == [128]  # 32768 / 257; clipping would give 255


def test_transparency_is_composited_on_white():
    a = np.asarray(decode_image(images.rgba_png()).image)
    assert tuple(a[20, 10]) == (200, 30, 30)
    assert tuple(a[20, 50]) == (255, 255, 255)  # not the black stored under the transparent pixels


def test_exif_orientation_is_applied():
    d = decode_image(images.exif_rotated_jpeg())
    assert d.original_size == (60, 40) and d.image.size == (40, 60)
    a = np.asarray(d.image).astype(int)
    # Rotating 90 degrees clockwise puts the stored left half (red) on top.
    assert a[5, 20, 0] > 150 and a[5, 20, 2] < 100
    assert a[55, 20, 2] > 150 and a[55, 20, 0] < 100


def test_preview_is_a_small_jpeg_data_uri():
    d = decode_image(photo("red", (1600, 1200)))
    uri = preview_data_uri(d.image, max_side=320)
    assert uri.startswith("data:image/jpeg;base64,")
    import base64
    import io

    from PIL import Image

    im = Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1])))
    assert max(im.size) == 320
