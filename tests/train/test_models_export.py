"""A timm architecture goes through export unchanged: its ONNX graph (with the OOD features, the input of its last
Linear) passes the fp32 parity gates against PyTorch, and serve's preprocessing of its bicubic spec feeds the graph
what train's eval transform feeds the network."""

from __future__ import annotations

import numpy as np
import pytest

from carscope.export import onnx_export, parity
from carscope.train import checkpoint
from carscope.train.models import create_model, preprocess_config

IMG, CLASSES = 64, 5


@pytest.fixture(scope="module")
def lite0():
    import torch

    torch.manual_seed(0)
    model = create_model("efficientnet_lite0", CLASSES, dropout=0.0)
    model.train()
    with torch.no_grad():  # a few batches in train mode: BatchNorm statistics that are not the identity
        for _ in range(3):
            model(torch.randn(8, 3, IMG, IMG))
    return model.eval()


@pytest.mark.slow  # ~13 s on 2 cores: timm's import and the dynamo export
def test_a_timm_model_exports_with_features_and_passes_the_parity_gates(lite0, tmp_path):
    import torch
    from PIL import Image

    from carscope.serve.preprocess import Preprocessor
    from carscope.train.presets import eval_transform

    path = tmp_path / "lite0.onnx"
    info = onnx_export.export_onnx(lite0, IMG, path, features=True)
    assert info["dynamic_batch"] and info["outputs"] == [onnx_export.OUTPUT_NAME, onnx_export.FEATURES_NAME]

    config = preprocess_config("efficientnet_lite0")
    spec = checkpoint.make_preprocess_spec(IMG, config["crop_pct"], config)
    assert (spec["interpolation"], spec["resize"], spec["crop"]) == ("bicubic", 73, IMG)  # floor(64 / 0.875)
    rng = np.random.default_rng(0)
    photos = [Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).resize((w * 8, h * 8))
              for w, h in [(40, 30), (30, 40), (25, 25), (50, 20)]]
    trained = np.stack([eval_transform(spec)(p).numpy() for p in photos])
    served = np.stack([Preprocessor(spec)(p) for p in photos])
    assert np.abs(served - trained).max() <= 1e-5

    with torch.inference_mode():
        eager_logits, eager_features = onnx_export.with_features(lite0)(torch.from_numpy(trained))
    assert eager_features.shape == (len(photos), lite0.num_features)  # the classifier's input: pooled features
    session = onnx_export.cpu_session(path, threads=1)
    logits, features = onnx_export.run_all(session, [served[:3], served[3:]])  # a batch of 3, then of 1
    result = parity.compare(eager_logits.numpy(), logits)
    result["features"] = parity.compare_features(eager_features.numpy(), features)
    assert parity.fp32_passes(result), parity.summary(result)


@pytest.mark.slow
def test_a_timm_arch_trains_and_its_checkpoint_exports(tiny_data, tmp_path):
    """`train model --arch efficientnet_lite0`: the run's spec is the arch's own (bicubic, crop_pct 0.875, the
    resize floored) at the asked size, the checkpoint rebuilds the network, and that network exports."""
    import torch

    from carscope.train import train
    from carscope.train.models import model_from_checkpoint
    from tests.train.conftest import TINY

    out = tmp_path / "run"
    summary = train({"task": "model", "data": str(tiny_data), "out": str(out), "epochs": 2,
                     **{**TINY, "arch": "efficientnet_lite0", "img_size": 48}})
    assert summary["arch"] == "efficientnet_lite0" and summary["img_size"] == 48
    state = checkpoint.load_run(out, task="model")
    assert state["preprocess"] == checkpoint.make_preprocess_spec(48, 0.875, preprocess_config("efficientnet_lite0"))
    assert (state["preprocess"]["resize"], state["preprocess"]["interpolation"]) == (54, "bicubic")
    assert state["args"]["crop_pct"] == 0.875 and state["arch_kwargs"]["img_size"] == 48
    model = model_from_checkpoint(state)
    x = torch.randn(2, 3, 48, 48)
    info = onnx_export.export_onnx(model, 48, tmp_path / "m.onnx", features=True)
    logits, _ = onnx_export.run_all(onnx_export.cpu_session(tmp_path / "m.onnx", threads=1), [x.numpy()])
    with torch.inference_mode():
        assert parity.fp32_passes(parity.compare(model(x).numpy(), logits)) and info["dynamic_batch"]
