"""The factory (carscope/train/models.py): timm architectures by name beside carscope's and torchvision's, their
heads, their pretrained preprocessing as the run's spec, and the one-line refusal of a name nobody knows."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from carscope.common.errors import CarscopeError
from carscope.train import checkpoint
from carscope.train.models import (
    ARCHS,
    check_arch,
    create_model,
    head_parameters,
    is_timm_arch,
    model_from_checkpoint,
    preprocess_config,
)
from carscope.train.options import default_args, resolve_task_defaults


def test_importing_the_factory_and_the_options_imports_neither_torch_nor_timm():
    code = ("import sys, carscope.train.models, carscope.train.options; "
            "print(sorted(m for m in ('torch', 'timm', 'torchvision') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_timm_arch_has_a_fresh_head_and_head_parameters_are_the_classifiers():
    from torch import nn

    model = create_model("efficientnet_lite0", 7, dropout=0.3)
    classifier = model.get_classifier()
    assert isinstance(classifier, nn.Linear) and classifier.out_features == 7
    assert [id(p) for p in head_parameters(model, "efficientnet_lite0")] == [id(p) for p in classifier.parameters()]
    assert model.drop_rate == 0.3  # --dropout is timm's drop_rate, before its classifier
    with pytest.raises(CarscopeError, match="at least 2 classes"):
        create_model("efficientnet_lite0", 1)


def test_a_fresh_timm_head_starts_at_zero_so_the_first_loss_is_ln_classes():
    """timm sizes its head's init for 1000 classes; for 24 it gave logits of std ~4 on pretrained features and a
    first loss of 8, and fine-tuning the real Lite0 on the demo showroom reached 9% test top-1 instead of 45% (8
    epochs, 96 px). Zero: every class equally likely, no gradient into the backbone until the head has learnt."""
    import math

    import torch

    model = create_model("efficientnet_lite0", 24).eval()
    head = model.get_classifier()
    assert not head.weight.any() and not head.bias.any()
    with torch.no_grad():
        logits = model(torch.rand(2, 3, 64, 64))
    loss = torch.nn.functional.cross_entropy(logits, torch.tensor([0, 5]))
    assert loss.item() == pytest.approx(math.log(24), abs=1e-6)


def test_head_hidden_replaces_a_timm_classifier_with_carscopes_mlp_head():
    import torch

    model = create_model("efficientnet_lite0", 3, head_hidden=[16], dropout=0.1).eval()
    head = model.get_classifier()
    widths = [m.out_features for m in head.modules() if isinstance(m, torch.nn.Linear)]
    assert widths == [16, 3] and model.drop_rate == 0.0  # the MLP head brings its own dropout
    assert {id(p) for p in head_parameters(model, "efficientnet_lite0")} == {id(p) for p in head.parameters()}
    with torch.inference_mode():
        assert model(torch.zeros(2, 3, 64, 64)).shape == (2, 3)


def test_carscope_and_torchvision_names_keep_precedence_over_timms():
    assert not any(is_timm_arch(a) for a in ARCHS) and is_timm_arch("efficientnet_lite0")
    model = create_model("resnet18", 3)
    assert type(model).__module__.startswith("torchvision.") and model.fc[-1].out_features == 3
    assert [id(p) for p in head_parameters(model, "resnet18")] == [id(p) for p in model.fc.parameters()]


@pytest.mark.parametrize("arch", ["nosuchnet", "efficientnet_lite", "hf-hub:timm/efficientnet_lite0.ra_in1k"])
def test_an_unknown_arch_is_one_line_naming_known_ones(arch):
    for call in (lambda: check_arch(arch), lambda: create_model(arch, 3), lambda: preprocess_config(arch)):
        with pytest.raises(CarscopeError) as exc:
            call()
        message = str(exc.value)
        assert "\n" not in message and f"unknown arch '{arch}'" in message
        assert "cpunet" in message and "efficientnet_lite0" in message
    assert exc.value.exit_code == 2


def test_the_cli_refuses_an_unknown_arch_in_one_line_with_exit_2(tmp_path, capsys):
    from carscope.commands.cli import main

    code = main(["train", "model", "--data", str(tmp_path), "--out", str(tmp_path / "run"), "--arch", "nosuchnet"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "unknown arch 'nosuchnet'" in err


@pytest.mark.parametrize("arch", ["efficientnet_lite0", "vit_small_patch16_224"])
def test_preprocess_config_is_timms_resolve_model_data_config(arch):
    import timm
    from timm.data import resolve_model_data_config

    want = resolve_model_data_config(timm.create_model(arch, pretrained=False, num_classes=2))
    got = preprocess_config(arch)
    assert (got["input_size"], got["interpolation"], got["crop_pct"]) == (
        want["input_size"][1], want["interpolation"], want["crop_pct"])
    assert got["mean"] == pytest.approx(list(want["mean"])) and got["std"] == pytest.approx(list(want["std"]))


def _resolved(**overrides):
    args = default_args(task="model", data="d", out="r", **overrides)
    resolve_task_defaults(args)
    return args, checkpoint.make_preprocess_spec(args.img_size, args.crop_pct, preprocess_config(args.arch))


def test_a_timm_arch_brings_its_own_preprocessing_unless_the_user_overrides_it():
    args, spec = _resolved(arch="efficientnet_lite0")
    assert (args.img_size, args.crop_pct) == (224, 0.875)  # the model's own input size and crop fraction
    assert (spec["crop"], spec["resize"], spec["interpolation"]) == (224, 256, "bicubic")
    args, spec = _resolved(arch="efficientnet_lite0", img_size=128)
    assert (spec["crop"], spec["resize"], spec["interpolation"]) == (128, 146, "bicubic")  # floor(128 / 0.875)
    _, spec = _resolved(arch="efficientnet_lite0", img_size=96)
    assert spec["resize"] == 109  # timm floors 109.7; carscope's own archs round (110)
    _, spec = _resolved(arch="efficientnet_lite0", img_size=96, crop_pct=1.0)
    assert spec["resize"] == 96
    _, spec = _resolved(arch="vit_small_patch16_224", img_size=128)
    assert spec["mean"] == spec["std"] == [0.5, 0.5, 0.5] and spec["resize"] == 142  # crop_pct 0.9


def test_the_spec_is_timms_own_eval_transform():
    """carscope's eval transform of a timm arch's spec gives exactly what timm's eval transform gives."""
    from PIL import Image
    from timm.data import create_transform, resolve_model_data_config

    from carscope.train.presets import eval_transform

    config = preprocess_config("efficientnet_lite0")
    spec = checkpoint.make_preprocess_spec(96, config["crop_pct"], config)
    data = {**resolve_model_data_config(create_model("efficientnet_lite0", 2)), "input_size": (3, 96, 96)}
    theirs = create_transform(**data, is_training=False)
    rng = np.random.default_rng(0)
    for w, h in [(320, 240), (200, 333), (97, 140)]:
        img = Image.fromarray(rng.integers(0, 256, (h // 4, w // 4, 3), dtype=np.uint8)).resize((w, h))
        np.testing.assert_array_equal(eval_transform(spec)(img).numpy(), theirs(img).numpy())


def test_carscope_and_torchvision_archs_keep_their_specs_bit_for_bit():
    before = {"resize": 96, "crop": 96, "interpolation": "bilinear", "mean": [0.485, 0.456, 0.406],
              "std": [0.229, 0.224, 0.225], "layout": "NCHW", "color": "RGB", "dtype": "float32", "jpeg_draft": True}
    args, spec = _resolved()
    assert (args.arch, args.img_size, args.crop_pct) == ("cpunet", 96, 1.0) and spec == before
    args, spec = _resolved(arch="resnet18", crop_pct=0.875)
    assert spec == {**before, "resize": 110}  # round(96 / 0.875), as before
    assert checkpoint.make_preprocess_spec(32) == {**before, "resize": 37, "crop": 32}
    view = default_args(task="view", data="d", out="r")
    resolve_task_defaults(view)
    assert (view.img_size, view.crop_pct) == (80, 1.0)


def test_a_vit_is_built_for_the_runs_size_and_rebuilt_from_its_checkpoint():
    import torch

    model = create_model("vit_small_patch16_224", 3, img_size=64, dropout=0.0).eval()
    state = {"arch": "vit_small_patch16_224", "labels": ["a", "b", "c"], "model": model.state_dict(),
             "arch_kwargs": {"dropout": 0.0, "img_size": 64}}
    x = torch.randn(1, 3, 64, 64)
    with torch.inference_mode():
        np.testing.assert_array_equal(model_from_checkpoint(state)(x).numpy(), model(x).numpy())
    assert create_model("efficientnet_lite0", 3, img_size=64) is not None  # convnets take any size: no kwarg
