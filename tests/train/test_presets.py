"""The eval preprocessing: the cache path equals the eval transform, and both equal the numpy/Pillow recipe in
presets.py's docstring (what serve reimplements)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from carscope.train.checkpoint import make_preprocess_spec
from carscope.train.presets import Normalizer, cache_eval_image, eval_transform


def _photo(w, h, seed=0):
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, (h // 8 + 1, w // 8 + 1, 3), dtype=np.uint8)
    return Image.fromarray(base).resize((w, h), Image.BICUBIC)  # smooth-ish, like a photo


def _numpy_reference(img, spec):
    """The docstring's recipe, with Pillow and numpy only."""
    img = img.convert("RGB")
    w, h = img.size
    s = spec["resize"]
    nw, nh = (s, int(s * h / w)) if w <= h else (int(s * w / h), s)
    img = img.resize((nw, nh), Image.BILINEAR)
    c = spec["crop"]
    top, left = int(round((nh - c) / 2.0)), int(round((nw - c) / 2.0))
    x = np.asarray(img.crop((left, top, left + c, top + c)), dtype=np.float32) / 255.0
    x = (x - np.array(spec["mean"], np.float32)) / np.array(spec["std"], np.float32)
    return x.transpose(2, 0, 1)


@pytest.mark.parametrize("size", [(640, 480), (480, 640), (333, 250), (100, 100)])
def test_cache_path_equals_eval_transform_equals_numpy(size):
    spec = make_preprocess_spec(112)
    img = _photo(*size)
    ref = eval_transform(spec)(img).numpy()
    cached = torch.from_numpy(cache_eval_image(img, spec)).permute(2, 0, 1)[None]
    via_cache = Normalizer(spec["mean"], spec["std"], "cpu", channels_last=True)(cached)[0].numpy()
    assert ref.shape == (3, 112, 112)
    assert np.abs(ref - via_cache).max() < 1e-6
    assert np.abs(ref - _numpy_reference(img, spec)).max() < 1e-5


def test_spec_shape():
    spec = make_preprocess_spec(128)
    assert spec["crop"] == 128 and spec["resize"] == 146 and spec["interpolation"] == "bilinear"
    assert spec["layout"] == "NCHW" and spec["color"] == "RGB" and len(spec["mean"]) == len(spec["std"]) == 3
