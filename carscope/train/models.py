"""One name-keyed factory for both classifiers: torchvision backbones with a fresh head, two small convnets of our
own (cpunet: the CPU default; tinynet: the tests'), and any timm architecture by its timm name.

    python -c "from carscope.train.models import create_model; print(create_model('resnet18', 10))"
    python -c "from carscope.train.models import preprocess_config; print(preprocess_config('efficientnet_lite0'))"

Our own and torchvision's names come first (`ARCHS`: `resnet50` is torchvision's resnet50); any other name is
looked up in timm (`efficientnet_lite0`, `convnext_tiny`, `vit_small_patch16_224`, a tagged
`convnext_tiny.fb_in22k`, ...), built with `timm.create_model(name, pretrained=False, num_classes=n)`. A timm
model's pretrained config (input size, interpolation, mean, std, crop fraction) travels with it as
`preprocess_config(arch)`, which the run turns into its preprocessing spec (carscope/train/checkpoint.py);
carscope's own and torchvision's archs keep bilinear and the ImageNet mean and std. A config's `crop_mode` other
than "center" (squash, border) is not followed: carscope always resizes the shorter side and centre-crops.

No I/O and no device code here; torch and timm are imported only when a model is built or a timm name looked
up. Weights come from `load_backbone_weights`: carscope/train/weights.py reads every `--weights` spelling and
loads all but this model's head; nothing is downloaded.
"""

from __future__ import annotations

import difflib
from typing import Any

from carscope.common.errors import CarscopeError
from carscope.train.checkpoint import IMAGENET_MEAN, IMAGENET_STD

# name -> (torchvision builder name, attribute path of the classifier to replace)
_TORCHVISION = {
    "resnet18": "resnet18",
    "resnet34": "resnet34",
    "resnet50": "resnet50",
    "resnet101": "resnet101",
    "efficientnet_b0": "efficientnet_b0",
    "efficientnet_b1": "efficientnet_b1",
    "mobilenet_v3_small": "mobilenet_v3_small",
    "mobilenet_v3_large": "mobilenet_v3_large",
}
ARCHS = tuple(_TORCHVISION) + ("cpunet", "tinynet")  # carscope's names; any other is a timm name
TIMM_EXAMPLES = ("efficientnet_lite0", "convnext_tiny", "efficientnetv2_rw_s", "vit_small_patch16_224")
# From scratch on the demo showroom (386 training photos, 24 classes), 2 cores: cpunet at 96 px reaches 92.7% test
# top-1 in 80 epochs; resnet18 at 96 px is at 53% after 30 epochs (5x the FLOPs per photo, and slower to fit).
CPU_DEFAULT_ARCH = "cpunet"


def is_timm_arch(arch: str) -> bool:
    """True for a name carscope hands to timm (any name not in ARCHS; `check_arch` says whether timm has it)."""
    return arch not in ARCHS


def check_arch(arch: str) -> None:
    """A one-line CarscopeError (exit 2) unless `arch` is one of ARCHS or a timm model name."""
    if arch in ARCHS:
        return
    import timm

    if not timm.is_model(arch):
        near = difflib.get_close_matches(arch, list(ARCHS) + timm.list_models(), n=3, cutoff=0.75)
        hint = f"did you mean {', '.join(near)}? " if near else ""
        raise CarscopeError(f"unknown arch '{arch}'; {hint}choose from {', '.join(ARCHS)} or a timm model name "
                            f"({', '.join(TIMM_EXAMPLES)}, ...)")


def preprocess_config(arch: str) -> dict[str, Any]:
    """What `arch` was made to see: input_size (px, None: the task's default), interpolation, mean, std, crop_pct
    (None: the --crop-pct default) and resize_rounding (how checkpoint.make_preprocess_spec turns crop / crop_pct
    into the resize). For a timm arch, its pretrained config as `timm.data.resolve_model_data_config(model)`
    resolves it, without building the model; for carscope's and torchvision's archs, what every run before timm
    used (bilinear, ImageNet mean and std, the resize rounded), so their specs are unchanged."""
    if not is_timm_arch(arch):
        return {"input_size": None, "interpolation": "bilinear", "mean": list(IMAGENET_MEAN),
                "std": list(IMAGENET_STD), "crop_pct": 1.0, "resize_rounding": "round"}
    check_arch(arch)
    from timm.data import resolve_data_config
    from timm.models import get_pretrained_cfg

    cfg = get_pretrained_cfg(arch)
    data = resolve_data_config(pretrained_cfg=cfg.to_dict() if cfg is not None else {"input_size": (3, 224, 224)})
    _, height, width = data["input_size"]
    return {"input_size": int(height) if height == width else int(min(height, width)),
            "interpolation": str(data["interpolation"]), "mean": [float(v) for v in data["mean"]],
            "std": [float(v) for v in data["std"]], "crop_pct": float(data["crop_pct"]),
            "resize_rounding": "floor"}  # timm's eval transform: math.floor(img_size / crop_pct)


def _head(in_features: int, num_classes: int, head_hidden: list[int] | None, dropout: float):
    from torch import nn

    layers: list[nn.Module] = []
    for width in head_hidden or []:  # the seed's optional MLP head (1024/512)
        layers += [nn.Dropout(dropout), nn.Linear(in_features, width), nn.ReLU(inplace=True)]
        in_features = width
    layers += [nn.Dropout(dropout), nn.Linear(in_features, num_classes)]
    return nn.Sequential(*layers)


class TinyNet:  # namespace so that `torch` is only imported when a model is built
    @staticmethod
    def build(num_classes: int, width: int = 16, dropout: float = 0.1):
        from torch import nn

        def block(cin, cout):
            return nn.Sequential(nn.Conv2d(cin, cout, 3, 2, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))

        model = nn.Sequential(
            block(3, width), block(width, width * 2), block(width * 2, width * 4), block(width * 4, width * 8),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        )
        model.add_module("fc", _head(width * 8, num_classes, None, dropout))
        return model


class CpuNet:
    """A VGG-style BatchNorm convnet (~1.2M parameters, ~0.1 GFLOPs at 80 px): from scratch on a few hundred
    photos it learns in far fewer CPU-seconds than resnet18 (5x fewer FLOPs per image, and quicker to fit)."""

    @staticmethod
    def build(num_classes: int, widths: tuple[int, ...] = (32, 64, 128, 192, 256), dropout: float = 0.2,
              head_hidden: list[int] | None = None):
        from torch import nn

        def conv(cin, cout, k=3, stride=1):
            return [nn.Conv2d(cin, cout, k, stride, k // 2, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]

        w = list(widths)
        layers = conv(3, w[0], 5, 2)  # /2
        for cin, cout in zip(w[:-2], w[1:-1], strict=True):
            layers += conv(cin, cout) + [nn.MaxPool2d(2)]  # /4, /8, /16
        layers += conv(w[-2], w[-1]) + [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
        model = nn.Sequential(*layers)
        model.add_module("fc", _head(w[-1], num_classes, head_hidden, dropout))
        return model


def create_model(arch: str, num_classes: int, *, head_hidden: list[int] | None = None, dropout: float = 0.2,
                 img_size: int | None = None, **kwargs: Any):
    """Build `arch` with a new `num_classes` head. Random init; see `load_backbone_weights`. `img_size` matters
    only to a timm model built for one input size (a ViT's position grid); every other arch takes any size."""
    if num_classes < 2:
        raise CarscopeError(f"need at least 2 classes, got {num_classes}")
    if arch == "tinynet":  # a few conv layers: the tests' model
        return TinyNet.build(num_classes, dropout=dropout, **kwargs)
    if arch == "cpunet":
        return CpuNet.build(num_classes, dropout=dropout, head_hidden=head_hidden, **kwargs)
    if is_timm_arch(arch):
        return _create_timm(arch, num_classes, head_hidden, dropout, img_size, **kwargs)
    import torchvision

    model = getattr(torchvision.models, _TORCHVISION[arch])(weights=None, **kwargs)
    if arch.startswith("resnet"):
        model.fc = _head(model.fc.in_features, num_classes, head_hidden, dropout)
    else:  # efficientnet / mobilenet: classifier is a Sequential ending in Linear
        last = model.classifier[-1]
        model.classifier = _head(last.in_features, num_classes, head_hidden, dropout) if arch.startswith(
            "efficientnet") else _replace_last(model.classifier, num_classes)
    return model


def _create_timm(arch: str, num_classes: int, head_hidden: list[int] | None, dropout: float, img_size: int | None,
                 **kwargs: Any):
    """timm's model with its own fresh `num_classes` classifier (and its own dropout before it); with
    `head_hidden`, that classifier becomes carscope's MLP head, which brings its own dropout."""
    check_arch(arch)
    import timm
    from timm.models import get_pretrained_cfg

    cfg = get_pretrained_cfg(arch)
    if img_size and cfg is not None and cfg.fixed_input_size:  # ViT-like: the grid is built for one size
        kwargs.setdefault("img_size", img_size)
    model = timm.create_model(arch, pretrained=False, num_classes=num_classes,
                              drop_rate=0.0 if head_hidden else dropout, **kwargs)
    _zero_head(model.get_classifier())
    if head_hidden:
        from torch import nn

        old = model.get_classifier()
        if not isinstance(old, nn.Linear):
            raise CarscopeError(f"--head-hidden needs a classifier of one Linear layer; {arch}'s is "
                                f"{type(old).__name__}")
        where = next(name for name, module in model.named_modules() if module is old)
        model.set_submodule(where, _head(old.in_features, num_classes, head_hidden, dropout))
    return model


def _zero_head(classifier) -> None:
    """A fresh timm classifier starts at zero: every class equally likely, and no gradient into the backbone until
    the head has learnt something. timm initialises it for 1000 classes by its fan-out (EfficientNet's "goog"
    init: U(+-1/sqrt(classes))), which for a few dozen classes gives logits of std ~4 on pretrained features: a
    first loss of 7-8 for 24 classes instead of ln 24 = 3.2, and wrong answers pushed hard into the pretrained
    backbone for the whole head-only epoch."""
    from torch import nn

    for module in classifier.modules():
        if isinstance(module, nn.Linear):
            nn.init.zeros_(module.weight)
            if module.bias is not None:
                nn.init.zeros_(module.bias)


def _replace_last(classifier, num_classes: int):
    from torch import nn

    classifier[-1] = nn.Linear(classifier[-1].in_features, num_classes)
    return classifier


def head_parameters(model, arch: str):
    """The parameters of the new head (trained alone during --freeze-epochs)."""
    if is_timm_arch(arch):  # timm names its classifier, wherever the model keeps it
        return list(model.get_classifier().parameters())
    if arch.startswith("resnet") or arch in ("tinynet", "cpunet"):
        return list(model.fc.parameters())
    if arch.startswith("efficientnet"):
        return list(model.classifier.parameters())
    return list(model.classifier[-1].parameters())


def load_backbone_weights(model, path: str, arch: str) -> dict:
    """Load pretrained weights into everything but the head: a file, a carscope run, an installed weights package or
    the local Hugging Face cache, in torchvision's, timm's or a known foreign layout (carscope/train/weights.py).
    Returns the report (counts, what was left out, the `lines` to print); CarscopeError when they do not match."""
    from carscope.train.weights import load_weights

    return load_weights(model, path, head_parameters(model, arch), arch=arch)


def model_from_checkpoint(state: dict[str, Any]):
    """Rebuild the network of a checkpoint (carscope/train/checkpoint.py) with its weights, in eval mode."""
    model = create_model(state["arch"], len(state["labels"]), **state.get("arch_kwargs", {}))
    model.load_state_dict(state["model"])
    return model.eval()
