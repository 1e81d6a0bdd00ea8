"""Close-ups (`ShowroomConfig.closeups`; shots.py picks the photos and their parts): a part of the model-year's
own car, cropped from a large render of it. Exterior: a wheel, a head lamp, the grille or the badge (the car layer
drawn at CLOSEUP_SS times, cropped around the part and laid over the photo's background, blurred as a shallow
depth of field would); interior: the screen, the steering wheel or a seat (the interior drawn at twice the frame
size and cropped).

    python -m carscope.showroom.render --out /tmp/sheet --makes 2 --photos 12 --closeups 1   # contact sheets

Crops and mirrors come from a stream of the photo's own; the car, its paint and the background from the photo's.
"""

from __future__ import annotations

import random

from PIL import Image, ImageFilter

from carscope.showroom.catalog import Catalog, ModelYear, Photo, seeded_rng
from carscope.showroom.draw import H, W
from carscope.showroom.interior import draw_interior
from carscope.showroom.views import draw_layer

CLOSEUP_SS = {"wheel": 4, "lamp": 6, "grille": 4, "badge": 6}  # drawing scale: the crop is about 640 px wide
MARGIN = {  # crop width / part size: how much of the car around the part shows
    "wheel": (1.35, 1.9), "lamp": (2.0, 3.0), "grille": (1.3, 1.8), "badge": (3.5, 5.5),
    "screen": (1.25, 1.6), "steering": (1.1, 1.4), "seat": (1.1, 1.4),
}
INTERIOR_SCALE = 2


def _crop_box(r: random.Random, box, part: str) -> tuple[int, int, int, int]:
    """A 4:3 box around a part's box, a margin around it, its centre moved a little."""
    x0, y0, x1, y1 = box
    cw = max(x1 - x0, (y1 - y0) * 4 / 3) * r.uniform(*MARGIN[part])
    ch = cw * 3 / 4
    cx = (x0 + x1) / 2 + r.uniform(-0.12, 0.12) * cw
    cy = (y0 + y1) / 2 + r.uniform(-0.12, 0.12) * ch
    return int(cx - cw / 2), int(cy - ch / 2), int(cx + cw / 2), int(cy + ch / 2)


def exterior_closeup(catalog: Catalog, my: ModelYear, photo: Photo, rng: random.Random, paint,
                     background: Image.Image) -> Image.Image:
    """The part, cropped from the car drawn large, over the photo's background out of focus."""
    r = seeded_rng(catalog.config.seed, "closeup-crop", photo.id)
    marks: dict = {}
    layer = draw_layer(my, rng, photo.pose, paint, ss=CLOSEUP_SS[photo.part], marks=marks)
    boxes = marks.get(photo.part) or marks["wheel"]  # every pose has wheels; shots.py picks a pose with the part
    piece = layer.crop(_crop_box(r, r.choice(boxes), photo.part)).resize((W, H), Image.Resampling.BILINEAR)
    img = background.filter(ImageFilter.BoxBlur(r.uniform(3, 7)))
    img.paste(piece, (0, 0), piece)
    return img.transpose(Image.Transpose.FLIP_LEFT_RIGHT) if r.random() < 0.5 else img


def interior_closeup(catalog: Catalog, my: ModelYear, photo: Photo, rng: random.Random) -> Image.Image:
    """The part, cropped from the interior drawn at twice the frame size (the crop kept inside the picture)."""
    r = seeded_rng(catalog.config.seed, "closeup-crop", photo.id)
    marks: dict = {}
    img = draw_interior(my, rng, photo.pose, scale=INTERIOR_SCALE, marks=marks)
    k = INTERIOR_SCALE
    x0, y0, x1, y1 = r.choice(marks[photo.part])
    x0, y0, x1, y1 = _crop_box(r, (x0 * k, y0 * k, x1 * k, y1 * k), photo.part)
    cw, ch = min(x1 - x0, img.width), min(y1 - y0, img.height)
    x0 = min(max(0, x0), img.width - cw)
    y0 = min(max(0, y0), img.height - ch)
    return img.crop((x0, y0, x0 + cw, y0 + ch)).resize((W, H), Image.Resampling.BILINEAR)
