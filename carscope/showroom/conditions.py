"""Framings and conditions of exterior photos (`ShowroomConfig.conditions`; shots.py decides which photo gets
which): `cut` (the car runs 20-45 % past the left or right edge), `small` (the car 20-35 % of the frame wide),
`clutter` (one or two other catalog cars, smaller, behind and partly hidden), `night` (dark and blue, the lamps
glowing), `rain` (streaks, a grey veil, lower contrast), `blur` (strong) and `jpeg` (quality 8-20).

    python -m carscope.showroom.render --out /tmp/sheet --makes 2 --photos 12 --conditions 1   # contact sheets

Every draw comes from a stream of the photo's own (seeded_rng(seed, "<what>", photo id)), never from the photo's
rendering stream, so the rest of the photo is what it would be without them.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from carscope.showroom.catalog import PAINTS, Catalog, Photo, seeded_rng
from carscope.showroom.draw import H, W
from carscope.showroom.views import draw_layer

HEAD_GLOW, TAIL_GLOW = (255, 236, 190), (255, 40, 30)
NIGHT_GAIN = np.array([0.20, 0.24, 0.36], np.float32)  # dark, with the blue left in
NIGHT_LIFT = np.array([4, 7, 18], np.float32)


def small_width(seed: int, photo: Photo) -> float:
    """`small`: how wide the car is drawn (20-35 % of the frame)."""
    return W * seeded_rng(seed, "framing-small", photo.id).uniform(0.20, 0.35)


def cut_x(seed: int, photo: Photo, tw: int) -> int:
    """`cut`: where a car tw pixels wide goes so that 20-45 % of it is past the left or right edge."""
    r = seeded_rng(seed, "framing-cut", photo.id)
    out = r.uniform(0.20, 0.45) * tw
    return int(-out) if r.random() < 0.5 else int(W - tw + out)


def draw_clutter(catalog: Catalog, photo: Photo, img: Image.Image, horizon: int) -> None:
    """One or two other catalog cars (other models), smaller and further back than the photo's car, which is
    pasted after them and hides part of them."""
    seed = catalog.config.seed
    r = seeded_rng(seed, "clutter", photo.id)
    model = catalog.photo_model_year(photo).model
    others = [my for my in catalog.model_years if my.model.slug != model.slug] or list(catalog.model_years)
    poses = ("side", "front34", "rear34") + (("front", "rear") if catalog.config.views == "all" else ())
    for i in range(r.choice((1, 2))):
        my = r.choice(others)
        paint = PAINTS[r.randrange(len(PAINTS))]
        layer = draw_layer(my, seeded_rng(seed, "clutter-car", photo.id, i), r.choice(poses), paint)
        if r.random() < 0.5:
            layer = layer.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        k = min(W * r.uniform(0.30, 0.50) / layer.width, H * 0.40 / layer.height)
        layer = layer.resize((max(1, int(layer.width * k)), max(1, int(layer.height * k))), Image.Resampling.BOX)
        ground = horizon + r.uniform(6, 28)
        img.paste(layer, (int(r.uniform(-0.1, 0.9) * W - layer.width * 0.3), int(ground - layer.height)), layer)


def place_lights(marks: dict, size0: tuple[int, int], flip: bool, size1: tuple[int, int], angle: float,
                 size2: tuple[int, int], at: tuple[int, int]) -> list[tuple[float, float, float, bool]]:
    """The lamps of a car layer (marks "head" and "tail", in the drawn layer's pixels) where they ended up in the
    photo, as (x, y, radius, is_head): after the mirror, the resize from size0 to size1, the rotation by `angle`
    degrees (counter-clockwise, expanded to size2) and the paste at `at`."""
    kx, ky = size1[0] / size0[0], size1[1] / size0[1]
    a = math.radians(angle)
    cos, sin = math.cos(a), math.sin(a)
    out = []
    for name in ("head", "tail"):
        for x0, y0, x1, y1 in marks.get(name, []):
            x, y = (x0 + x1) / 2, (y0 + y1) / 2
            if flip:
                x = size0[0] - x
            dx, dy = x * kx - size1[0] / 2, y * ky - size1[1] / 2
            px = size2[0] / 2 + dx * cos + dy * sin + at[0]
            py = size2[1] / 2 - dx * sin + dy * cos + at[1]
            out.append((px, py, max(2.0, max(x1 - x0, y1 - y0) * kx / 2), name == "head"))
    return out


def apply_conditions(seed: int, photo: Photo, img: Image.Image, quality: int,
                     lights: list | None) -> tuple[Image.Image, int]:
    """The photo's conditions (night, rain, blur, jpeg; clutter is drawn before the car) in that order."""
    conds = photo.conditions
    if "night" in conds:
        img = _night(img, lights or [])
    if "rain" in conds:
        img = _rain(seeded_rng(seed, "rain", photo.id), img)
    if "blur" in conds:
        img = img.filter(ImageFilter.GaussianBlur(seeded_rng(seed, "blur", photo.id).uniform(2.5, 5.0)))
    if "jpeg" in conds:
        quality = seeded_rng(seed, "jpeg", photo.id).randint(8, 20)
    return img, quality


def _night(img: Image.Image, lights: list) -> Image.Image:
    """Dark and blue-ish; each lamp a bright core in a wide glow (head lamps warm white, tail lamps red)."""
    arr = np.asarray(img, np.float32) * NIGHT_GAIN + NIGHT_LIFT
    if lights:
        q = 4  # the glow is soft: drawn and blurred at a quarter of the size, then scaled up
        glow = Image.new("RGB", (img.width // q, img.height // q), (0, 0, 0))
        core = Image.new("RGB", img.size, (0, 0, 0))
        gd, cd = ImageDraw.Draw(glow), ImageDraw.Draw(core)
        radius = 1.0
        for x, y, r, head in lights:
            c = HEAD_GLOW if head else TAIL_GLOW
            g = r * (3.0 if head else 1.8)
            gd.ellipse(((x - g) / q, (y - g * 0.7) / q, (x + g) / q, (y + g * 0.7) / q),
                       fill=tuple(int(v * (0.75 if head else 0.45)) for v in c))
            cd.ellipse((x - r * 0.8, y - r * 0.45, x + r * 0.8, y + r * 0.45), fill=tuple(int(v * 0.8) for v in c))
            radius = max(radius, g * 0.6 / q)
        glow = glow.filter(ImageFilter.GaussianBlur(radius)).resize(img.size, Image.Resampling.BILINEAR)
        arr += np.asarray(glow, np.float32)
        arr += np.asarray(core.filter(ImageFilter.BoxBlur(1.5)), np.float32)
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "RGB")


def _rain(r, img: Image.Image) -> Image.Image:
    """Slanted streaks over a grey veil: lower contrast, a little soft."""
    veil = r.uniform(0.28, 0.42)
    grey = np.float32(r.uniform(150, 185))
    arr = np.asarray(img, np.float32) * (1 - veil) + grey * veil
    streaks = Image.new("L", img.size, 0)
    d = ImageDraw.Draw(streaks)
    slant = r.uniform(-0.35, 0.35)
    for _ in range(r.randint(220, 380)):
        x, y, n = r.uniform(-40, W + 40), r.uniform(-20, H), r.uniform(12, 38)
        d.line([(x, y), (x + slant * n, y + n)], fill=r.randint(70, 140), width=1)
    a = np.asarray(streaks.filter(ImageFilter.BoxBlur(0.6)), np.float32)[..., None] / 255.0
    arr = arr * (1 - a) + 225.0 * a
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "RGB").filter(ImageFilter.BoxBlur(0.7))
