"""Procedural, deterministic car photos (Pillow + numpy): what the showroom serves under /photos/.

    python -m showroom.render --out /tmp/showroom-photos --makes 2 --photos 6   # writes a contact sheet
    (the galleries' non-car images, `--others`, are drawn in carscope/showroom/render_other.py)

What identifies what (so a small CNN can learn it, and colour alone never does):
  make  = design language: grille shape, lamp shape, badge shape and colour, side stripe, wheel-arch style,
          window trim; interiors: screen layout, steering-wheel spokes, vents, seat quilting.
  model = body silhouette and proportions (sedan, SUV, pickup, coupe, hatchback, van).
  year  = a facelift: wheel design and finish, contrasting roof or not, lamp graphics, grille pattern, lower trim.
Nuisances: paint from a shared palette, background (sky, road, showroom floor, clutter), scale, position,
slight rotation, mirror, viewpoint (side, front and rear three-quarter), lighting, blur, JPEG quality.

The 320-wide photo is the 640 one downscaled. `PhotoStore` caches the encoded bytes (memory LRU, optional
disk folder); `render_photo_bytes` is the uncached entry point.
"""

from __future__ import annotations

import hashlib
import io
import math
import os
import random
import threading
from collections import OrderedDict
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from carscope.showroom.catalog import PAINTS, Catalog, ModelYear, Photo, _rng

RENDER_VERSION = 4  # bump when the drawing changes: it keys the disk cache
W, H = 640, 480
SS = 2  # the car layer is drawn at 2x and reduced: cheap anti-aliasing

INTERIOR_TRIMS = [(28, 28, 30), (60, 58, 56), (150, 118, 84), (110, 34, 30), (200, 196, 186), (40, 44, 60)]
GLASS = (40, 52, 66)
TYRE = (24, 24, 26)
CHROME = (205, 208, 214)
DARK = (18, 18, 20)

# Side profiles, (u, v) with u in [0, 1] from rear to front and v in [0, 1] from ground to roof. Body, then
# glass ("greenhouse"), then where the pillars stand (u) and the belt line height (v).
PROFILES = {
    "sedan": dict(body=[(0, .20), (0, .52), (.03, .61), (.22, .63), (.34, .97), (.60, 1), (.73, .66), (.97, .58),
                        (1, .46), (1, .20)],
                  glass=[(.245, .645), (.35, .935), (.595, .955), (.715, .665)], pillars=[.47], belt=.64,
                  doors=[.30, .50, .70]),
    "coupe": dict(body=[(0, .22), (0, .53), (.04, .62), (.14, .65), (.38, 1), (.56, 1), (.70, .68), (.97, .58),
                        (1, .45), (1, .22)],
                  glass=[(.17, .665), (.385, .955), (.555, .955), (.685, .69)], pillars=[], belt=.66,
                  doors=[.36, .68]),
    "hatchback": dict(body=[(0, .19), (0, .62), (.04, .90), (.12, 1), (.58, 1), (.74, .64), (.97, .56),
                            (1, .44), (1, .19)],
                      glass=[(.045, .665), (.075, .88), (.14, .955), (.575, .955), (.72, .66)], pillars=[.36],
                      belt=.64, doors=[.16, .38, .64]),
    "suv": dict(body=[(0, .24), (0, .74), (.03, .98), (.08, 1), (.64, 1), (.76, .70), (.97, .64), (1, .52),
                      (1, .24)],
                glass=[(.035, .76), (.05, .94), (.10, .955), (.63, .955), (.745, .72)], pillars=[.22, .44],
                belt=.72, doors=[.24, .46, .70]),
    "van": dict(body=[(0, .16), (0, .90), (.04, 1), (.72, 1), (.86, .62), (.98, .52), (1, .42), (1, .16)],
                glass=[(.03, .64), (.04, .94), (.07, .955), (.71, .955), (.845, .64)], pillars=[.26, .52],
                belt=.62, doors=[.28, .55, .80]),
    "pickup": dict(body=[(0, .24), (0, .63), (.40, .63), (.42, .97), (.45, 1), (.64, 1), (.74, .66), (.97, .60),
                         (1, .50), (1, .24)],
                   glass=[(.445, .665), (.455, .94), (.475, .955), (.635, .955), (.72, .68)], pillars=[.55],
                   belt=.66, doors=[.42, .56, .72]),
}
CLEARANCE = {"sedan": .20, "coupe": .22, "hatchback": .19, "suv": .24, "van": .16, "pickup": .24}


def _shade(c, f):
    return tuple(max(0, min(255, int(v * f))) for v in c)


def _mix(a, b, t):
    return tuple(int(x + (y - x) * t) for x, y in zip(a, b, strict=False))


# ---------------------------------------------------------------- backgrounds

def _vgrad(h: int, w: int, top, bottom) -> np.ndarray:
    t = np.linspace(0.0, 1.0, h, dtype=np.float32)[:, None, None]
    col = np.asarray(top, np.float32) * (1 - t) + np.asarray(bottom, np.float32) * t
    return np.broadcast_to(col, (h, w, 3))


def _background(rng: random.Random, kind: str) -> tuple[Image.Image, int]:
    """An RGB background and the ground line (y) the car stands on."""
    horizon = int(H * rng.uniform(0.42, 0.58))
    arr = np.empty((H, W, 3), np.float32)
    if kind == "showroom":
        wall = _mix((226, 224, 218), (200, 206, 214), rng.random())
        arr[:horizon] = _vgrad(horizon, W, _shade(wall, 1.05), _shade(wall, 0.85))
        floor = _mix((170, 168, 164), (120, 116, 112), rng.random())
        arr[horizon:] = _vgrad(H - horizon, W, _shade(floor, 1.1), _shade(floor, 0.8))
    else:
        sky = _mix((96, 150, 214), (170, 196, 226), rng.random())
        arr[:horizon] = _vgrad(horizon, W, _shade(sky, 0.85), _mix(sky, (235, 238, 240), 0.6))
        ground = (96, 98, 102) if kind == "road" else _mix((92, 120, 70), (150, 140, 110), rng.random())
        arr[horizon:] = _vgrad(H - horizon, W, _shade(ground, 1.1), _shade(ground, 0.75))
    img = Image.fromarray(arr.astype(np.uint8), "RGB")
    d = ImageDraw.Draw(img)
    if kind == "showroom":  # floor tiles in perspective and ceiling spots
        for k in range(-8, 9):
            d.line([(W / 2 + k * 40, horizon), (W / 2 + k * 160, H)], fill=_shade(floor, 0.7), width=1)
        for k in range(1, 6):
            y = horizon + (H - horizon) * (k / 6) ** 1.7
            d.line([(0, y), (W, y)], fill=_shade(floor, 0.72), width=1)
        for _ in range(rng.randint(2, 4)):
            x = rng.uniform(0, W)
            d.ellipse((x - 40, 10, x + 40, 34), fill=_shade(wall, 1.15))
    elif kind == "road":
        d.polygon([(0, H), (W, H), (W, horizon + 8), (0, horizon + 8)], fill=(72, 74, 78))
        y = horizon + 8 + (H - horizon) * 0.35
        for x in range(rng.randint(-40, 0), W, 90):
            d.rectangle((x, y, x + 46, y + 5), fill=(226, 220, 190))
        d.rectangle((0, horizon + 4, W, horizon + 8), fill=(150, 150, 146))
    elif kind == "clutter":  # buildings and trees behind the car
        x = rng.uniform(-30, 0)
        while x < W:
            bw, bh = rng.uniform(40, 110), rng.uniform(40, horizon * 0.8)
            c = _mix((120, 118, 124), (190, 170, 150), rng.random())
            d.rectangle((x, horizon - bh, x + bw, horizon), fill=c)
            for wy in range(int(horizon - bh + 8), horizon - 10, 18):
                d.line([(x + 6, wy), (x + bw - 6, wy)], fill=_shade(c, 0.75), width=4)
            x += bw + rng.uniform(0, 30)
        for _ in range(rng.randint(2, 5)):
            tx, tr = rng.uniform(0, W), rng.uniform(18, 40)
            d.rectangle((tx - 3, horizon - tr, tx + 3, horizon), fill=(80, 60, 40))
            d.ellipse((tx - tr, horizon - 2.6 * tr, tx + tr, horizon - 0.6 * tr), fill=(52, 100, 50))
    else:  # "sky": a few clouds and distant hills
        for _ in range(rng.randint(1, 4)):
            cx, cy, cw = rng.uniform(0, W), rng.uniform(20, horizon * 0.6), rng.uniform(40, 120)
            d.ellipse((cx - cw, cy - cw * 0.25, cx + cw, cy + cw * 0.25), fill=(236, 238, 242))
        pts = [(0, horizon)] + [(x, horizon - rng.uniform(4, 30)) for x in range(0, W + 80, 80)] + [(W, horizon)]
        d.polygon(pts, fill=(110, 130, 120))
    return img, horizon


# ---------------------------------------------------------------- car parts

def _poly_shape(d: ImageDraw.ImageDraw, shape: str, box, fill, outline=None, width=1):
    """Draw a design shape (lamp / grille / badge vocabulary) inside box = (x0, y0, x1, y1)."""
    x0, y0, x1, y1 = box
    cx, cy, w, h = (x0 + x1) / 2, (y0 + y1) / 2, x1 - x0, y1 - y0
    if shape in ("round", "circle"):
        d.ellipse(box, fill=fill, outline=outline, width=width)
    elif shape in ("oval",):
        d.ellipse(box, fill=fill, outline=outline, width=width)
    elif shape in ("rect", "wide", "square"):
        d.rectangle(box, fill=fill, outline=outline, width=width)
    elif shape == "slit" or shape == "slot":
        d.rectangle((x0, cy - h * 0.22, x1, cy + h * 0.22), fill=fill, outline=outline, width=width)
    elif shape == "boomerang":
        d.polygon([(x0, y0), (x1, y0 + h * .15), (x1 - w * .25, cy), (x1, y1), (x0, y1 - h * .25)], fill=fill,
                  outline=outline)
    elif shape in ("triangle",):
        d.polygon([(x0, y1), (cx, y0), (x1, y1)], fill=fill, outline=outline)
    elif shape == "diamond":
        d.polygon([(cx, y0), (x1, cy), (cx, y1), (x0, cy)], fill=fill, outline=outline)
    elif shape == "shield":
        d.polygon([(x0, y0), (x1, y0), (x1, cy), (cx, y1), (x0, cy)], fill=fill, outline=outline)
    elif shape == "hex":
        d.polygon([(x0 + w * .2, y0), (x1 - w * .2, y0), (x1, cy), (x1 - w * .2, y1), (x0 + w * .2, y1), (x0, cy)],
                  fill=fill, outline=outline)
    elif shape == "trapezoid":
        d.polygon([(x0, y0), (x1, y0), (x1 - w * .15, y1), (x0 + w * .15, y1)], fill=fill, outline=outline)
    elif shape == "kidney":
        g = w * 0.06
        d.rounded_rectangle((x0, y0, cx - g, y1), radius=min(w, h) * .2, fill=fill, outline=outline)
        d.rounded_rectangle((cx + g, y0, x1, y1), radius=min(w, h) * .2, fill=fill, outline=outline)
    elif shape == "star":
        pts = []
        for k in range(10):
            a = -math.pi / 2 + k * math.pi / 5
            r = (0.5 if k % 2 == 0 else 0.22) * min(w, h)
            pts.append((cx + r * math.cos(a), cy + r * math.sin(a)))
        d.polygon(pts, fill=fill, outline=outline)
    else:
        d.rectangle(box, fill=fill, outline=outline)


def _grille(d, shape, pattern, box, s):
    x0, y0, x1, y1 = box
    _poly_shape(d, shape, box, fill=(22, 22, 24), outline=CHROME, width=max(1, int(1.5 * s)))
    w, h = x1 - x0, y1 - y0
    if shape == "slot":  # a thin slot has no room for a pattern
        return
    ix0, iy0, ix1, iy1 = x0 + w * .12, y0 + h * .18, x1 - w * .12, y1 - h * .18
    c, lw = (150, 152, 158), max(1, int(1.2 * s))
    if pattern == "hbars":
        for k in range(1, 4):
            y = iy0 + (iy1 - iy0) * k / 4
            d.line([(ix0, y), (ix1, y)], fill=c, width=lw * 2)
    elif pattern == "vbars":
        for k in range(1, 8):
            x = ix0 + (ix1 - ix0) * k / 8
            d.line([(x, iy0), (x, iy1)], fill=c, width=lw * 2)
    elif pattern == "mesh":
        for k in range(1, 7):
            x = ix0 + (ix1 - ix0) * k / 7
            d.line([(x - (iy1 - iy0) * .3, iy0), (x + (iy1 - iy0) * .3, iy1)], fill=c, width=lw)
            d.line([(x + (iy1 - iy0) * .3, iy0), (x - (iy1 - iy0) * .3, iy1)], fill=c, width=lw)
    elif pattern == "dots":
        r = max(1.5, h * .06)
        for i in range(1, 7):
            for j in range(1, 3):
                x, y = ix0 + (ix1 - ix0) * i / 7, iy0 + (iy1 - iy0) * j / 3
                d.ellipse((x - r, y - r, x + r, y + r), fill=c)
    elif pattern == "solid":
        d.rectangle((ix0, (iy0 + iy1) / 2 - h * .08, ix1, (iy0 + iy1) / 2 + h * .08), fill=c)


def _lamp(d, shape, variant, box, color, s):
    """A head or tail lamp: the make's shape, the year's graphics (DRL line, double, hollow)."""
    x0, y0, x1, y1 = box
    w, h = x1 - x0, y1 - y0
    dark = _shade(color, 0.35)
    if variant == "double":
        g = w * 0.1
        _poly_shape(d, shape, (x0, y0, x0 + w / 2 - g / 2, y1), fill=color, outline=dark)
        _poly_shape(d, shape, (x0 + w / 2 + g / 2, y0, x1, y1), fill=color, outline=dark)
    elif variant == "hollow":
        _poly_shape(d, shape, box, fill=dark, outline=color, width=max(2, int(2.5 * s)))
        _poly_shape(d, shape, (x0 + w * .3, y0 + h * .3, x1 - w * .3, y1 - h * .3), fill=color)
    else:
        _poly_shape(d, shape, box, fill=color, outline=dark, width=max(1, int(s)))
    if variant == "drl":
        d.line([(x0 - w * .05, y1 + h * .25), (x1 + w * .05, y1 + h * .25)], fill=(250, 250, 255),
               width=max(2, int(2.5 * s)))


RIMS = {  # finish -> (spokes / face, what shows between the spokes)
    "silver": ((206, 208, 214), (40, 40, 44)),
    "black": ((30, 30, 33), (128, 128, 134)),
    "bronze": ((178, 132, 72), (38, 36, 34)),
}


def _wheel(d, cx, cy, r, style, spin, s, finish="silver"):
    face, gap = RIMS[finish]
    d.ellipse((cx - r, cy - r, cx + r, cy + r), fill=TYRE)
    rr = r * 0.66
    lw = max(1, int(s))
    if style == "disc":
        d.ellipse((cx - rr, cy - rr, cx + rr, cy + rr), fill=face, outline=gap, width=int(2 * s))
        d.ellipse((cx - rr * .45, cy - rr * .45, cx + rr * .45, cy + rr * .45), outline=gap, width=int(2 * s))
    elif style == "turbine":
        d.ellipse((cx - rr, cy - rr, cx + rr, cy + rr), fill=gap)
        for k in range(8):
            a = spin + k * math.pi / 4
            d.pieslice((cx - rr, cy - rr, cx + rr, cy + rr), math.degrees(a), math.degrees(a) + 22, fill=face)
    elif style == "mesh":
        d.ellipse((cx - rr, cy - rr, cx + rr, cy + rr), fill=face)
        for k in range(14):
            a = spin + k * math.pi / 7
            d.line([(cx, cy), (cx + rr * math.cos(a), cy + rr * math.sin(a))], fill=gap, width=lw)
        d.ellipse((cx - rr * .6, cy - rr * .6, cx + rr * .6, cy + rr * .6), outline=gap, width=lw)
    else:
        d.ellipse((cx - rr, cy - rr, cx + rr, cy + rr), fill=gap)
        n, width = {"spoke5": (5, 0.32), "spoke10": (10, 0.1), "split": (10, 0.12)}[style]
        for k in range(n):
            a = spin + k * 2 * math.pi / n + (0.18 * (k % 2) if style == "split" else 0)
            p = [(cx + rr * .2 * math.cos(a + math.pi / 2), cy + rr * .2 * math.sin(a + math.pi / 2)),
                 (cx + rr * math.cos(a + width), cy + rr * math.sin(a + width)),
                 (cx + rr * math.cos(a - width), cy + rr * math.sin(a - width)),
                 (cx + rr * .2 * math.cos(a - math.pi / 2), cy + rr * .2 * math.sin(a - math.pi / 2))]
            d.polygon(p, fill=face)
        d.ellipse((cx - rr, cy - rr, cx + rr, cy + rr), outline=face, width=max(1, int(2 * s)))
    hub = r * 0.14
    d.ellipse((cx - hub, cy - hub, cx + hub, cy + hub), fill=(90, 90, 96))


def _roof_color(paint):
    """A roof that contrasts with the paint: black on light cars, light grey on dark ones."""
    return (22, 22, 24) if sum(paint) > 270 else (214, 214, 218)


def _cabin(prof, belt):
    """The part of the body outline above the belt line (the cabin), with the crossing points interpolated."""
    out = []
    pts = prof["body"]
    for (u1, v1), (u2, v2) in zip(pts, pts[1:] + pts[:1], strict=True):
        if v1 >= belt:
            out.append((u1, v1))
        if (v1 - belt) * (v2 - belt) < 0:
            t = (belt - v1) / (v2 - v1)
            out.append((u1 + (u2 - u1) * t, belt))
    return out


def _trim_color(kind: str, paint):
    return {"black": (26, 26, 28), "chrome": CHROME, "body": _shade(paint, 0.8)}[kind]


def _draw_car(my: ModelYear, rng: random.Random, pose: str, paint) -> Image.Image:
    """The car on a transparent layer, drawn at SS x scale, front facing right (mirroring happens later).

    Three-quarter views are an oblique projection: the side is foreshortened and the far side is offset
    up and to the right, so the roof, the hood and the front (or, for rear34, the rear) face show as
    parallelograms next to the side.
    """
    model, design, fl = my.model, my.make.design, my.facelift
    body = model.body
    prof = PROFILES[body]
    s = SS
    h_ratio = model.proportions["h_ratio"]
    three_q = pose != "side"
    L = 460 * s  # the layer is drawn at a fixed size; scale is applied when compositing
    Hc = L * h_ratio
    Ls = L * (0.80 if three_q else 1.0)  # seen at about 35 degrees: cos for the side, sin for the width
    fw = L * 0.27 * (model.proportions["width_in"] / 74.0) if three_q else 0.0
    off = (fw, -fw * 0.30)  # where the far side appears, relative to the near side (screen x right, y down)
    margin = 14 * s
    lw, lh = int(Ls + fw + 2 * margin), int(Hc * 1.02 + fw * 0.30 + 2 * margin)
    layer = Image.new("RGBA", (lw, lh), (0, 0, 0, 0))
    d = ImageDraw.Draw(layer)
    ground = lh - margin
    rear_view = pose == "rear34"

    def P(u, v):  # profile coords -> layer pixels (the rear view flips the side so the rear meets the face)
        uu = (1 - u) if rear_view else u
        return (margin + uu * Ls, ground - v * Hc)

    def far(p, k=1.0):  # a point moved toward the far side
        return (p[0] + off[0] * k, p[1] + off[1] * k)

    # shadow under the whole footprint
    d.ellipse((margin - 6 * s, ground - 10 * s + off[1] * 0.5, margin + Ls + fw + 6 * s, ground + 8 * s),
              fill=(0, 0, 0, 90))
    outline = _shade(paint, 0.55)
    pts = [P(u, v) for u, v in prof["body"]]
    clr = CLEARANCE[body]
    belt = prof["belt"]
    if three_q:
        _draw_extrusion(d, prof, pts, P, far, paint, outline, rear_view, design, body, fl)
    d.polygon(pts, fill=paint + (255,), outline=outline)
    if fl["two_tone_roof"]:  # the year's contrasting roof and pillars
        d.polygon([P(u, v) for u, v in _cabin(prof, belt)], fill=_roof_color(paint) + (255,), outline=outline)
    # the year's lower trim (bumper/sill)
    d.polygon([P(0, clr), P(1, clr), P(1, clr + .09), P(0, clr + .09)], fill=_trim_color(fl["lower_trim"], paint),
              outline=outline)
    # make stripe
    stripe, acc = design["stripe"], tuple(design["badge_color"])
    if stripe == "single":
        d.polygon([P(.02, belt - .12), P(.98, belt - .12), P(.98, belt - .17), P(.02, belt - .17)], fill=acc,
                  outline=DARK)
    elif stripe == "belt":  # a thick accent band right under the windows
        d.polygon([P(.03, belt - .015), P(.97, belt - .015), P(.97, belt - .075), P(.03, belt - .075)], fill=acc,
                  outline=DARK)
    elif stripe == "double":
        for v in (belt - .10, belt - .19):
            d.polygon([P(.02, v), P(.98, v), P(.98, v - .04), P(.02, v - .04)], fill=acc, outline=DARK)
    elif stripe == "sill":
        d.polygon([P(.12, clr + .07), P(.88, clr + .07), P(.88, clr + .16), P(.12, clr + .16)], fill=acc,
                  outline=DARK)
    elif stripe == "gills":  # three slanted bars on the front fender, behind the wheel
        for k in range(3):
            u0 = .70 + k * .035
            d.polygon([P(u0, belt - .10), P(u0 + .018, belt - .10), P(u0 + .008, clr + .14), P(u0 - .010, clr + .14)],
                      fill=acc, outline=DARK)
    elif stripe == "swoosh":
        d.polygon([P(.05, clr + .10), P(.95, belt - .06), P(.95, belt - .14), P(.05, clr + .06)], fill=acc,
                  outline=DARK)
    # glass and pillars
    gpts = [P(u, v) for u, v in prof["glass"]]
    wt = CHROME if design["window_trim"] == "chrome" else (30, 30, 32)
    d.polygon(gpts, fill=GLASS, outline=wt, width=int(3 * s))
    top = max(v for _, v in prof["glass"])
    for u in prof["pillars"]:
        d.polygon([P(u - .012, belt), P(u + .012, belt), P(u + .012, top), P(u - .012, top)], fill=(30, 30, 32))
    gx = [p[0] for p in gpts]  # a reflection across the glass
    d.line([(min(gx) + (max(gx) - min(gx)) * .6, gpts[0][1] - 4 * s),
            (min(gx) + (max(gx) - min(gx)) * .7, P(0, top)[1] + 8 * s)], fill=(110, 126, 140), width=int(4 * s))
    # door cut lines and handles
    for u in prof["doors"]:
        d.line([P(u, belt), P(u, clr + .08)], fill=outline, width=max(1, int(s)))
    for u in prof["doors"][:-1]:
        d.line([P(u + .06, belt - .08), P(u + .11, belt - .08)], fill=_shade(paint, 0.45), width=int(3 * s))
    # wheel arches and wheels
    r = model.proportions["wheel_r"] * L * 0.75
    wb = model.proportions["wheelbase"]
    front_u = 1 - 0.17 - (0.03 if body in ("van", "hatchback") else 0)
    body_bottom = ground - clr * Hc
    for u in (front_u, front_u - wb):
        cx, cy = P(u, 0)[0], ground - r
        ar = r * 1.16
        if design["arches"] == "clad":
            ac = ar * 1.14
            d.pieslice((cx - ac, cy - ac, cx + ac, cy + ac), 180, 360, fill=(34, 34, 36))
            if body_bottom > cy:
                d.rectangle((cx - ac, cy, cx + ac, body_bottom), fill=(34, 34, 36))
        if design["arches"] == "flat":
            d.polygon([(cx - ar, max(body_bottom, cy)), (cx - ar * .8, cy - ar), (cx + ar * .8, cy - ar),
                       (cx + ar, max(body_bottom, cy))], fill=(14, 14, 16))
        else:
            d.pieslice((cx - ar, cy - ar, cx + ar, cy + ar), 180, 360, fill=(14, 14, 16))
        if body_bottom > cy:
            d.rectangle((cx - ar, cy, cx + ar, body_bottom), fill=(14, 14, 16))
        _wheel(d, cx, cy, r, fl["wheel"], rng.uniform(0, 2 * math.pi), s, fl["rim"])
    # side lamps at each end (the make's lamp shape, seen edge-on)
    lamp = design["lamp"]
    head_v, tail_v = prof["body"][-3][1], prof["body"][2][1]
    hx0, hy = P(.955, head_v - .08)
    hx1 = P(1, 0)[0]
    _lamp(d, lamp, "plain", (min(hx0, hx1) - 2 * s, hy - 0.05 * Hc, max(hx0, hx1) + 2 * s, hy + 0.05 * Hc),
          (236, 236, 220), s)
    tx0, ty = P(.0, min(tail_v, .55) - .06)
    tx1 = P(.05, 0)[0]
    _lamp(d, lamp, "plain", (min(tx0, tx1) - 2 * s, ty - 0.05 * Hc, max(tx0, tx1), ty + 0.05 * Hc), (200, 20, 24), s)
    # side badge on the front fender, mirror
    bx, by = P(.86, belt - .12)
    bs = 0.07 * Hc
    _poly_shape(d, design["badge"], (bx - bs, by - bs, bx + bs, by + bs), fill=acc, outline=DARK)
    mx, my_ = P(.70, belt + .03)
    d.polygon([(mx - 10 * s, my_), (mx + 8 * s, my_ - 2 * s), (mx + 8 * s, my_ + 10 * s), (mx - 8 * s, my_ + 10 * s)],
              fill=acc, outline=DARK)  # mirror caps in the make's accent colour
    if three_q:
        _draw_face(d, my, pose, paint, P, far, Hc, fw, prof, s)
    return layer


def _draw_extrusion(d, prof, pts, P, far, paint, outline, rear_view, design, body, fl):
    """Roof, hood, glass and end faces: each profile edge facing the viewer, swept toward the far side."""
    prof_pts = prof["body"]
    belt = prof["belt"]
    ox, oy = far((0, 0))
    sign = -1 if rear_view else 1  # the mirrored profile runs the other way round
    trim = CHROME if design["window_trim"] == "chrome" else (30, 30, 32)
    for i in range(len(pts) - 1):  # the last edge (front bottom -> rear bottom) is the underside
        (x1, y1), (x2, y2) = pts[i], pts[i + 1]
        nx, ny = sign * (y2 - y1), -sign * (x2 - x1)  # outward normal (screen coordinates, y down)
        if nx * ox + ny * oy <= 0:
            continue  # faces away from the viewer
        v1, v2 = prof_pts[i][1], prof_pts[i + 1][1]
        up = abs(y2 - y1) < abs(x2 - x1)  # mostly horizontal: lit from above
        quad = [pts[i], pts[i + 1], far(pts[i + 1]), far(pts[i])]
        if body == "pickup" and abs(v1 - .63) < .01 and abs(v2 - .63) < .01:
            d.polygon(quad, fill=(38, 38, 40) + (255,), outline=outline)  # the open bed
            continue
        lo, hi = min(v1, v2), max(v1, v2)
        color = _roof_color(paint) if fl["two_tone_roof"] and lo >= belt else paint
        d.polygon(quad, fill=_shade(color, 1.12 if up else 0.86) + (255,), outline=outline)
        if not up and hi > belt + 0.15 and hi - lo > 0.12:  # windshield / rear window above the belt line
            vb = max(lo, belt)
            a, b = (pts[i], pts[i + 1]) if v1 < v2 else (pts[i + 1], pts[i])
            k = (vb - lo) / (hi - lo)
            base = _lerp(a, b, k + 0.04)
            topp = _lerp(a, b, 0.96)
            glass = [_lerp(base, far(base), .06), _lerp(topp, far(topp), .06), _lerp(far(topp), topp, .06),
                     _lerp(far(base), base, .06)]
            d.polygon(glass, fill=GLASS, outline=trim)


def _lerp(a, b, t):
    return (a[0] + (b[0] - a[0]) * t, a[1] + (b[1] - a[1]) * t)


def _draw_face(d, my: ModelYear, pose: str, paint, P, far, Hc, fw, prof, s):
    """Grille, lamps, badge and bumper on the front face (or tail lamps, plate and badge on the rear face)."""
    design, fl = my.make.design, my.facelift
    front = pose == "front34"
    clr = CLEARANCE[my.model.body]
    end_v = prof["body"][-2][1] if front else prof["body"][1][1]  # top of the vertical end face
    u_end = 1.0 if front else 0.0

    def F(t, v):  # a point on the end face: t in [0, 1] across the width, v as in the profile
        return far(P(u_end, v), t)

    acc = tuple(design["badge_color"])
    outline = _shade(paint, 0.5)
    # bumper (the year's lower trim)
    d.polygon([F(0, clr), F(1, clr), F(1, clr + .08), F(0, clr + .08)], fill=_trim_color(fl["lower_trim"], paint),
              outline=outline)
    face_h = (end_v - clr) * Hc
    lamp_w, lamp_h = fw * 0.24, max(face_h * 0.2, 6 * s)
    lamp_v = end_v - 0.07
    if front:
        gx, gy = F(0.5, (clr + .08 + lamp_v) / 2)
        gw = fw * 0.46 * design["grille_scale"]
        gh = min(face_h * 0.46, (lamp_v - clr - .08) * Hc * 1.1)
        if design["grille"] == "slot":
            gh *= 0.5
        _grille(d, design["grille"], fl["grille_pattern"], (gx - gw / 2, gy - gh / 2, gx + gw / 2, gy + gh / 2), s)
        color = (240, 240, 228)
        badge_at = F(0.5, lamp_v + 0.02)
    else:
        px, py = F(0.5, clr + .08 + (lamp_v - clr - .08) * 0.45)
        d.rectangle((px - fw * .15, py - face_h * .1, px + fw * .15, py + face_h * .1), fill=(236, 236, 236),
                    outline=DARK)  # licence plate
        color = (206, 22, 26)
        badge_at = F(0.5, lamp_v)
    for t in (0.16, 0.84):
        lx, ly = F(t, lamp_v)
        _lamp(d, design["lamp"], fl["lamp_variant"], (lx - lamp_w / 2, ly - lamp_h / 2, lx + lamp_w / 2, ly + lamp_h / 2),
              color, s)
    bs = max(face_h * 0.1, 5 * s)
    bx, by = badge_at
    _poly_shape(d, design["badge"], (bx - bs, by - bs, bx + bs, by + bs), fill=acc, outline=DARK)


# ---------------------------------------------------------------- interiors

def _interior(my: ModelYear, rng: random.Random, pose: str) -> Image.Image:
    design = my.make.design
    trim = INTERIOR_TRIMS[rng.randrange(len(INTERIOR_TRIMS))]
    acc = tuple(design["badge_color"])
    img, _ = _background(rng, rng.choice(("sky", "clutter", "road")))
    d = ImageDraw.Draw(img)
    if pose == "dash":
        dash_y = int(H * rng.uniform(0.40, 0.50))
        d.polygon([(0, dash_y + 30), (W * .3, dash_y), (W * .7, dash_y - 6), (W, dash_y + 24), (W, H), (0, H)],
                  fill=trim)
        d.polygon([(0, 0), (W * .12, 0), (W * .02, dash_y + 30), (0, dash_y + 30)], fill=_shade(trim, .6))
        d.polygon([(W, 0), (W * .88, 0), (W * .98, dash_y + 24), (W, dash_y + 24)], fill=_shade(trim, .6))
        d.rectangle((0, H * .9, W, H), fill=_shade(trim, .7))
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
        _screen(d, design["screen"], W * .6, dash_y + 110, rng)
        # instrument cluster and steering wheel (left-hand drive; mirroring makes right-hand drive)
        d.rounded_rectangle((W * .12, dash_y + 30, W * .40, dash_y + 100), radius=14, fill=DARK)
        for k in (0.19, 0.33):
            d.ellipse((W * k - 26, dash_y + 40, W * k + 26, dash_y + 92), outline=(210, 90, 40), width=3)
        _steering_wheel(d, W * .26, dash_y + 190, 150, design, acc, trim)
    elif pose == "seats":
        d.rectangle((0, 0, W, H * .18), fill=(196, 192, 184))  # roof lining
        d.polygon([(0, H * .18), (W * .3, H * .16), (W * .3, H * .5), (0, H * .55)], fill=_shade(trim, .8))
        d.rectangle((0, H * .78, W, H), fill=_shade(trim, .55))  # floor
        for sx in (W * .28, W * .66):
            _seat(d, sx, H * .30, 170, 260, trim, design["quilt"], acc)
        d.rectangle((W * .46, H * .62, W * .50, H * .86), fill=DARK)  # console between seats
    else:  # console close-up
        d.rectangle((0, 0, W, H), fill=_shade(trim, .9))
        d.polygon([(W * .25, H), (W * .35, H * .25), (W * .65, H * .25), (W * .75, H)], fill=_shade(trim, .5))
        _screen(d, design["screen"], W * .5, H * .12, rng, scale=0.8)
        d.ellipse((W * .42, H * .52, W * .58, H * .68), fill=DARK, outline=CHROME, width=4)  # selector
        bs = 18
        _poly_shape(d, design["badge"], (W * .5 - bs, H * .6 - bs, W * .5 + bs, H * .6 + bs), fill=acc,
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
    elif style == "floating":
        d.rectangle((cx - 8, cy, cx + 8, cy + sh * .9), fill=(40, 40, 44))
        panel(cx - sw / 2, cy - sh * .9, cx + sw / 2, cy + sh * .1)
    else:
        panel(cx - sw / 2, cy - sh / 2, cx + sw / 2, cy + sh / 2)


def _steering_wheel(d, cx, cy, r, design, acc, trim):
    d.ellipse((cx - r, cy - r, cx + r, cy + r), outline=DARK, width=26)
    n = design["wheel_spokes"]
    angles = {2: (180, 0), 3: (180, 0, 90), 4: (200, 340, 120, 60)}[n]
    for a in angles:
        ra = math.radians(a)
        d.line([(cx, cy), (cx + r * math.cos(ra), cy + r * math.sin(ra))], fill=(40, 40, 44), width=22)
    d.ellipse((cx - r * .3, cy - r * .3, cx + r * .3, cy + r * .3), fill=(40, 40, 44))
    bs = r * .12
    _poly_shape(d, design["badge"], (cx - bs, cy - bs, cx + bs, cy + bs), fill=acc, outline=DARK)


def _seat(d, x, y, w, h, trim, quilt, acc):
    d.rounded_rectangle((x - w * .28, y - h * .22, x + w * .28, y), radius=18, fill=_shade(trim, .9),
                        outline=DARK, width=2)  # headrest
    d.rounded_rectangle((x - w / 2, y + 8, x + w / 2, y + h), radius=34, fill=trim, outline=DARK, width=2)
    ix0, iy0, ix1, iy1 = x - w * .34, y + 30, x + w * .34, y + h - 20
    c = _shade(trim, .7)
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


# ---------------------------------------------------------------- photo assembly

def render_photo_image(catalog: Catalog, photo: Photo) -> tuple[Image.Image, int]:
    """The 640x480 RGB image of a photo and the JPEG quality it is served at."""
    my = catalog.photo_model_year(photo)
    rng = _rng(catalog.config.seed, "photo", photo.id, RENDER_VERSION)
    if not photo.car:
        return _render_other(my, rng, photo.subject)
    if photo.view == "interior":
        img = _interior(my, rng, photo.pose)
    else:
        paint = PAINTS[rng.randrange(len(PAINTS))]
        img, horizon = _background(rng, rng.choice(("sky", "road", "showroom", "clutter")))
        layer = _draw_car(my, rng, photo.pose, paint)
        if rng.random() < 0.5:
            layer = layer.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        angle = rng.uniform(-3, 3)
        target_w = W * rng.uniform(0.70, 0.92)
        k = min(target_w / layer.width, H * 0.85 / layer.height)
        # shrink first, then rotate the small layer: rotating the 2x layer costs more than the whole photo
        layer = layer.resize((int(layer.width * k), int(layer.height * k)), Image.Resampling.BOX)
        layer = layer.rotate(angle, resample=Image.Resampling.BILINEAR, expand=True)
        tw, th = layer.size
        x = int(rng.uniform(0.02, 0.98) * (W - tw))
        ground = rng.uniform(max(horizon + 30, th * 0.95), H - 8)
        y = int(min(H - th, max(0, ground - th)))
        img.paste(layer, (x, y), layer)
    # lighting, blur
    gain = rng.uniform(0.85, 1.12)
    if abs(gain - 1) > 0.02:
        img = img.point(lambda v: min(255, int(v * gain)))
    if rng.random() < 0.25:
        img = img.filter(ImageFilter.BoxBlur(rng.uniform(0.4, 1.0)))
    if photo.view == "interior" and rng.random() < 0.5:
        img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    quality = rng.randint(68, 92)
    return img, quality


def _render_other(my: ModelYear, rng: random.Random, subject: str) -> tuple[Image.Image, int]:
    """A non-car gallery image (carscope/showroom/render_other.py): photographic kinds get a photo's lighting and blur,
    graphics (logo, banner, map, brochure, ad) only a rare slight blur; the same JPEG qualities as photos."""
    from carscope.showroom.render_other import PHOTOGRAPHIC, draw_other

    img = draw_other(my, rng, subject)
    if subject in PHOTOGRAPHIC:
        gain = rng.uniform(0.85, 1.12)
        if abs(gain - 1) > 0.02:
            img = img.point(lambda v: min(255, int(v * gain)))
    if rng.random() < (0.25 if subject in PHOTOGRAPHIC else 0.1):
        img = img.filter(ImageFilter.BoxBlur(rng.uniform(0.4, 1.0)))
    return img, rng.randint(68, 92)


def _encode(img: Image.Image, quality: int) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=quality, optimize=False)
    return buf.getvalue()


def corrupt_bytes(data: bytes, photo_id: str) -> bytes:
    """Break a JPEG for good while keeping a valid header: the decoder fails on load, not on open."""
    r = random.Random(photo_id)
    cut = int(len(data) * r.uniform(0.35, 0.7))
    if r.random() < 0.5:
        return data[:cut]  # truncated: no end-of-image marker
    garbage = bytes(r.randrange(256) for _ in range(len(data) - cut - 2))
    broken = data[:cut] + garbage + b"\xff\xd9"
    try:  # garbage in the entropy-coded data almost always breaks decoding; make sure it did
        with Image.open(io.BytesIO(broken)) as im:
            im.load()
    except Exception:
        return broken
    return data[:cut]


def render_photo_bytes(catalog: Catalog, photo: Photo) -> dict[int, bytes]:
    """{640: jpeg bytes, 320: jpeg bytes} exactly as the site serves them (corrupt photos broken)."""
    img, q = render_photo_image(catalog, photo)
    small = img.resize((320, 240), Image.Resampling.LANCZOS)  # the 320 photo is the 640 one downscaled
    out = {640: _encode(img, q), 320: _encode(small, q)}
    if photo.corrupt:
        out = {w: corrupt_bytes(b, f"{photo.id}-{w}") for w, b in out.items()}
    return out


def render_dataset_photo(catalog: Catalog, photo: Photo | str, width: int = 640) -> bytes:
    """The bytes the site serves for a photo (id or Photo) at width 640 or 320, uncached."""
    if isinstance(photo, str):
        photo = catalog.photos[photo]
    if width not in (320, 640):
        raise ValueError(f"width must be 320 or 640, not {width}")
    return render_photo_bytes(catalog, photo)[width]


class PhotoStore:
    """Rendered photo bytes behind a thread-safe LRU (by bytes) and an optional disk cache.

    The disk cache lives in `<cache_dir>/<catalog_key>/` so caches of different configs never mix.
    """

    def __init__(self, catalog: Catalog, cache_dir: str | os.PathLike | None = None, max_bytes: int = 256 << 20):
        self.catalog = catalog
        self.max_bytes = max_bytes
        self._lru: OrderedDict[tuple[str, int], bytes] = OrderedDict()
        self._size = 0
        self._lock = threading.Lock()
        self._inflight: dict[str, threading.Event] = {}
        self.renders = 0
        self.hits = 0
        self.disk_hits = 0
        self.dir = Path(cache_dir) / catalog.config.catalog_key() if cache_dir else None
        if self.dir:
            self.dir.mkdir(parents=True, exist_ok=True)

    def _put(self, key, data: bytes) -> None:
        if len(data) > self.max_bytes:
            return
        with self._lock:
            if key in self._lru:
                return
            self._lru[key] = data
            self._size += len(data)
            while self._size > self.max_bytes:
                _, old = self._lru.popitem(last=False)
                self._size -= len(old)

    def cached(self, photo_id: str, width: int) -> bytes | None:
        with self._lock:
            data = self._lru.get((photo_id, width))
            if data is not None:
                self._lru.move_to_end((photo_id, width))
                self.hits += 1
            return data

    def get(self, photo_id: str, width: int) -> bytes:
        """Bytes of a photo at a width (KeyError for an unknown id). Blocking: call it off the event loop."""
        data = self.cached(photo_id, width)
        if data is not None:
            return data
        photo = self.catalog.photos[photo_id]
        # one render per photo even when both sizes are asked for at once
        with self._lock:
            ev = self._inflight.get(photo_id)
            owner = ev is None
            if owner:
                ev = self._inflight[photo_id] = threading.Event()
        if not owner:
            ev.wait()
            data = self.cached(photo_id, width)
            if data is not None:
                return data
        try:
            both = self._load_disk(photo_id) if self.dir else None
            if both is None:
                both = render_photo_bytes(self.catalog, photo)
                with self._lock:
                    self.renders += 1
                if self.dir:
                    self._save_disk(photo_id, both)
            else:
                with self._lock:
                    self.disk_hits += 1
            for w, b in both.items():
                self._put((photo_id, w), b)
            return both[width]
        finally:
            if owner:
                with self._lock:
                    self._inflight.pop(photo_id, None)
                ev.set()

    def _load_disk(self, photo_id: str) -> dict[int, bytes] | None:
        out = {}
        for w in (640, 320):
            p = self.dir / f"{photo_id}-{w}.jpg"
            try:
                out[w] = p.read_bytes()
            except OSError:
                return None
        return out

    def _save_disk(self, photo_id: str, both: dict[int, bytes]) -> None:
        for w, b in both.items():
            p = self.dir / f"{photo_id}-{w}.jpg"
            tmp = p.with_name(f".{p.name}.{os.getpid()}.{threading.get_ident()}.tmp")
            try:
                tmp.write_bytes(b)
                os.replace(tmp, p)  # atomic: a reader never sees half a photo
            except OSError:
                tmp.unlink(missing_ok=True)

    def sha256(self, photo_id: str) -> str:
        return hashlib.sha256(self.get(photo_id, 640)).hexdigest()


def prerender(store: PhotoStore, photo_ids=None, threads: int | None = None,
              stop: threading.Event | None = None) -> float:
    """Render (or load) every photo into the store; returns the seconds it took. For benchmarks and warm-up.

    Setting `stop` makes the remaining photos be skipped (so a Ctrl-C does not wait for the whole catalog)."""
    import time
    from concurrent.futures import ThreadPoolExecutor

    ids = list(photo_ids if photo_ids is not None else store.catalog.photos)

    def one(pid):
        if stop is None or not stop.is_set():
            store.get(pid, 640)

    t0 = time.perf_counter()
    with ThreadPoolExecutor(max_workers=threads or os.cpu_count() or 2) as ex:
        list(ex.map(one, ids))
    return time.perf_counter() - t0


def contact_sheet(catalog: Catalog, photos: list[Photo], cols: int = 8, width: int = 160) -> Image.Image:
    """A grid of photos (for eyeballing the renderer)."""
    h = width * 3 // 4
    rows = max(1, math.ceil(len(photos) / cols))
    sheet = Image.new("RGB", (cols * width, rows * h), (255, 255, 255))
    for i, p in enumerate(photos):
        img, _ = render_photo_image(catalog, p)
        sheet.paste(img.resize((width, h), Image.Resampling.BILINEAR), ((i % cols) * width, (i // cols) * h))
    return sheet


def _main(argv=None) -> int:
    import argparse

    from carscope.showroom.catalog import build_catalog
    from carscope.showroom.config import ShowroomConfig

    ap = argparse.ArgumentParser(description="write a contact sheet of showroom photos")
    ap.add_argument("--out", default="showroom-sheet")
    ap.add_argument("--makes", type=int, default=3)
    ap.add_argument("--models-per-make", type=int, default=4)
    ap.add_argument("--photos", type=int, default=6)
    ap.add_argument("--others", type=int, default=2, help="non-car images per model-year (render_other.py)")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    cat = build_catalog(ShowroomConfig(makes=a.makes, models_per_make=a.models_per_make, photos=a.photos,
                                       others=a.others, seed=a.seed))
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    for my in cat.model_years:
        contact_sheet(cat, list(my.photos), cols=6).save(out / f"{my.model_id}.jpg", quality=85)
    print(f"wrote {len(cat.model_years)} sheets to {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(_main())
