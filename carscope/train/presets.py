"""The train and eval transforms, side by side (torchvision references/classification style).

    python -c "from carscope.train.presets import eval_transform; from carscope.train.checkpoint import make_preprocess_spec; \
print(eval_transform(make_preprocess_spec(128)))"

The eval transform is the contract with `serve`, which reimplements it in numpy/Pillow (a test holds the two
within 1e-5). On a PIL image it is exactly:

    draft(img, spec)                              # JPEG files only, with spec["jpeg_draft"]: carscope/imaging.py
    img = img.convert("RGB")
    Resize(spec["resize"], interpolation)         # shorter side -> resize; longer = int(resize * long / short);
                                                  # Pillow's spec["interpolation"] (bilinear, bicubic), antialiased
    CenterCrop(spec["crop"])                      # top = int(round((h - crop) / 2)), left likewise
    ToTensor()                                    # HWC uint8 -> CHW float32 / 255
    Normalize(spec["mean"], spec["std"])          # (x - mean) / std, per channel

Training never re-decodes JPEGs: `data.py` decodes each photo once into a uint8 cache (`cache_train_image`:
shorter side -> resize, centre square; `cache_eval_image`: the eval transform up to and including CenterCrop),
the train preset augments those uint8 tensors, and the float conversion and normalisation run on the device
(`Normalizer`), batched. Both paths give the same numbers as `eval_transform` on the same pixels.
"""

from __future__ import annotations

from typing import Any

from carscope.common.errors import CarscopeError

# Pillow's filters, by the names a spec uses: what serve (carscope/serve/preprocess.py) and timm's configs know
INTERPOLATIONS = ("bilinear", "bicubic", "nearest", "lanczos", "box", "hamming")


def interpolation_mode(spec: dict[str, Any]):
    """torchvision's InterpolationMode for spec["interpolation"] (bilinear when a spec has none); on a PIL image
    it is Pillow's filter of the same name, which is what serve uses."""
    from torchvision.transforms import InterpolationMode

    name = str(spec.get("interpolation", "bilinear")).lower()
    if name not in INTERPOLATIONS:
        raise CarscopeError(f"the preprocessing spec asks for '{name}' interpolation; carscope knows "
                            f"{', '.join(INTERPOLATIONS)}")
    return InterpolationMode(name)


def load_rgb(path, spec: dict[str, Any] | None = None):
    """Decode a photo to RGB (the first step of every path, serve's included); JPEGs at the spec's draft scale
    when it has `jpeg_draft` (carscope/imaging.py)."""
    from PIL import Image

    from carscope.common.imaging import draft

    with Image.open(path) as img:
        draft(img, spec)
        return img.convert("RGB")


def eval_transform(spec: dict[str, Any]):
    """PIL image -> normalised float32 CHW tensor, exactly as described in the module docstring."""
    from torchvision import transforms as T

    return T.Compose([
        T.Lambda(lambda img: img.convert("RGB")),
        T.Resize(spec["resize"], interpolation=interpolation_mode(spec), antialias=True),
        T.CenterCrop(spec["crop"]),
        T.ToTensor(),
        T.Normalize(spec["mean"], spec["std"]),
    ])


def cache_eval_image(img, spec: dict[str, Any]):
    """PIL image -> HWC uint8 array: the eval transform before ToTensor (what val/test/inference see)."""
    import numpy as np
    from torchvision import transforms as T

    from carscope.common.imaging import draft

    draft(img, spec)  # JPEG at the spec's draft scale, when it asks for one (before the pixels load)
    img = img.convert("RGB")
    img = T.Resize(spec["resize"], interpolation=interpolation_mode(spec), antialias=True)(img)
    img = T.CenterCrop(spec["crop"])(img)
    return np.array(img, dtype=np.uint8)  # a writable copy (torch.from_numpy warns on read-only arrays)


def cache_train_image(img, spec: dict[str, Any]):
    """PIL image -> HWC uint8 square of spec["resize"] px: shorter side resized with the spec's interpolation,
    centre square (augmentation crops later).

    JPEG draft mode lets libjpeg decode at 1/2, 1/4 or 1/8 scale when the photo is much larger than `size`:
    the cheapest decode there is. Eval pixels are decoded the same way when the spec has `jpeg_draft`."""
    import numpy as np
    from PIL import Image
    from torchvision import transforms as T

    from carscope.common.imaging import draft

    size = int(spec["resize"])
    draft(img, {"resize": size, "jpeg_draft": True})  # the smallest scale still >= size on both sides
    img = img.convert("RGB")
    img = T.Resize(size, interpolation=interpolation_mode(spec), antialias=True)(img)
    img = T.CenterCrop(size)(img)
    assert isinstance(img, Image.Image)
    return np.array(img, dtype=np.uint8)  # a writable copy (torch.from_numpy warns on read-only arrays)


class TrainPreset:
    """uint8 CHW tensor (from the cache) -> augmented uint8 CHW tensor of crop x crop.

    RandomResizedCrop, horizontal flip, colour jitter and TrivialAugment, all on uint8 (cheap in the workers);
    the float conversion and Normalize happen batched on the device (`Normalizer`)."""

    def __init__(self, crop: int, *, min_scale: float = 0.35, hflip: float = 0.5, color_jitter: float = 0.3,
                 auto_augment: str = "trivial", random_erase: float = 0.0):
        from torchvision.transforms import v2

        ops = [v2.RandomResizedCrop(crop, scale=(min_scale, 1.0), antialias=True)]
        if hflip > 0:
            ops.append(v2.RandomHorizontalFlip(hflip))
        if color_jitter > 0:
            ops.append(v2.ColorJitter(color_jitter, color_jitter, color_jitter))
        if auto_augment == "trivial":
            ops.append(v2.TrivialAugmentWide())
        elif auto_augment not in ("none", "", None):
            raise ValueError(f"unknown auto_augment {auto_augment!r}")
        if random_erase > 0:  # RandomErasing wants float; it erases with 0 = black, fine on uint8 too
            ops.append(v2.RandomErasing(random_erase, value=0))
        self.transform = v2.Compose(ops)

    def __call__(self, img_u8_chw):
        return self.transform(img_u8_chw)


class Normalizer:
    """Batched ToTensor + Normalize on the device: uint8 NCHW -> float32 NCHW (channels_last when asked).

    Same operations in the same order as ToTensor() then Normalize() on one image, so the numbers match."""

    def __init__(self, mean, std, device, channels_last: bool = False):
        import torch

        self.mean = torch.tensor(mean, dtype=torch.float32, device=device).view(1, 3, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32, device=device).view(1, 3, 1, 1)
        self.channels_last = channels_last

    def __call__(self, x_u8):
        import torch

        x = x_u8.to(torch.float32).div_(255.0).sub_(self.mean).div_(self.std)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x
