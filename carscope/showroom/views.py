"""The straight front and rear views (poses `front` and `rear`, drawn under `views="all"`), and `draw_layer`, which
draws a car layer in any pose (the side and three-quarter views are car.py's).

    python -m carscope.showroom.render --out /tmp/sheet --makes 2 --photos 10 --views all   # contact sheets

A straight view is the car's face on: its width from the model's `width_in`, its height from `h_ratio` (both at
the side view's scale), the greenhouse and windshield (or rear window) above the belt line, the make's grille
shape with the year's grille pattern, the make's lamp shape with the year's lamp graphics, the badge, the bumper
in the year's lower trim, tyres at the bottom corners and mirror caps in the make's accent colour. It is
symmetric: the left half is drawn and mirrored, so asymmetric lamp shapes (boomerang) face both ways.
"""

from __future__ import annotations

import random

from PIL import Image, ImageDraw

from carscope.showroom.car import CLEARANCE, GLASS, PROFILES, SS, draw_car
from carscope.showroom.catalog import ModelYear
from carscope.showroom.draw import (
    CHROME,
    DARK,
    TYRE,
    grille,
    lamp,
    mark,
    poly_shape,
    roof_color,
    shade,
    trim_color,
)

ROOF_HALF = {"van": .80, "suv": .76, "pickup": .72, "hatchback": .68, "sedan": .62, "coupe": .56}  # of the width
STRAIGHT = ("front", "rear")


def draw_layer(my: ModelYear, rng: random.Random, pose: str, paint, ss: int = SS,
               marks: dict | None = None) -> Image.Image:
    """The car on a transparent layer in any pose (front facing right in the side and three-quarter views)."""
    if pose in STRAIGHT:
        return draw_straight(my, pose, paint, ss, marks)
    return draw_car(my, rng, pose, paint, ss, marks)


def draw_straight(my: ModelYear, pose: str, paint, ss: int = SS, marks: dict | None = None) -> Image.Image:
    """The car seen straight from the front or the rear, on a transparent layer drawn at `ss` x scale."""
    body, design, fl, shape = my.model.body, my.make.design, my.facelift, my.shape
    front = pose == "front"
    prof, clr = PROFILES[body], CLEARANCE[body]
    s = ss
    L = 460 * s  # the side view's scale: a front view is as tall as the same car's side view
    Hc = L * shape["h_ratio"]
    Bw = L * shape["width_in"] / (shape["length_in"] * 0.95)  # the height's inches per pixel (car.py: 0.95)
    margin = 14 * s
    lw, lh = int(Bw * 1.24 + 2 * margin) // 2 * 2, int(Hc * 1.02 + 2 * margin)
    layer = Image.new("RGBA", (lw, lh), (0, 0, 0, 0))
    d = ImageDraw.Draw(layer)
    cx, ground = lw / 2, lh - margin

    def X(t):  # t in [-1, 1] across the body's width
        return cx + t * Bw / 2

    def Y(v):  # v as in the side profile: 0 ground, 1 roof
        return ground - v * Hc

    outline, acc = shade(paint, 0.55), tuple(design["badge_color"])
    belt = prof["belt"]
    end_v = belt - 0.07  # the hood (or boot lid) is seen almost edge on: a thin band under the glass
    low = clr * 0.55  # the bumper's lower edge: lower than the side view's sills
    d.ellipse((X(-1.08), ground - 8 * s, X(1.08), ground + 7 * s), fill=(0, 0, 0, 90))  # shadow
    for t0, t1 in ((-0.95, -0.68), (0.68, 0.95)):
        box = (X(t0), Y(low + 0.08), X(t1), ground)
        d.rounded_rectangle(box, radius=4 * s, fill=TYRE)
        if marks is not None:
            mark(marks, "wheel", box)
    # the body below the belt line, the hood (or boot lid) above the face, the greenhouse, the glass
    d.polygon([(X(-0.96), Y(low)), (X(0.96), Y(low)), (X(1.0), Y(end_v - 0.03)), (X(0.98), Y(belt)),
               (X(-0.98), Y(belt)), (X(-1.0), Y(end_v - 0.03))], fill=paint, outline=outline)
    d.polygon([(X(-0.98), Y(end_v)), (X(0.98), Y(end_v)), (X(0.95), Y(belt)), (X(-0.95), Y(belt))],
              fill=shade(paint, 1.12), outline=outline)
    rh = ROOF_HALF[body]
    cabin = roof_color(paint) if fl["two_tone_roof"] else paint
    d.polygon([(X(-0.9), Y(belt)), (X(0.9), Y(belt)), (X(rh), Y(1.0)), (X(-rh), Y(1.0))], fill=cabin,
              outline=outline)
    trim = CHROME if design["window_trim"] == "chrome" else (30, 30, 32)
    g0, g1 = belt + 0.03, 0.95
    glass = [(X(-0.83), Y(g0)), (X(0.83), Y(g0)), (X(rh - 0.05), Y(g1)), (X(-(rh - 0.05)), Y(g1))]
    d.polygon(glass, fill=GLASS, outline=trim, width=max(1, int(2.5 * s)))
    d.line([(X(-0.55), Y(g0 + 0.03)), (X(-0.35), Y(g1 - 0.03))], fill=(110, 126, 140), width=int(4 * s))
    if design["stripe"] in ("single", "double"):  # racing stripes over the hood and the roof
        for t in ((0.0,) if design["stripe"] == "single" else (-0.09, 0.09)):
            w = 0.05 if design["stripe"] == "single" else 0.035
            d.polygon([(X(t - w), Y(end_v)), (X(t + w), Y(end_v)), (X(t + w * .8), Y(belt)), (X(t - w * .8), Y(belt))],
                      fill=acc, outline=DARK)
    if design["arches"] == "clad":  # black cladding over the tyres
        for t0, t1 in ((-1.0, -0.7), (0.7, 1.0)):
            d.rectangle((X(t0), Y(low + 0.16), X(t1), Y(low)), fill=(34, 34, 36))
    for t in (-1, 1):  # mirror caps in the make's accent colour
        m0, m1 = X(t * 0.9), X(t * 1.09)
        d.polygon([(m0, Y(belt + 0.04)), (m1, Y(belt + 0.07)), (m1, Y(belt + 0.01)), (m0, Y(belt - 0.0))],
                  fill=acc, outline=DARK)
    # the face: bumper in the year's lower trim, grille or plate, lamps, badge
    bumper = low + 0.10
    d.rectangle((X(-0.97), Y(bumper), X(0.97), Y(low)), fill=trim_color(fl["lower_trim"], paint), outline=outline)
    face_h = (end_v - bumper) * Hc
    lamp_v = end_v - 0.07
    lamp_w, lamp_h = Bw * 0.24, max(face_h * 0.2, 6 * s)
    if front:
        gy = Y((bumper + lamp_v) / 2 - 0.01)
        gw = Bw * 0.42 * design["grille_scale"]
        gh = (lamp_v - bumper) * Hc * 0.95 * (0.5 if design["grille"] == "slot" else 1)
        box = (cx - gw / 2, gy - gh / 2, cx + gw / 2, gy + gh / 2)
        grille(d, design["grille"], fl["grille_pattern"], box, s)
        color, badge_v, lamp_names = (240, 240, 228), lamp_v + 0.025, ("head", "lamp")
        if marks is not None:
            mark(marks, "grille", box)
    else:
        py = Y(bumper + (lamp_v - bumper) * 0.45)
        d.rectangle((cx - Bw * .13, py - face_h * .11, cx + Bw * .13, py + face_h * .11), fill=(236, 236, 236),
                    outline=DARK)  # licence plate
        color, badge_v, lamp_names = (206, 22, 26), lamp_v, ("tail",)
    ly = Y(lamp_v)
    lx = X(-0.66)
    box = (lx - lamp_w / 2, ly - lamp_h / 2, lx + lamp_w / 2, ly + lamp_h / 2)
    lamp(d, design["lamp"], fl["lamp_variant"], box, color, s)
    bs = max(face_h * 0.1, 5 * s)
    by = Y(badge_v)
    poly_shape(d, design["badge"], (cx - bs, by - bs, cx + bs, by + bs), fill=acc, outline=DARK)
    # symmetric: the right half is the left half mirrored (the lamp above is drawn on the left only)
    half = layer.crop((0, 0, lw // 2, lh)).transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    layer.paste(half, (lw // 2, 0))
    if marks is not None:
        mark(marks, lamp_names, box)
        mark(marks, lamp_names, (lw - box[2], box[1], lw - box[0], box[3]))
        mark(marks, "badge", (cx - bs, by - bs, cx + bs, by + bs))
    return layer
