"""Preprocessing is one definition: serve's numpy/Pillow version equals train's eval transform (within 1e-5),
for every interpolation a spec may name (bilinear for carscope's archs, bicubic for most timm archs), and the
input contract a bundle carries is the checkpoint's spec, so serve preprocesses what train evaluated."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

import carscope.serve.preprocess as serve_preprocess
import carscope.train.presets as presets
from carscope.train.checkpoint import make_preprocess_spec  # noqa: E402


def _random_photos(rng, n: int):
    """Photos of awkward shapes and modes: portrait, landscape, smaller than the crop, grey, RGBA, palette."""
    for i in range(n):
        w, h = int(rng.integers(20, 400)), int(rng.integers(20, 400))
        if i % 7 == 0:
            w, h = int(rng.integers(8, 40)), int(rng.integers(8, 40))  # smaller than the crop: padding path
        pixels = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        # smooth parts too: resampling errors hide in noise and show on gradients
        pixels[: h // 2] = np.linspace(0, 255, w, dtype=np.uint8)[None, :, None]
        img = Image.fromarray(pixels)
        yield img.convert(("RGB", "L", "RGBA", "P", "CMYK")[i % 5])


INTERPOLATIONS = ["bilinear", "bicubic"]


def _spec(img_size: int, interpolation: str, **config):
    return make_preprocess_spec(img_size, config=dict(config, interpolation=interpolation))


@pytest.mark.parametrize("interpolation", INTERPOLATIONS)
@pytest.mark.parametrize("img_size", [32, 128, 224])
def test_serve_preprocess_matches_train_eval_transform(img_size, interpolation):
    spec = _spec(img_size, interpolation)
    served = serve_preprocess.Preprocessor(spec)
    trained = presets.eval_transform(spec)
    worst = 0.0
    for img in _random_photos(np.random.default_rng(img_size), 24):
        a = served(img.convert("RGB"))
        b = trained(img).numpy()
        assert a.shape == b.shape == (3, spec["crop"], spec["crop"]) and a.dtype == np.float32
        worst = max(worst, float(np.abs(a - b).max()))
    assert worst <= 1e-5, worst


@pytest.mark.parametrize("interpolation", INTERPOLATIONS)
def test_the_interpolation_is_honoured_bit_for_bit(interpolation):
    """The filter named in the spec is the one every path uses: train's eval transform, its uint8 eval cache and
    serve give the same pixels (the two filters give different ones), and a timm-style spec (its own mean and
    std, the resize floored) is preprocessed alike."""
    from PIL import Image

    spec = _spec(96, interpolation, mean=[0.5, 0.5, 0.5], std=[0.5, 0.5, 0.5], resize_rounding="floor")
    other = dict(spec, interpolation=next(i for i in INTERPOLATIONS if i != interpolation))
    rng = np.random.default_rng(7)
    for img in _random_photos(rng, 8):
        img = img.convert("RGB")
        cached = presets.cache_eval_image(img, spec)  # uint8 HWC
        trained = presets.eval_transform(spec)(img).numpy()
        via_cache = (cached.astype(np.float32) / np.float32(255) - np.float32(0.5)) / np.float32(0.5)
        np.testing.assert_array_equal(via_cache.transpose(2, 0, 1), trained)
        np.testing.assert_array_equal(serve_preprocess.Preprocessor(spec)(img), trained)
    smooth = Image.fromarray(rng.integers(0, 256, (30, 40, 3), dtype=np.uint8)).resize((400, 300))
    assert not np.array_equal(presets.cache_eval_image(smooth, spec), presets.cache_eval_image(smooth, other))
    train_square = presets.cache_train_image(smooth, spec)  # the train cache's resize follows the spec too
    assert train_square.shape == (spec["resize"],) * 2 + (3,)
    assert not np.array_equal(train_square, presets.cache_train_image(smooth, other))


def test_jpeg_draft_is_decoded_alike_by_train_export_and_serve(tmp_path):
    """With `jpeg_draft` (the default for new runs), train's eval cache, export's photos and serve's upload
    path all decode a JPEG at the same reduced scale and give the same tensor."""
    from carscope.export.photos import batches
    from carscope.serve.imageio import decode_image

    spec = make_preprocess_spec(32)
    assert spec["jpeg_draft"] is True
    rng = np.random.default_rng(5)
    files = []
    for i, (w, h) in enumerate([(640, 480), (300, 500), (90, 2000 // 20), (33, 40)]):
        pixels = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        pixels[: h // 2] = np.linspace(0, 255, w, dtype=np.uint8)[None, :, None]
        files.append(tmp_path / f"{i}.jpg")
        Image.fromarray(pixels).save(files[-1], quality=90)
    exported = np.concatenate(list(batches([str(f) for f in files], spec, batch_size=3)))
    for f, got in zip(files, exported, strict=True):
        cached = presets.cache_eval_image(Image.open(f), spec)  # uint8 HWC, what train evaluates on
        from torchvision import transforms as T

        train_x = T.Normalize(spec["mean"], spec["std"])(T.ToTensor()(cached)).numpy()
        decoded = decode_image(f.read_bytes(), spec=spec)
        served = serve_preprocess.Preprocessor(spec)(decoded.image)
        assert np.abs(served - train_x).max() <= 1e-5 and np.abs(got - train_x).max() <= 1e-5
    assert decode_image(files[0].read_bytes(), spec=spec).scale == 8  # 640x480 for a 36 px resize: 1/8
    full = presets.eval_transform(spec)(Image.open(files[0]).convert("RGB")).numpy()
    assert np.abs(full - exported[0]).max() > 1e-3  # the draft really changed the pixels


def test_export_feeds_models_through_train_eval_transform(tmp_path):
    """The tensors export checks parity and int8 on are train's eval transform of the photo."""
    from carscope.export.photos import batches

    spec = make_preprocess_spec(32)
    rng = np.random.default_rng(1)
    files = []
    for i, img in enumerate(_random_photos(rng, 5)):
        files.append(str(tmp_path / f"{i}.png"))
        img.convert("RGB").save(files[-1])
    got = np.concatenate(list(batches(files, spec, batch_size=2)))
    want = np.stack([presets.eval_transform(spec)(Image.open(f)).numpy() for f in files])
    assert got.shape == (5, 3, 32, 32)
    np.testing.assert_array_equal(got, want)
    served = np.stack([serve_preprocess.Preprocessor(spec)(Image.open(f).convert("RGB")) for f in files])
    assert np.abs(served - got).max() <= 1e-5


def test_bundle_input_contract_is_the_checkpoint_spec(bundle, tiny):
    """What serve reads from bundle.json builds the same preprocessing as the run's checkpoint."""
    from carscope.export.bundle import load
    from carscope.train.checkpoint import load_run

    out, _ = bundle
    _, view_run, model_run = tiny
    b = load(out)
    img = next(_random_photos(np.random.default_rng(3), 1))
    for key, run in (("view", view_run), ("model", model_run)):
        spec = load_run(run)["preprocess"]
        a = serve_preprocess.Preprocessor(b.models[key].input_spec)(img)
        c = presets.eval_transform(spec)(img).numpy()
        assert np.abs(a - c).max() <= 1e-5
