"""The car: a model-year's body, paint, make signature and year's facelift on a transparent layer.

    python -m carscope.showroom.render --out /tmp/showroom-photos --makes 2 --photos 6   # writes contact sheets

The side view is the body profile; the three-quarter views add an oblique extrusion (roof, hood, glass) and the
front or rear face (grille, lamps, badge, plate). render.py scales, rotates and places the layer on a background.
"""

from __future__ import annotations

import math
import random

from PIL import Image, ImageDraw

from carscope.showroom.catalog import ModelYear
from carscope.showroom.draw import (
    CHROME,
    DARK,
    draw_wheel,
    grille,
    lamp,
    mark,
    poly_shape,
    roof_color,
    shade,
    trim_color,
)

SS = 2  # the car layer is drawn at 2x and reduced: cheap anti-aliasing
GLASS = (40, 52, 66)

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


def draw_car(my: ModelYear, rng: random.Random, pose: str, paint, ss: int = SS, marks: dict | None = None) -> Image.Image:
    """The car on a transparent layer, drawn at `ss` x scale, front facing right (mirroring happens later).
    `marks`, if given, collects where the parts are in the layer (draw.mark: wheel, head, tail, lamp, grille, badge).

    Three-quarter views are an oblique projection: the side is foreshortened and the far side is offset
    up and to the right, so the roof, the hood and the front (or, for rear34, the rear) face show as
    parallelograms next to the side.
    """
    model, design, fl = my.model, my.make.design, my.facelift
    body = model.body
    prof = PROFILES[body]
    s = ss
    h_ratio = my.shape["h_ratio"]
    three_q = pose != "side"
    L = 460 * s  # the layer is drawn at a fixed size; scale is applied when compositing
    Hc = L * h_ratio
    Ls = L * (0.80 if three_q else 1.0)  # seen at about 35 degrees: cos for the side, sin for the width
    fw = L * 0.27 * (my.shape["width_in"] / 74.0) if three_q else 0.0
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
    outline = shade(paint, 0.55)
    pts = [P(u, v) for u, v in prof["body"]]
    clr = CLEARANCE[body]
    belt = prof["belt"]
    if three_q:
        _draw_extrusion(d, prof, pts, P, far, paint, outline, rear_view, design, body, fl)
    d.polygon(pts, fill=paint + (255,), outline=outline)
    if fl["two_tone_roof"]:  # the year's contrasting roof and pillars
        d.polygon([P(u, v) for u, v in _cabin(prof, belt)], fill=roof_color(paint) + (255,), outline=outline)
    # the year's lower trim (bumper/sill)
    d.polygon([P(0, clr), P(1, clr), P(1, clr + .09), P(0, clr + .09)], fill=trim_color(fl["lower_trim"], paint),
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
        d.line([P(u + .06, belt - .08), P(u + .11, belt - .08)], fill=shade(paint, 0.45), width=int(3 * s))
    # wheel arches and wheels
    r = my.shape["wheel_r"] * L * 0.75
    wb = my.shape["wheelbase"]
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
        draw_wheel(d, cx, cy, r, fl["wheel"], rng.uniform(0, 2 * math.pi), s, fl["rim"])
        if marks is not None:
            mark(marks, "wheel", (cx - r, cy - r, cx + r, cy + r))
    # side lamps at each end (the make's lamp shape, seen edge-on)
    lamp_shape = design["lamp"]
    head_v, tail_v = prof["body"][-3][1], prof["body"][2][1]
    hx0, hy = P(.955, head_v - .08)
    hx1 = P(1, 0)[0]
    head = (min(hx0, hx1) - 2 * s, hy - 0.05 * Hc, max(hx0, hx1) + 2 * s, hy + 0.05 * Hc)
    lamp(d, lamp_shape, "plain", head, (236, 236, 220), s)
    tx0, ty = P(.0, min(tail_v, .55) - .06)
    tx1 = P(.05, 0)[0]
    tail = (min(tx0, tx1) - 2 * s, ty - 0.05 * Hc, max(tx0, tx1), ty + 0.05 * Hc)
    lamp(d, lamp_shape, "plain", tail, (200, 20, 24), s)
    if marks is not None:
        mark(marks, "head", head)
        mark(marks, "tail", tail)
    # side badge on the front fender, mirror
    bx, by = P(.86, belt - .12)
    bs = 0.07 * Hc
    poly_shape(d, design["badge"], (bx - bs, by - bs, bx + bs, by + bs), fill=acc, outline=DARK)
    mx, my_ = P(.70, belt + .03)
    d.polygon([(mx - 10 * s, my_), (mx + 8 * s, my_ - 2 * s), (mx + 8 * s, my_ + 10 * s), (mx - 8 * s, my_ + 10 * s)],
              fill=acc, outline=DARK)  # mirror caps in the make's accent colour
    if three_q:
        _draw_face(d, my, pose, paint, P, far, Hc, fw, prof, s, marks)
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
        color = roof_color(paint) if fl["two_tone_roof"] and lo >= belt else paint
        d.polygon(quad, fill=shade(color, 1.12 if up else 0.86) + (255,), outline=outline)
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


def _draw_face(d, my: ModelYear, pose: str, paint, P, far, Hc, fw, prof, s, marks):
    """Grille, lamps, badge and bumper on the front face (or tail lamps, plate and badge on the rear face)."""
    design, fl = my.make.design, my.facelift
    front = pose == "front34"
    clr = CLEARANCE[my.model.body]
    end_v = prof["body"][-2][1] if front else prof["body"][1][1]  # top of the vertical end face
    u_end = 1.0 if front else 0.0

    def F(t, v):  # a point on the end face: t in [0, 1] across the width, v as in the profile
        return far(P(u_end, v), t)

    acc = tuple(design["badge_color"])
    outline = shade(paint, 0.5)
    # bumper (the year's lower trim)
    d.polygon([F(0, clr), F(1, clr), F(1, clr + .08), F(0, clr + .08)], fill=trim_color(fl["lower_trim"], paint),
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
        grille(d, design["grille"], fl["grille_pattern"], (gx - gw / 2, gy - gh / 2, gx + gw / 2, gy + gh / 2), s)
        if marks is not None:
            mark(marks, "grille", (gx - gw / 2, gy - gh / 2, gx + gw / 2, gy + gh / 2))
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
        box = (lx - lamp_w / 2, ly - lamp_h / 2, lx + lamp_w / 2, ly + lamp_h / 2)
        lamp(d, design["lamp"], fl["lamp_variant"], box, color, s)
        if marks is not None:
            mark(marks, ("head", "lamp") if front else ("tail",), box)
    bs = max(face_h * 0.1, 5 * s)
    bx, by = badge_at
    poly_shape(d, design["badge"], (bx - bs, by - bs, bx + bs, by + bs), fill=acc, outline=DARK)
    if marks is not None:
        mark(marks, "badge", (bx - bs, by - bs, bx + bs, by + bs))
