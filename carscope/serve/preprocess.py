"""The eval preprocessing of carscope/train/checkpoint.py's spec, in numpy + Pillow, bit-for-bit what train does (no torch).

    python -c "from carscope.serve.preprocess import Preprocessor; from PIL import Image; \\
               p = Preprocessor({'resize': 146, 'crop': 128, 'mean': [.485, .456, .406], 'std': [.229, .224, .225]}); \\
               print(p(Image.new('RGB', (640, 480))).shape)"

The decode step (a JPEG at the spec's draft scale, carscope/common/imaging.py) is carscope/serve/imageio.py's; then
train evaluates with torchvision's `Resize(resize)` (shorter side, with the Pillow filter the spec's
`interpolation` names: bilinear, or bicubic for most timm archs; Pillow antialiases both),
`CenterCrop(crop)`, `ToTensor()` and `Normalize(mean, std)` on a PIL image. This module reproduces each step
with the same integer arithmetic, so serving sees exactly the tensor the model was evaluated on
(tests/serve/test_preprocess.py holds the two side by side).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from PIL import Image

from carscope.common.errors import CarscopeError
from carscope.common.imaging import draft_size

_INTERPOLATION = {
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "nearest": Image.Resampling.NEAREST,
    "lanczos": Image.Resampling.LANCZOS,
    "box": Image.Resampling.BOX,
    "hamming": Image.Resampling.HAMMING,
}


def resized_size(width: int, height: int, size: int) -> tuple[int, int]:
    """(w, h) after resizing the shorter side to `size`: torchvision's `_compute_resized_output_size`,
    whose long side is int(size * long / short), truncated, not rounded."""
    short, long = (width, height) if width <= height else (height, width)
    new_short, new_long = size, int(size * long / short)
    return (new_short, new_long) if width <= height else (new_long, new_short)


def center_crop_box(width: int, height: int, crop_w: int, crop_h: int) -> tuple[int, int, int, int]:
    """Pillow crop box (left, top, right, bottom) of torchvision's CenterCrop. Where the image is smaller than
    the crop, torchvision pads with zeros and crops the centre; Pillow's crop outside the image gives the same
    zeros, so a negative offset here is that padding."""
    if crop_w > width:
        left = -((crop_w - width) // 2)
    else:
        left = int(round((width - crop_w) / 2.0))  # Python's round half to even, exactly as torchvision
    if crop_h > height:
        top = -((crop_h - height) // 2)
    else:
        top = int(round((height - crop_h) / 2.0))
    return left, top, left + crop_w, top + crop_h


class Preprocessor:
    """Callable: RGB PIL image -> float32 array (3, crop_h, crop_w), normalised. Stack them for a batch (NCHW)."""

    def __init__(self, spec: dict[str, Any]):
        try:
            self.resize = int(spec["resize"])
            crop = spec["crop"]
            self.crop_h, self.crop_w = (int(crop), int(crop)) if np.isscalar(crop) else (int(crop[0]), int(crop[1]))
            mean = np.asarray(spec.get("mean", [0.485, 0.456, 0.406]), dtype=np.float32)
            std = np.asarray(spec.get("std", [0.229, 0.224, 0.225]), dtype=np.float32)
        except (KeyError, TypeError, ValueError) as exc:
            raise CarscopeError(f"bundle input spec is incomplete or malformed ({exc!r})") from None
        interpolation = str(spec.get("interpolation", "bilinear")).lower()
        if interpolation not in _INTERPOLATION:
            raise CarscopeError(f"bundle input spec asks for '{interpolation}' interpolation, which serve does not know")
        if spec.get("layout", "NCHW") != "NCHW" or spec.get("color", "RGB") != "RGB":
            raise CarscopeError(f"bundle input spec wants {spec.get('layout')}/{spec.get('color')}; serve feeds NCHW RGB")
        if mean.shape != (3,) or std.shape != (3,) or np.any(std <= 0) or self.resize < 1 or self.crop_h < 1:
            raise CarscopeError("bundle input spec has a bad resize, crop, mean or std")
        self.spec = dict(spec)
        self.draft = draft_size(spec)  # JPEGs decoded at this draft size (carscope/common/imaging.py); None: full size
        self.resample = _INTERPOLATION[interpolation]
        # uint8 in, so normalisation is a 256-entry table per channel. Built with the float32 operations of
        # ToTensor (v / 255) and Normalize ((x - mean) / std), so the values are identical, and a gather is
        # several times cheaper than the arithmetic on every pixel.
        levels = np.arange(256, dtype=np.float32) / np.float32(255)
        self._lut = (levels[None, :] - mean[:, None]) / std[:, None]  # (3, 256) float32

    @property
    def key(self) -> tuple:
        """Two models with equal keys take the same tensor: preprocess once."""
        return (self.resize, self.crop_h, self.crop_w, int(self.resample), self._lut.tobytes(), self.draft)

    def __call__(self, image: Image.Image) -> np.ndarray:
        if image.mode != "RGB":
            image = image.convert("RGB")
        w, h = image.size
        new_w, new_h = resized_size(w, h, self.resize)
        if (new_w, new_h) != (w, h):  # torchvision skips the resize when the size already matches
            image = image.resize((new_w, new_h), self.resample)
        image = image.crop(center_crop_box(new_w, new_h, self.crop_w, self.crop_h))
        pixels = np.asarray(image, dtype=np.uint8)  # (H, W, 3)
        out = np.empty((3, self.crop_h, self.crop_w), dtype=np.float32)
        for c in range(3):  # uint8 indices cannot leave the table: "wrap" skips the bounds check and the
            np.take(self._lut[c], pixels[:, :, c], out=out[c], mode="wrap")  # buffered copy of "raise" (-35%)
        return out
