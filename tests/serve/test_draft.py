"""JPEG draft decoding in serve: each model gets exactly the pixels its spec describes, from one decode when
the two models' draft scales agree and from two when they do not (carscope/common/imaging.py)."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from carscope.common.imaging import draft, jpeg_scale
from carscope.serve.imageio import decode_image
from carscope.serve.preprocess import Preprocessor
from tests.serve.tinybundle import SPEC, make_tiny_bundle, photo


@pytest.mark.parametrize("size", [(640, 480), (480, 640), (1000, 130), (200, 150), (97, 300), (1280, 1279)])
@pytest.mark.parametrize("target", [64, 80, 96])
def test_jpeg_scale_is_the_scale_pillow_decodes_at(size, target):
    data = photo("red", size)
    im = Image.open(io.BytesIO(data))
    used = draft(im, {"resize": target, "jpeg_draft": True})
    im.load()
    assert used == jpeg_scale(*size, target)
    assert im.size == (-(-size[0] // used), -(-size[1] // used))
    assert min(im.size) >= min(target, *size)  # never below the resize unless the photo itself is smaller


def test_decode_at_draft_scale_reports_the_full_size():
    data = photo("red", (640, 480))
    full, small = decode_image(data), decode_image(data, spec={"resize": 96, "jpeg_draft": True})
    assert (full.scale, small.scale) == (1, 4)
    assert small.image.size == (160, 120) and full.image.size == (640, 480)
    assert small.size == full.size == (640, 480)
    png = photo("red", (640, 480), fmt="PNG")  # only JPEGs draft
    assert decode_image(png, spec={"resize": 96, "jpeg_draft": True}).image.size == (640, 480)
    assert decode_image(data, spec={"resize": 96}).scale == 1  # no flag: full size, as older bundles expect


@pytest.mark.parametrize("size", [(640, 640), (640, 480), (320, 240)])
def test_each_model_gets_its_own_specs_pixels(tmp_path, size):
    """view drafts to 80 and model to 96: a 640x640 photo decodes at 1/8 for one and 1/4 for the other, so
    the predictor must decode twice there and once for the others; either way each model's input is what its
    own spec gives on its own decode."""
    from carscope.serve.config import ServeConfig
    from carscope.serve.predictor import Predictor

    inputs = {"view": {"resize": 80, "jpeg_draft": True}, "model": {"resize": 96, "jpeg_draft": True}}
    root = make_tiny_bundle(tmp_path / "bundle", with_thumbs=False, inputs=inputs)
    p = Predictor(root, ServeConfig(providers="cpu", intra_op_threads=1))
    p.start()
    seen = []
    run = p.batcher.fn
    p.batcher.fn = lambda items: seen.extend(items) or run(items)
    try:
        data = photo("blue", size, seed=3)
        answer = p.predict(data)
    finally:
        p.close()
    assert (answer["image"]["width"], answer["image"]["height"]) == size
    (view_x, model_x), = seen
    for key, got in (("view", view_x), ("model", model_x)):
        spec = {**SPEC, **inputs[key]}
        want = Preprocessor(spec)(decode_image(data, spec=spec).image)
        np.testing.assert_array_equal(got, want)
    scales = {jpeg_scale(*size, 80), jpeg_scale(*size, 96)}
    assert (len(scales) == 2) == (size == (640, 640))  # the case that needs the second decode is covered
