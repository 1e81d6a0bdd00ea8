"""carscope/serve/preprocess.py against train's eval transform: the same tensor, bit for bit."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from carscope.serve.preprocess import Preprocessor, center_crop_box, resized_size

SIZES = [(640, 480), (481, 640), (146, 300), (129, 131), (100, 60), (333, 333), (50, 40), (147, 147), (1001, 97)]


@pytest.fixture(scope="module")
def eval_transform():
    import torch
    torch.set_num_threads(1)
    from carscope.train.presets import eval_transform

    return eval_transform


@pytest.mark.parametrize("resize,crop", [(146, 128), (73, 64), (146, 129), (64, 64)])
@pytest.mark.parametrize("size", SIZES)
def test_matches_train_eval_transform(eval_transform, size, resize, crop):
    rng = np.random.default_rng(size[0] * 7 + size[1])
    img = Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))
    spec = {"resize": resize, "crop": crop, "interpolation": "bilinear", "mean": [0.485, 0.456, 0.406],
            "std": [0.229, 0.224, 0.225], "layout": "NCHW", "color": "RGB", "dtype": "float32"}
    expected = eval_transform(spec)(img).numpy()
    got = Preprocessor(spec)(img)
    assert got.dtype == np.float32 and got.shape == expected.shape == (3, crop, crop)
    assert np.abs(got - expected).max() <= 1e-6  # in practice identical (same float32 operations)


def test_long_side_truncates_like_torchvision():
    # 146 * 1001 / 97 = 1506.6...: torchvision takes int(), not round()
    assert resized_size(1001, 97, 146) == (1506, 146)
    assert resized_size(97, 1001, 146) == (146, 1506)


def test_center_crop_rounds_half_to_even_like_torchvision():
    # (147 - 128) / 2 = 9.5 -> round() gives 10 (banker's rounding of 9.5 is 10); (149-128)/2 = 10.5 -> 10
    assert center_crop_box(147, 147, 128, 128)[:2] == (10, 10)
    assert center_crop_box(149, 149, 128, 128)[:2] == (10, 10)


@pytest.mark.parametrize("bad", [{"crop": 64}, {"resize": 73, "crop": 64, "interpolation": "magic"},
                                 {"resize": 73, "crop": 64, "layout": "NHWC"},
                                 {"resize": 73, "crop": 64, "std": [0, 1, 1]}])
def test_bad_spec_is_a_clear_error(bad):
    from carscope.common.errors import CarscopeError

    with pytest.raises(CarscopeError):
        Preprocessor(bad)
