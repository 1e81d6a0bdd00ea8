"""carscope/serve/imageio.py: every bad upload is a clean rejection; unusual but valid photos become the right RGB."""

from __future__ import annotations

import numpy as np
import pytest

from carscope.serve.imageio import DecodeLimits, ImageRejected, decode_image, preview_data_uri, sniff
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


# -- the gates at their edges, for `make mutate` of carscope/serve/imageio.py ---------------------------------------------
def _dims(width, height, limits=None):
    """None when check_dimensions lets width x height through, else (status, code)."""
    from carscope.serve.imageio import check_dimensions

    try:
        check_dimensions(width, height, limits or DecodeLimits())
    except ImageRejected as e:
        return e.status, e.code
    return None


TOO_MANY, BAD = (422, "too_many_pixels"), (422, "bad_dimensions")


def test_dimension_limits_at_their_edges():
    small = DecodeLimits(max_pixels=2_500, max_side=100, min_side=3, max_aspect=4.0)
    cases = {
        (0, 10): BAD, (10, 0): BAD, (-1, 10): BAD, (0, 0): BAD,  # before any division by a side
        (50, 50): None, (51, 50): TOO_MANY, (50, 51): TOO_MANY,  # 2,500 pixels pass, 2,550 do not
        (100, 25): None, (101, 20): BAD, (20, 101): BAD,  # the longest side
        (3, 12): None, (2, 8): BAD, (8, 2): BAD,  # the shortest side
        (48, 12): None, (49, 12): BAD, (12, 49): BAD,  # aspect 4:1 passes, 4.08:1 does not
    }
    for (w, h), want in cases.items():
        assert _dims(w, h, small) == want, ((w, h), want)
    defaults = {(10_000, 5_000): None, (10_001, 5_000): TOO_MANY, (20_000, 1_000): None, (20_001, 1_001): BAD,
                (8, 8): None, (7, 8): BAD, (160, 8): None, (161, 8): BAD}
    for (w, h), want in defaults.items():
        assert _dims(w, h) == want, ((w, h), want)
    d = DecodeLimits()
    assert (d.max_pixels, d.max_side, d.min_side, d.max_aspect) == (50_000_000, 20_000, 8, 20.0)
    # with no minimum side, a side of 1 is a size, and a side of 0 is still refused (not a division by zero)
    lax = DecodeLimits(min_side=0, max_aspect=1000.0)
    assert _dims(1, 5, lax) is None and _dims(5, 1, lax) is None and _dims(1, 1, lax) is None
    assert _dims(10, 0, lax) == BAD and _dims(0, 10, lax) == BAD
    import dataclasses

    with pytest.raises(dataclasses.FrozenInstanceError):  # limits are shared by every request: read-only
        d.max_pixels = 1


def test_dimension_messages_name_the_size_and_the_limit():
    from carscope.serve.imageio import check_dimensions

    for (w, h), words in {(0, 5): "claims to be 0x5 pixels", (5, 0): "claims to be 5x0 pixels",
                          (10_001, 5_000): "(50 megapixels); the limit is 50 megapixels",
                          (20_001, 1_001): "longer than 20000 px", (7, 8): "at least 8 px",
                          (161, 8): "aspect ratio over 20:1"}.items():
        with pytest.raises(ImageRejected) as info:
            check_dimensions(w, h, DecodeLimits())
        assert words in info.value.message and "\n" not in info.value.message, (w, h)


def test_decode_refuses_by_the_header_at_each_limit():
    limits = DecodeLimits(max_pixels=2_500, max_side=100, min_side=3, max_aspect=4.0)
    for size, code in (((51, 50), "too_many_pixels"), ((101, 2), "bad_dimensions"), ((2, 8), "bad_dimensions"),
                       ((49, 12), "bad_dimensions")):
        e = rejected(images.png_header_only(*size), limits)
        assert (e.status, e.code) == (422, code), size
    ok = decode_image(photo("red", (50, 50), fmt="PNG"), limits)  # exactly at the pixel limit: decoded
    assert ok.image.size == (50, 50)


MAGIC = {
    b"\xff\xd8\xff\xe0": "JPEG", b"\x89PNG\r\n\x1a\n": "PNG", b"GIF87a": "GIF", b"GIF89a": "GIF",
    b"RIFF\x00\x00\x00\x00WEBP": "WEBP", b"BM": "BMP", b"II*\x00": "TIFF", b"MM\x00*": "TIFF",
}
NEAR_MISSES = [b"\xff\xd8", b"\xff\xd9\xff", b"\x89PNG\r\n\x1a", b"\x89PNG\r\n\x1a\x0b", b"GIF88a", b"GIF8",
               b"RIFF\x00\x00\x00\x00WAVE", b"RIFX\x00\x00\x00\x00WEBP", b"B", b"BN", b"II*\x01", b"MM\x00+",
               b"MI\x00*", b" \xff\xd8\xff", b""]


def test_sniff_reads_exactly_the_magic_bytes():
    for magic, kind in MAGIC.items():
        assert sniff(magic + b"\x00" * 16) == kind, magic
        assert sniff(magic) == kind, magic  # the magic alone, nothing after it
    for data in NEAR_MISSES:
        assert sniff(data + b"\x00" * 16 if data else data) is None, data


UNSUPPORTED = {
    **{b"\x00\x00\x00\x18ftyp" + brand + b"\x00" * 8: "HEIC/AVIF"
       for brand in (b"heic", b"heix", b"hevc", b"mif1", b"msf1", b"avif", b"avis")},
    b"\x00\x00\x01\x00\x01\x00": "ICO", b"8BPS\x00\x01": "PSD",
    b"\x00\x00\x00\x0cjP  \r\n\x87\n\x00": "JPEG 2000", b"\xff\x4f\xff\x51\x00": "JPEG 2000",
    b"\x00\x00\x00\x0cJXL \r\n\x87\n": "JPEG XL", b"\xff\x0a\x00": "JPEG XL",
}


def test_formats_we_know_but_do_not_decode_are_named():
    for data, kind in UNSUPPORTED.items():
        e = rejected(data + b"\x00" * 32)
        assert (e.status, e.code) == (415, "unsupported_format") and e.message.startswith(kind + " images"), data
    for other in (b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 40, b"\x00\x00\x02\x00" + b"\x00" * 40,
                  b"8BPX" + b"\x00" * 40, b"\xff\x4f\xff\x52" + b"\x00" * 40, b"\xff\x0b" + b"\x00" * 40):
        e = rejected(other)
        assert (e.status, e.code) == (415, "not_an_image"), other


def test_rejection_messages():
    """The one-line messages the API and the page show, word for word."""
    want = {
        b"": "the uploaded file is empty",
        b"hello": "the upload is not an image; send a JPEG, PNG, WebP, GIF, BMP or TIFF photo",
        images.broken_header_jpeg(): "the file looks like a JPEG image but its header is broken",
        images.truncated_jpeg(): "the JPEG image is truncated or its pixel data is corrupt",
        images.png_header_only(100_000, 100_000): "the image has far too many pixels (decompression bomb)",
        images.png_header_only(30_000, 1_000): "the image is 30000x1000; sides longer than 20000 px are refused",
        images.png_header_only(4, 40): "the image is 4x40; it needs at least 8 px on each side",
        images.png_header_only(2000, 50): "the image is 2000x50; an aspect ratio over 20:1 is not a photo",
    }
    for data, message in want.items():
        assert rejected(data).message == message


def test_the_upload_page_accepts_exactly_the_formats_decoded():
    from PIL import Image

    from carscope.serve.imageio import SUPPORTED, SUPPORTED_MIME

    assert SUPPORTED_MIME == tuple(Image.MIME[fmt] for fmt in SUPPORTED)


def test_a_phones_mpo_jpeg_is_decoded():
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (40, 30), (200, 30, 30)).save(buf, format="MPO", save_all=True,
                                                    append_images=[Image.new("RGB", (40, 30), (30, 30, 200))])
    d = decode_image(buf.getvalue())
    assert d.format == "MPO" and d.frames and d.image.size == (40, 30)
    assert np.asarray(d.image)[15, 20].astype(int).tolist() == pytest.approx([200, 30, 30], abs=12)  # the first


def test_every_rejection_has_its_status_and_one_line():
    for data, want in ((b"", (400, "empty_file")), (b"hello", (415, "not_an_image")),
                       (images.heic_header(), (415, "unsupported_format")),
                       (images.broken_header_jpeg(), (422, "corrupt_image")),
                       (images.truncated_jpeg(), (422, "corrupt_image")),
                       (images.png_header_only(9000, 9000), (422, "too_many_pixels"))):
        e = rejected(data)
        assert (e.status, e.code) == want and e.message and "\n" not in e.message and str(e) == e.message


def test_decoded_fields_of_a_still_and_a_rotated_photo():
    still = decode_image(photo("red", (100, 80)))
    assert (still.format, still.original_mode, still.original_size, still.frames, still.scale, still.size) == \
        ("JPEG", "RGB", (100, 80), False, 1, (100, 80))
    turned = decode_image(images.exif_rotated_jpeg())
    assert turned.format == "JPEG" and turned.size == (40, 60) and turned.original_size == (60, 40)
    png = decode_image(photo("red", (30, 20), fmt="PNG"))
    assert png.format == "PNG" and png.size == (30, 20)


def test_jpeg_draft_scale_follows_the_spec():
    spec = {"resize": 100, "jpeg_draft": True}
    d = decode_image(photo("red", (800, 440)), spec=spec)
    assert d.scale == 4 and d.image.size == (200, 110) and d.size == (800, 440)
    assert decode_image(photo("red", (800, 440)), spec={"resize": 100}).scale == 1  # no draft without the flag
    assert decode_image(photo("red", (800, 440), fmt="PNG"), spec=spec).scale == 1  # JPEG only


def test_exif_that_cannot_be_read_keeps_the_stored_pixels(monkeypatch, caplog):
    import logging

    from PIL import Image

    from carscope.serve import imageio

    def broken(self):
        raise SyntaxError("bad EXIF")

    monkeypatch.setattr(Image.Image, "getexif", broken)
    with caplog.at_level(logging.DEBUG, logger="carscope.serve"):
        d = imageio.decode_image(images.exif_rotated_jpeg())
    assert d.image.size == (60, 40) and d.size == (60, 40)  # as stored: an answer rather than an error
    assert [(r.name, r.getMessage()) for r in caplog.records] == [("carscope.serve",
                                                                   "ignoring unreadable EXIF orientation")]


def test_upright_photos_are_not_copied():
    from PIL import Image

    from carscope.serve.imageio import _apply_orientation

    im = Image.new("RGB", (20, 10))
    assert _apply_orientation(im) is im


def _mode_image(mode, values):
    from PIL import Image

    a = np.asarray(values)
    if mode == "F":
        return Image.fromarray(a.astype(np.float32), mode="F")
    if mode == "I":
        return Image.fromarray(a.astype(np.int32), mode="I")
    im = Image.new(mode, (a.shape[1], a.shape[0]))
    im.putdata([int(v) for v in a.ravel()])
    return im


def test_wide_pixel_modes_are_scaled_like_a_viewer_scales_them():
    from carscope.serve.imageio import to_rgb

    def grey(mode, values):
        return np.asarray(to_rgb(_mode_image(mode, [values])))[0, :, 0].tolist()

    assert grey("F", [0.0, 0.5, 1.0]) == [0, 128, 255]  # floats in [0, 1]: scaled to 255
    assert grey("F", [0.0, 100.0, 255.0, 300.0, -5.0]) == [0, 100, 255, 255, 0]  # floats past 1: a 0-255 image
    assert grey("F", [float("nan"), 1.0]) == [0, 255]
    assert grey("F", [0.75, 1.0]) == [191, 255]  # 0.75 x 255 = 191.25
    assert grey("F", [0.0, 1.5]) == [0, 2]  # the largest value is past 1: read as 0-255, not stretched
    assert grey("I", [0, 100, 255]) == [0, 100, 255]  # a 32-bit image holding 8-bit values is kept
    assert grey("I", [0, 256]) == [0, 1]  # past 255: 16-bit values, scaled
    assert grey("I", [0, 257, 65535]) == [0, 1, 255]  # one holding 16-bit values is scaled
    assert grey("I;16", [0, 257 * 100, 65535]) == [0, 100, 255]
    assert grey("I;16", [0, 255]) == [0, 1]  # 16-bit always scales, even when every value is small


def test_alpha_modes_and_palette_transparency_composite_on_white():
    from PIL import Image

    from carscope.serve.imageio import to_rgb

    rgb = Image.new("RGB", (4, 4), (10, 20, 30))
    assert to_rgb(rgb) is rgb  # RGB already: no copy
    for mode in ("RGBA", "LA", "PA"):
        clear = Image.new("RGBA", (4, 4), (0, 0, 0, 0)).convert(mode)
        assert np.asarray(to_rgb(clear)).tolist() == [[[255, 255, 255]] * 4] * 4, mode
    # premultiplied alpha: transparent is white too, not the black stored under it
    assert np.asarray(to_rgb(Image.new("RGBa", (4, 4)))).tolist() == [[[255, 255, 255]] * 4] * 4
    p = Image.new("P", (4, 4), 0)
    p.putpalette([0, 0, 0, 200, 30, 30] + [0] * 762)
    p.putpixel((0, 0), 1)
    p.info["transparency"] = 0
    a = np.asarray(to_rgb(p))
    assert tuple(a[0, 0]) == (200, 30, 30) and tuple(a[1, 1]) == (255, 255, 255)
    opaque = Image.new("L", (2, 2), 77)
    assert np.asarray(to_rgb(opaque)).tolist() == [[[77] * 3] * 2] * 2


def test_an_unconvertible_mode_is_unsupported(monkeypatch):
    from carscope.serve import imageio

    def fail(im):
        raise ValueError("no conversion")

    monkeypatch.setattr(imageio, "to_rgb", fail)
    e = rejected(photo("red", (20, 20), fmt="PNG"))
    assert (e.status, e.code) == (415, "unsupported_format") and "RGB pixels are not supported" in e.message


def test_preview_keeps_the_photo_and_its_quality():
    import base64
    import io

    from PIL import Image

    im = decode_image(photo("red", (1000, 500))).image
    small = preview_data_uri(im)
    assert im.size == (1000, 500)  # the decoded photo is not resized in place
    shown = Image.open(io.BytesIO(base64.b64decode(small.split(",", 1)[1])))
    assert shown.size == (720, 360) and shown.format == "JPEG"
    tiny = preview_data_uri(decode_image(photo("red", (100, 50))).image)
    assert Image.open(io.BytesIO(base64.b64decode(tiny.split(",", 1)[1]))).size == (100, 50)  # never enlarged
    low = preview_data_uri(im, quality=10)
    assert len(low) < len(small)
