"""The interiors: dashboard, seats and console in the make's interior design (screen layout, steering-wheel
spokes, vents, seat quilting) and a random trim colour.

    python -m carscope.showroom.render --out /tmp/showroom-photos --makes 2 --photos 6   # writes contact sheets
"""

from __future__ import annotations

import math
import random

from PIL import Image, ImageDraw

from carscope.showroom.catalog import ModelYear
from carscope.showroom.draw import CHROME, DARK, H, ScaledDraw, W, background, mark, poly_shape, shade

INTERIOR_TRIMS = [(28, 28, 30), (60, 58, 56), (150, 118, 84), (110, 34, 30), (200, 196, 186), (40, 44, 60)]


def draw_interior(my: ModelYear, rng: random.Random, pose: str, scale: int = 1, marks: dict | None = None) -> Image.Image:
    """An interior photo in a pose (dash, seats, console), `scale` times the frame size (close-ups crop it).
    `marks`, if given, collects where the screen, the steering wheel and the seats are, in frame coordinates."""
    design = my.make.design
    trim = INTERIOR_TRIMS[rng.randrange(len(INTERIOR_TRIMS))]
    acc = tuple(design["badge_color"])
    img, _ = background(rng, rng.choice(("sky", "clutter", "road")))
    if scale != 1:
        img = img.resize((W * scale, H * scale), Image.Resampling.BILINEAR)
    d = ImageDraw.Draw(img) if scale == 1 else ScaledDraw(ImageDraw.Draw(img), scale)
    marks = {} if marks is None else marks
    if pose == "dash":
        dash_y = int(H * rng.uniform(0.40, 0.50))
        d.polygon([(0, dash_y + 30), (W * .3, dash_y), (W * .7, dash_y - 6), (W, dash_y + 24), (W, H), (0, H)],
                  fill=trim)
        d.polygon([(0, 0), (W * .12, 0), (W * .02, dash_y + 30), (0, dash_y + 30)], fill=shade(trim, .6))
        d.polygon([(W, 0), (W * .88, 0), (W * .98, dash_y + 24), (W, dash_y + 24)], fill=shade(trim, .6))
        d.rectangle((0, H * .9, W, H), fill=shade(trim, .7))
        # vents
        for vx in (W * .42, W * .78):
            vy = dash_y + 40
            if design["vents"] == "round":
                d.ellipse((vx - 22, vy - 22, vx + 22, vy + 22), fill=DARK, outline=CHROME, width=3)
                d.line([(vx - 18, vy), (vx + 18, vy)], fill=(90, 90, 96), width=3)
            elif design["vents"] == "slot":
                d.rectangle((vx - 50, vy - 6, vx + 50, vy + 6), fill=DARK, outline=CHROME, width=2)
            else:
                d.rectangle((vx - 24, vy - 20, vx + 24, vy + 20), fill=DARK, outline=CHROME, width=2)
                for k in range(-12, 13, 8):
                    d.line([(vx - 20, vy + k), (vx + 20, vy + k)], fill=(90, 90, 96), width=2)
        mark(marks, "screen", _screen(d, design["screen"], W * .6, dash_y + 110, rng))
        # instrument cluster and steering wheel (left-hand drive; mirroring makes right-hand drive)
        d.rounded_rectangle((W * .12, dash_y + 30, W * .40, dash_y + 100), radius=14, fill=DARK)
        for k in (0.19, 0.33):
            d.ellipse((W * k - 26, dash_y + 40, W * k + 26, dash_y + 92), outline=(210, 90, 40), width=3)
        _steering_wheel(d, W * .26, dash_y + 190, 150, design, acc, trim)
        mark(marks, "steering", (W * .26 - 150, dash_y + 40, W * .26 + 150, dash_y + 340))
    elif pose == "seats":
        d.rectangle((0, 0, W, H * .18), fill=(196, 192, 184))  # roof lining
        d.polygon([(0, H * .18), (W * .3, H * .16), (W * .3, H * .5), (0, H * .55)], fill=shade(trim, .8))
        d.rectangle((0, H * .78, W, H), fill=shade(trim, .55))  # floor
        for sx in (W * .28, W * .66):
            _seat(d, sx, H * .30, 170, 260, trim, design["quilt"], acc)
            mark(marks, "seat", (sx - 85, H * .30 - 58, sx + 85, H * .30 + 260))
        d.rectangle((W * .46, H * .62, W * .50, H * .86), fill=DARK)  # console between seats
    else:  # console close-up
        d.rectangle((0, 0, W, H), fill=shade(trim, .9))
        d.polygon([(W * .25, H), (W * .35, H * .25), (W * .65, H * .25), (W * .75, H)], fill=shade(trim, .5))
        mark(marks, "screen", _screen(d, design["screen"], W * .5, H * .12, rng, scale=0.8))
        d.ellipse((W * .42, H * .52, W * .58, H * .68), fill=DARK, outline=CHROME, width=4)  # selector
        bs = 18
        poly_shape(d, design["badge"], (W * .5 - bs, H * .6 - bs, W * .5 + bs, H * .6 + bs), fill=acc,
                    outline=DARK)
        for cx in (W * .43, W * .57):
            d.ellipse((cx - 30, H * .76, cx + 30, H * .9), fill=(14, 14, 16), outline=(80, 80, 84), width=3)
        for y in range(int(H * .3), H, 22):  # stitching
            d.line([(W * .33, y), (W * .335, y + 10)], fill=acc, width=2)
    return img


def _screen(d, style, cx, cy, rng, scale=1.0):
    def panel(x0, y0, x1, y1):
        d.rounded_rectangle((x0, y0, x1, y1), radius=6, fill=(12, 14, 20), outline=(70, 70, 76), width=3)
        w, h = x1 - x0, y1 - y0
        d.rectangle((x0 + w * .06, y0 + h * .1, x0 + w * .6, y1 - h * .1), fill=(40, 90, 140))  # "map"
        for k in range(3):
            d.line([(x0 + w * .06, y0 + h * (.3 + .2 * k)), (x0 + w * .6, y0 + h * (.2 + .25 * k))],
                   fill=(230, 200, 60), width=2)
        for k in range(3):
            d.rectangle((x0 + w * .66, y0 + h * (.12 + .28 * k), x1 - w * .06, y0 + h * (.32 + .28 * k)),
                        fill=(60, 64, 80))
    sw, sh = {"landscape": (190, 100), "portrait": (110, 160), "twin": (150, 80), "floating": (170, 100)}[style]
    sw, sh = sw * scale, sh * scale
    if style == "twin":
        panel(cx - sw - 4, cy - sh / 2, cx - 4, cy + sh / 2)
        panel(cx + 4, cy - sh / 2, cx + sw + 4, cy + sh / 2)
        return cx - sw - 4, cy - sh / 2, cx + sw + 4, cy + sh / 2
    if style == "floating":
        d.rectangle((cx - 8, cy, cx + 8, cy + sh * .9), fill=(40, 40, 44))
        panel(cx - sw / 2, cy - sh * .9, cx + sw / 2, cy + sh * .1)
        return cx - sw / 2, cy - sh * .9, cx + sw / 2, cy + sh * .1
    panel(cx - sw / 2, cy - sh / 2, cx + sw / 2, cy + sh / 2)
    return cx - sw / 2, cy - sh / 2, cx + sw / 2, cy + sh / 2


def _steering_wheel(d, cx, cy, r, design, acc, trim):
    d.ellipse((cx - r, cy - r, cx + r, cy + r), outline=DARK, width=26)
    n = design["wheel_spokes"]
    angles = {2: (180, 0), 3: (180, 0, 90), 4: (200, 340, 120, 60)}[n]
    for a in angles:
        ra = math.radians(a)
        d.line([(cx, cy), (cx + r * math.cos(ra), cy + r * math.sin(ra))], fill=(40, 40, 44), width=22)
    d.ellipse((cx - r * .3, cy - r * .3, cx + r * .3, cy + r * .3), fill=(40, 40, 44))
    bs = r * .12
    poly_shape(d, design["badge"], (cx - bs, cy - bs, cx + bs, cy + bs), fill=acc, outline=DARK)


def _seat(d, x, y, w, h, trim, quilt, acc):
    d.rounded_rectangle((x - w * .28, y - h * .22, x + w * .28, y), radius=18, fill=shade(trim, .9),
                        outline=DARK, width=2)  # headrest
    d.rounded_rectangle((x - w / 2, y + 8, x + w / 2, y + h), radius=34, fill=trim, outline=DARK, width=2)
    ix0, iy0, ix1, iy1 = x - w * .34, y + 30, x + w * .34, y + h - 20
    c = shade(trim, .7)
    if quilt == "hstripes":
        for yy in range(int(iy0), int(iy1), 18):
            d.line([(ix0, yy), (ix1, yy)], fill=c, width=3)
    elif quilt == "vstripes":
        for xx in range(int(ix0), int(ix1), 18):
            d.line([(xx, iy0), (xx, iy1)], fill=c, width=3)
    elif quilt == "diamond":
        for k in range(-6, 8):
            xx = ix0 + k * 24
            d.line([(xx, iy0), (xx + (iy1 - iy0) * .5, iy1)], fill=c, width=2)
            d.line([(xx + (iy1 - iy0) * .5, iy0), (xx, iy1)], fill=c, width=2)
    d.line([(x - w * .4, y + h * .5), (x + w * .4, y + h * .5)], fill=acc, width=3)  # contrast piping
