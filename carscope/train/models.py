"""One name-keyed factory for both classifiers: torchvision backbones with a fresh head, plus two small
convnets of our own (cpunet: the CPU default; tinynet: the tests').

    python -c "from carscope.train.models import create_model; print(create_model('resnet18', 10))"

No I/O and no device code here. Weights come from `load_backbone_weights` (a local torchvision state
dict); nothing is downloaded.
"""

from __future__ import annotations

from typing import Any

from carscope.common.errors import CarscopeError

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
ARCHS = tuple(_TORCHVISION) + ("cpunet", "tinynet")
# From scratch on the demo showroom (386 training photos, 24 classes), 2 cores: cpunet at 96 px reaches 92.7% test
# top-1 in 80 epochs; resnet18 at 96 px is at 53% after 30 epochs (5x the FLOPs per photo, and slower to fit).
CPU_DEFAULT_ARCH = "cpunet"


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
                 **kwargs: Any):
    """Build `arch` with a new `num_classes` head. Random init; see `load_backbone_weights`."""
    if num_classes < 2:
        raise CarscopeError(f"need at least 2 classes, got {num_classes}")
    if arch == "tinynet":  # a few conv layers: the tests' model
        return TinyNet.build(num_classes, dropout=dropout, **kwargs)
    if arch == "cpunet":
        return CpuNet.build(num_classes, dropout=dropout, head_hidden=head_hidden, **kwargs)
    if arch not in _TORCHVISION:
        raise CarscopeError(f"unknown arch '{arch}'; choose from {', '.join(ARCHS)}")
    import torchvision

    model = getattr(torchvision.models, _TORCHVISION[arch])(weights=None, **kwargs)
    if arch.startswith("resnet"):
        model.fc = _head(model.fc.in_features, num_classes, head_hidden, dropout)
    else:  # efficientnet / mobilenet: classifier is a Sequential ending in Linear
        last = model.classifier[-1]
        model.classifier = _head(last.in_features, num_classes, head_hidden, dropout) if arch.startswith(
            "efficientnet") else _replace_last(model.classifier, num_classes)
    return model


def _replace_last(classifier, num_classes: int):
    from torch import nn

    classifier[-1] = nn.Linear(classifier[-1].in_features, num_classes)
    return classifier


def head_parameters(model, arch: str):
    """The parameters of the new head (trained alone during --freeze-epochs)."""
    if arch.startswith("resnet") or arch in ("tinynet", "cpunet"):
        return list(model.fc.parameters())
    if arch.startswith("efficientnet"):
        return list(model.classifier.parameters())
    return list(model.classifier[-1].parameters())


def load_backbone_weights(model, path: str, arch: str) -> dict[str, int]:
    """Load a local torchvision state dict into everything but the head. Returns counts; raises on mismatch."""
    import torch

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CarscopeError(f"weights file {path} does not exist") from None
    except Exception as exc:
        raise CarscopeError(f"weights file {path} is not a torch state dict ({type(exc).__name__})") from exc
    if isinstance(state, dict) and "model" in state and isinstance(state["model"], dict):
        state = state["model"]
    own = model.state_dict()
    head_ids = {id(p) for p in head_parameters(model, arch)}
    head_names = {n for n, p in model.named_parameters() if id(p) in head_ids}
    loaded, skipped = {}, []
    for name, tensor in state.items():
        if name in own and name not in head_names and own[name].shape == tensor.shape:
            loaded[name] = tensor
        elif name not in head_names and not name.startswith(("fc.", "classifier.")):
            skipped.append(name)
    backbone = [n for n in own if n not in head_names and not n.endswith("num_batches_tracked")]
    if not loaded or len([n for n in backbone if n in loaded]) < 0.9 * len(backbone):
        raise CarscopeError(
            f"weights in {path} do not match arch '{arch}' ({len(loaded)} of {len(backbone)} backbone tensors fit)")
    model.load_state_dict(loaded, strict=False)
    return {"loaded": len(loaded), "skipped": len(skipped), "backbone": len(backbone)}


def model_from_checkpoint(state: dict[str, Any]):
    """Rebuild the network of a checkpoint (carscope/train/checkpoint.py) with its weights, in eval mode."""
    model = create_model(state["arch"], len(state["labels"]), **state.get("arch_kwargs", {}))
    model.load_state_dict(state["model"])
    return model.eval()
