import hashlib
import io

import pytest
from PIL import Image

from carscope.crawler.images import ImageRules, process_image


def jpeg(size=(200, 150), color=(200, 30, 30), **save):
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, "JPEG", **save)
    return buf.getvalue()


def test_a_fitting_rgb_jpeg_is_kept_byte_for_byte():
    data = jpeg()
    got = process_image(data, ImageRules())
    assert got.ok and got.data == data and got.sha256 == hashlib.sha256(data).hexdigest()
    assert (got.width, got.height) == (200, 150)


@pytest.mark.parametrize("cut", [0.5, 0.9])
def test_truncated_and_corrupt_bodies_are_rejected(cut):
    data = jpeg((320, 240))
    assert process_image(data[: int(len(data) * cut)], ImageRules()).reason == "corrupt_image"
    garbage = data[:200] + bytes(len(data) - 200)
    assert not process_image(garbage, ImageRules()).ok
    assert process_image(b"<html>not an image</html>", ImageRules()).reason == "corrupt_image"


def test_size_and_aspect_filters():
    assert process_image(jpeg((40, 40)), ImageRules(min_side=64)).reason == "too_small"
    assert process_image(jpeg((1000, 100)), ImageRules(min_side=64, max_aspect=4)).reason == "bad_aspect"


def test_png_with_alpha_becomes_rgb_jpeg_and_large_images_shrink():
    buf = io.BytesIO()
    Image.new("RGBA", (2000, 1000), (0, 0, 255, 0)).save(buf, "PNG")
    got = process_image(buf.getvalue(), ImageRules(max_side=500))
    assert got.ok and got.ext == "jpg" and (got.width, got.height) == (500, 250)
    with Image.open(io.BytesIO(got.data)) as im:
        assert im.format == "JPEG" and im.mode == "RGB"
        assert im.getpixel((10, 10))[0] > 240  # transparency flattened onto white


def test_exif_orientation_is_applied():
    im = Image.new("RGB", (300, 100), (10, 200, 10))
    exif = im.getexif()
    exif[0x0112] = 6  # rotate 90 degrees on display
    buf = io.BytesIO()
    im.save(buf, "JPEG", exif=exif)
    got = process_image(buf.getvalue(), ImageRules())
    assert got.ok and (got.width, got.height) == (100, 300)
    assert got.source_sha256 == hashlib.sha256(buf.getvalue()).hexdigest() != got.sha256


def test_keep_original_stores_the_downloaded_bytes():
    buf = io.BytesIO()
    Image.new("RGB", (300, 200)).save(buf, "PNG")
    got = process_image(buf.getvalue(), ImageRules(keep_original=True))
    assert got.ok and got.data == buf.getvalue() and got.ext == "png"


def _claims(width: int, height: int) -> bytes:
    """A 64x64 PNG whose header claims width x height: a bomb's shape (a small file, a huge canvas); decoding it
    would fail (the pixel data is for 64x64), so only a check made before decoding calls it too_many_pixels."""
    import struct
    import zlib

    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (64, 64), "red").save(buf, "PNG")
    data = bytearray(buf.getvalue())
    ihdr = 8 + 8  # signature, then the IHDR chunk's length and type
    data[ihdr:ihdr + 8] = struct.pack(">II", width, height)
    crc = zlib.crc32(bytes(data[ihdr - 4:ihdr + 13]))
    data[ihdr + 13:ihdr + 17] = struct.pack(">I", crc)
    return bytes(data)


def test_decompression_bombs_are_refused_before_decoding():
    assert process_image(jpeg((3000, 3000)), ImageRules(max_pixels=1_000_000)).reason == "too_many_pixels"
    bomb = _claims(7_000, 7_000)  # 49 Mpx: over max_pixels, under the 89 Mpx where Pillow itself would warn
    assert len(bomb) < 1000
    assert process_image(bomb, ImageRules(max_pixels=40_000_000)).reason == "too_many_pixels"
    assert process_image(_claims(64, 64), ImageRules()).ok  # the same file with its true size decodes


def _turned_jpeg(size=(800, 600)) -> bytes:
    """A JPEG stored `size` whose EXIF orientation 6 says: turn 90 degrees on display (so it shows 600x800)."""
    im = Image.new("RGB", size, (10, 200, 10))
    exif = im.getexif()
    exif[0x0112] = 6
    buf = io.BytesIO()
    im.save(buf, "JPEG", exif=exif)
    return buf.getvalue()


@pytest.mark.parametrize("keep_original", [False, True])
def test_width_and_height_are_the_displayed_size_in_both_modes(keep_original):
    got = process_image(_turned_jpeg(), ImageRules(keep_original=keep_original))
    assert got.ok and (got.width, got.height) == (600, 800)
    assert (got.orig_width, got.orig_height, got.orig_format) == (600, 800, "JPEG")


def test_the_original_size_and_format_are_kept_beside_the_stored_ones():
    buf = io.BytesIO()
    Image.new("RGB", (2000, 1500), (0, 0, 255)).save(buf, "PNG")
    got = process_image(buf.getvalue(), ImageRules())  # the default: a JPEG of at most 1024 px
    assert got.ok and (got.width, got.height) == (1024, 768)
    assert (got.orig_width, got.orig_height, got.orig_format) == (2000, 1500, "PNG")
    small = process_image(jpeg((200, 150)), ImageRules())
    assert (small.orig_width, small.orig_height, small.orig_format) == (200, 150, "JPEG")
