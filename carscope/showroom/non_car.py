"""The non-car images of a gallery (catalog.NON_CAR_SUBJECTS), drawn procedurally like the car photos.

    python -m carscope.showroom.render --out /tmp/sheets --others 8     # contact sheets: every kind in every model-year

Real catalog galleries also hold dealer logos, banners, staff portraits, map tiles, brochure pages, adverts and
close-ups of a badge or a wheel. Each kind here has its own look, varied by the photo's random draws (colours,
text-like bars, layout); the badge and wheel close-ups use the make's badge shape and the year's wheel, so they
are "of" the model-year without showing a car. Everything is drawn straight at 640x480 with flat fills and one
numpy gradient at most, so a non-car image costs no more than a car photo.
"""

from __future__ import annotations

import math
import random
from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw

from carscope.showroom.catalog import PAINTS, ModelYear
from carscope.showroom.draw import CHROME, DARK, TYRE, H, W, draw_wheel, mix, poly_shape, shade, vgrad

PHOTOGRAPHIC = ("portrait", "badge", "wheel")  # lit and blurred like a photo; the others are flat graphics
BOLD = [(200, 28, 40), (24, 80, 190), (240, 196, 20), (20, 150, 80), (150, 40, 170), (240, 110, 20),
        (10, 150, 170), (30, 30, 40), (230, 60, 120)]
AD_GROUNDS = [c for c in BOLD if max(c) - min(c) > 120]  # the saturated ones: an advert shouts
INKS = [(24, 24, 28), (30, 40, 70), (70, 70, 76), (90, 30, 30)]
PAGES = [(255, 255, 255), (250, 250, 247), (246, 244, 238), (242, 244, 247)]
SKIN = [(246, 214, 190), (232, 190, 160), (214, 162, 124), (184, 130, 94), (140, 94, 64), (96, 64, 44)]
HAIR = [(30, 24, 20), (70, 46, 30), (120, 84, 50), (200, 170, 110), (150, 150, 150), (90, 30, 20)]
SUITS = [(30, 34, 50), (50, 50, 54), (90, 70, 50), (110, 30, 40), (40, 70, 110), (200, 200, 204)]
BACKDROPS = [(120, 126, 134), (70, 90, 120), (130, 110, 90), (60, 100, 100), (160, 160, 164), (90, 70, 90)]


def _contrast(c):
    """Black or white, whichever reads on c."""
    return (255, 255, 255) if sum(c) < 420 else (20, 20, 24)


def _word_bars(d, x, y, width, height, color, rng: random.Random, align="left") -> float:
    """A run of "lettering": letter-sized bars in words across at most `width`; returns where it ends."""
    widths, total = [], 0.0
    while True:
        word = [height * rng.uniform(0.42, 0.8) for _ in range(rng.randint(2, 7))]
        wlen = sum(word) + height * 0.14 * (len(word) - 1)
        if widths and total + height * 0.6 + wlen > width:
            break
        widths.append(word)
        total += (height * 0.6 if len(widths) > 1 else 0) + wlen
        if total > width:  # a first word longer than the room: keep it, cut later
            break
    cx = x + (width - total if align == "right" else (width - total) / 2 if align == "center" else 0)
    for i, word in enumerate(widths):
        if i:
            cx += height * 0.6
        for lw in word:
            if cx + lw > x + width + 1:
                return cx
            d.rectangle((cx, y, cx + lw, y + height), fill=color)
            cx += lw + height * 0.14
        cx -= height * 0.14
    return cx


def _text_lines(d, box, line_h, gap, color, rng: random.Random) -> None:
    """Paragraphs of thin text lines filling box: words of varied length, a short last line per paragraph."""
    x0, y0, x1, y1 = box
    y = y0
    left = rng.randint(3, 7)
    while y + line_h <= y1:
        end = x1 if left > 1 else x0 + (x1 - x0) * rng.uniform(0.25, 0.8)
        x = x0
        while x < end - 4:
            wl = min(end - x, line_h * rng.uniform(1.5, 6.0))
            d.rectangle((x, y, x + wl, y + line_h), fill=color)
            x += wl + line_h * 0.9
        y += line_h + gap
        left -= 1
        if left == 0:
            y += gap + line_h
            left = rng.randint(3, 7)


def _hgrad(w: int, h: int, left, right) -> np.ndarray:
    t = np.linspace(0.0, 1.0, w, dtype=np.float32)[None, :, None]
    col = np.asarray(left, np.float32) * (1 - t) + np.asarray(right, np.float32) * t
    return np.broadcast_to(col, (h, w, 3))


LOW = 4  # smooth fields (vignettes, metallic sheen) are computed at 1/LOW size and scaled up: 16x cheaper


@lru_cache(maxsize=1)
def _grid() -> tuple[np.ndarray, np.ndarray]:
    """x / W and y / H over a (H / LOW, W / LOW) grid, for the smooth fields."""
    yy, xx = np.mgrid[0:H // LOW, 0:W // LOW].astype(np.float32)
    return (xx + 0.5) / (W // LOW), (yy + 0.5) / (H // LOW)


def _image(arr: np.ndarray) -> Image.Image:
    """An RGB image from a float array; a low-resolution field is scaled up to W x H (bilinear)."""
    img = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "RGB")
    return img if img.size == (W, H) else img.resize((W, H), Image.Resampling.BILINEAR)


# ---------------------------------------------------------------- the kinds

def _logo(my: ModelYear, rng: random.Random) -> Image.Image:
    """A dealer logo: the make's badge in its accent colour and "lettering" on a plain light ground."""
    design = my.make.design
    acc = tuple(design["badge_color"])
    img = Image.new("RGB", (W, H), rng.choice(PAGES))
    d = ImageDraw.Draw(img)
    ink = acc if rng.random() < 0.4 and sum(acc) < 600 else rng.choice(INKS)
    edge = DARK if sum(acc) > 600 else shade(acc, 0.55)
    layout = rng.choice(("left", "top", "stack"))
    bs = rng.uniform(70, 115)
    cap = rng.uniform(40, 62)
    if layout == "left":
        bx, by = rng.uniform(0.14, 0.24) * W, rng.uniform(0.4, 0.6) * H
        tx = bx + bs + rng.uniform(20, 40)
        room = W - tx - 30
        _word_bars(d, tx, by - cap * 0.9, room, cap, ink, rng)
        _word_bars(d, tx, by + cap * 0.35, room * rng.uniform(0.5, 0.9), cap * 0.38, mix(ink, (255, 255, 255), 0.4), rng)
    else:
        bx, by = W / 2 + rng.uniform(-30, 30), rng.uniform(0.28, 0.38) * H
        ty = by + bs + rng.uniform(22, 40)
        room = W * rng.uniform(0.55, 0.8)
        _word_bars(d, (W - room) / 2, ty, room, cap, ink, rng, align="center")
        if layout == "stack":
            d.rectangle(((W - room) / 2, ty + cap + 14, (W + room) / 2, ty + cap + 18), fill=acc)
        _word_bars(d, (W - room * 0.7) / 2, ty + cap + 30, room * 0.7, cap * 0.36, mix(ink, (255, 255, 255), 0.4),
                   rng, align="center")
    poly_shape(d, design["badge"], (bx - bs, by - bs, bx + bs, by + bs), fill=acc, outline=edge, width=4)
    inner = bs * 0.45
    if rng.random() < 0.5:  # a monogram bar inside the badge
        d.rectangle((bx - inner * 0.5, by - inner * 0.18, bx + inner * 0.5, by + inner * 0.18), fill=_contrast(acc))
    return img


def _banner(my: ModelYear, rng: random.Random) -> Image.Image:
    """A wide promotional banner: a horizontal gradient band, big text blocks, a shape, a button."""
    c1, c2 = rng.sample(BOLD, 2)
    band = rng.uniform(0.5, 0.78) * H if rng.random() < 0.6 else H  # letterboxed on the page, or full frame
    y0 = int((H - band) / 2)
    arr = np.empty((H, W, 3), np.float32)
    arr[:] = np.asarray(rng.choice(PAGES), np.float32)
    arr[y0:y0 + int(band)] = _hgrad(W, int(band), c1, mix(c2, c1, rng.uniform(0, 0.3)))
    img = _image(arr)
    d = ImageDraw.Draw(img)
    text = _contrast(mix(c1, c2, 0.3))
    right = rng.random() < 0.5  # which side the shape is on
    tx0, tx1 = (0.06 * W, 0.62 * W) if not right else (0.38 * W, 0.94 * W)
    cap = rng.uniform(40, 62)
    y = y0 + band * rng.uniform(0.12, 0.22)
    for _ in range(rng.randint(1, 2)):
        _word_bars(d, tx0, y, tx1 - tx0, cap, text, rng, align="right" if right else "left")
        y += cap * 1.3
    _word_bars(d, tx0, y + 6, (tx1 - tx0) * 0.8, cap * 0.36, text, rng, align="right" if right else "left")
    bw, bh = rng.uniform(120, 170), rng.uniform(34, 46)
    bx = tx0 if not right else tx1 - bw
    by = min(y0 + band - bh - 14, y + cap * 0.36 + 24)
    d.rounded_rectangle((bx, by, bx + bw, by + bh), radius=bh / 2, fill=_contrast(c2) if rng.random() < 0.5 else c2,
                        outline=text, width=3)
    sx = (0.80 if not right else 0.20) * W
    sy, sr = y0 + band / 2, min(band * 0.36, 110)
    sc = rng.choice([c for c in BOLD if c not in (c1, c2)])
    shape = rng.choice(("circle", "star", "chevron", "diamond"))
    if shape == "chevron":
        for k in range(3):
            o = (k - 1) * sr * 0.55
            d.polygon([(sx + o - sr * .3, sy - sr), (sx + o + sr * .25, sy), (sx + o - sr * .3, sy + sr),
                       (sx + o - sr * .05, sy + sr), (sx + o + sr * .5, sy), (sx + o - sr * .05, sy - sr)], fill=sc)
    else:
        poly_shape(d, shape, (sx - sr, sy - sr, sx + sr, sy + sr), fill=sc, outline=_contrast(sc), width=4)
    return img


def _portrait(my: ModelYear, rng: random.Random) -> Image.Image:
    """A staff portrait: head and shoulders in face tones, shirt and jacket, on a vignetted studio backdrop."""
    xx, yy = _grid()
    back = rng.choice(BACKDROPS)
    cx0, cy0 = rng.uniform(0.4, 0.6), rng.uniform(0.3, 0.45)
    r2 = ((xx - cx0) * 1.3) ** 2 + (yy - cy0) ** 2
    light = 1.25 - np.minimum(r2, 1.0) * rng.uniform(0.7, 1.1)
    img = _image(np.asarray(back, np.float32) * light[:, :, None])
    d = ImageDraw.Draw(img)
    skin, hair, suit = rng.choice(SKIN), rng.choice(HAIR), rng.choice(SUITS)
    cx = W * rng.uniform(0.4, 0.6)
    hw, hh = W * rng.uniform(0.095, 0.12), H * rng.uniform(0.17, 0.2)  # head half-width and half-height
    hy = H * rng.uniform(0.36, 0.44)
    top = hy + hh * 1.15  # shoulders
    sw = W * rng.uniform(0.3, 0.4)
    d.ellipse((cx - sw, top, cx + sw, top + H * 0.9), fill=suit)
    shirt = rng.choice([(240, 240, 236), (200, 220, 240), (236, 230, 214)])
    d.polygon([(cx - hw * 0.75, top - 4), (cx + hw * 0.75, top - 4), (cx, top + H * 0.2)], fill=shirt)
    if rng.random() < 0.6:  # a tie
        tie = rng.choice(BOLD)
        d.polygon([(cx - 8, top + 8), (cx + 8, top + 8), (cx + 14, top + H * 0.17), (cx, top + H * 0.2),
                   (cx - 14, top + H * 0.17)], fill=tie)
    d.rectangle((cx - hw * 0.5, hy + hh * 0.5, cx + hw * 0.5, top + 6), fill=shade(skin, 0.85))  # neck
    for s in (-1, 1):  # ears
        d.ellipse((cx + s * hw - hw * 0.18, hy - hh * 0.12, cx + s * hw + hw * 0.18, hy + hh * 0.22), fill=shade(skin, 0.92))
    d.ellipse((cx - hw, hy - hh, cx + hw, hy + hh), fill=skin)
    style = rng.random()
    if style > 0.12:  # hair (else bald)
        d.chord((cx - hw * 1.08, hy - hh * 1.12, cx + hw * 1.08, hy + hh * 0.5), 180, 360, fill=hair)
        if style > 0.7:  # long hair falls behind the shoulders
            d.rectangle((cx - hw * 1.08, hy - hh * 0.3, cx - hw * 0.85, hy + hh * 1.1), fill=hair)
            d.rectangle((cx + hw * 0.85, hy - hh * 0.3, cx + hw * 1.08, hy + hh * 1.1), fill=hair)
    feat = shade(skin, 0.55)
    for s in (-1, 1):
        ex = cx + s * hw * 0.38
        d.ellipse((ex - hw * 0.1, hy - hh * 0.02, ex + hw * 0.1, hy + hh * 0.08), fill=(40, 34, 30))
        d.line([(ex - hw * 0.16, hy - hh * 0.14), (ex + hw * 0.14, hy - hh * 0.16)], fill=shade(hair, 0.9), width=4)
    d.line([(cx, hy + hh * 0.05), (cx - hw * 0.08, hy + hh * 0.32)], fill=feat, width=3)  # nose
    d.arc((cx - hw * 0.35, hy + hh * 0.3, cx + hw * 0.35, hy + hh * 0.62), 20, 160, fill=shade(skin, 0.5), width=4)
    return img


def _map(my: ModelYear, rng: random.Random) -> Image.Image:
    """A map tile: land and building blocks, a park, water, a street grid, a main road, labels and a pin."""
    land = rng.choice([(236, 232, 222), (242, 239, 233), (232, 236, 228)])
    img = Image.new("RGB", (W, H), land)
    d = ImageDraw.Draw(img)
    water = rng.choice([(160, 200, 232), (170, 210, 224), (140, 186, 226)])
    if rng.random() < 0.5:  # a coast along one side
        side = rng.randrange(4)
        depth = rng.uniform(0.15, 0.3)
        edge = [rng.uniform(depth - 0.06, depth + 0.06) for _ in range(9)]
        if side in (0, 1):  # top or bottom
            ys = [(e if side == 0 else 1 - e) * H for e in edge]
            pts = [(k * W / 8, y) for k, y in enumerate(ys)]
            pts += [(W, 0), (0, 0)] if side == 0 else [(W, H), (0, H)]
        else:
            xs = [(e if side == 2 else 1 - e) * W for e in edge]
            pts = [(x, k * H / 8) for k, x in enumerate(xs)]
            pts += [(0, H), (0, 0)] if side == 2 else [(W, H), (W, 0)]
        d.polygon(pts, fill=water)
    else:  # a river
        y = rng.uniform(0.2, 0.8) * H
        pts = [(x, y + 40 * math.sin(x / rng.uniform(70, 140) + rng.uniform(0, 6))) for x in range(-20, W + 40, 40)]
        d.line(pts, fill=water, width=int(rng.uniform(24, 48)), joint="curve")
    px, py = rng.uniform(0.15, 0.75) * W, rng.uniform(0.15, 0.7) * H
    d.rounded_rectangle((px, py, px + rng.uniform(90, 180), py + rng.uniform(70, 140)), radius=16, fill=(196, 226, 186))
    angle = rng.uniform(-0.5, 0.5)
    ca, sa = math.cos(angle), math.sin(angle)
    step = rng.uniform(56, 96)
    block = shade(land, 0.95)
    for i in range(-8, 9):  # buildings in the blocks
        for j in range(-8, 9):
            if rng.random() < 0.35:
                u, v = (i + 0.5) * step, (j + 0.5) * step
                cxb, cyb = W / 2 + u * ca - v * sa, H / 2 + u * sa + v * ca
                if -40 < cxb < W + 40 and -40 < cyb < H + 40:
                    q = step * 0.3
                    d.polygon([(cxb + a * q * ca - b * q * sa, cyb + a * q * sa + b * q * ca)
                               for a, b in ((-1, -1), (1, -1), (1, 1), (-1, 1))], fill=block)
    casing, road = (214, 210, 204), (255, 255, 255)
    reach = 900
    for width, color in ((11, casing), (7, road)):
        for k in range(-7, 8):
            o = k * step
            for dx, dy, nx, ny in ((ca, sa, -sa, ca), (-sa, ca, ca, sa)):
                bx, by = W / 2 + nx * o, H / 2 + ny * o
                d.line([(bx - dx * reach, by - dy * reach), (bx + dx * reach, by + dy * reach)], fill=color, width=width)
    a2 = angle + rng.uniform(0.5, 1.0) * rng.choice((-1, 1))
    mx, my_ = rng.uniform(0.3, 0.7) * W, rng.uniform(0.3, 0.7) * H
    main = [(mx - math.cos(a2) * reach, my_ - math.sin(a2) * reach), (mx + math.cos(a2) * reach, my_ + math.sin(a2) * reach)]
    d.line(main, fill=(226, 180, 90), width=18)
    d.line(main, fill=(252, 214, 130), width=12)
    for _ in range(rng.randint(2, 4)):  # street names
        lx, ly = rng.uniform(0.05, 0.7) * W, rng.uniform(0.05, 0.9) * H
        _word_bars(d, lx, ly, rng.uniform(60, 140), 7, (110, 110, 116), rng)
    pinc = rng.choice([(220, 50, 50), (40, 110, 220), (30, 160, 90)])
    x, y = rng.uniform(0.3, 0.7) * W, rng.uniform(0.35, 0.7) * H  # the pin's tip
    r = rng.uniform(18, 26)
    d.ellipse((x - r * 0.8, y - 4, x + r * 0.8, y + 4), fill=shade(land, 0.7))
    d.polygon([(x, y), (x - r * 0.8, y - r * 1.6), (x + r * 0.8, y - r * 1.6)], fill=pinc)
    d.ellipse((x - r, y - r * 2.7, x + r, y - r * 0.7), fill=pinc)
    d.ellipse((x - r * 0.4, y - r * 2.1, x + r * 0.4, y - r * 1.3), fill=(255, 255, 255))
    return img


def _brochure(my: ModelYear, rng: random.Random) -> Image.Image:
    """A brochure page: a white page on a desk, a heading, columns of text lines, a small picture box."""
    desk = rng.choice([(120, 110, 100), (170, 170, 174), (90, 96, 110), (200, 196, 188)])
    img = Image.new("RGB", (W, H), desk)
    d = ImageDraw.Draw(img)
    m = rng.uniform(14, 40)
    page = (m, m * 0.6, W - m, H - m * 0.6)
    d.rectangle((page[0] + 6, page[1] + 6, page[2] + 6, page[3] + 6), fill=shade(desk, 0.7))  # shadow
    d.rectangle(page, fill=rng.choice(PAGES))
    acc = tuple(my.make.design["badge_color"])
    if sum(acc) > 600:
        acc = rng.choice(INKS)
    ink = rng.choice([(90, 90, 96), (110, 110, 116), (70, 74, 84)])
    x0, y0, x1, y1 = page[0] + 24, page[1] + 22, page[2] - 24, page[3] - 20
    if rng.random() < 0.5:  # a coloured header band, or a bold heading
        d.rectangle((page[0], page[1], page[2], y0 + 30), fill=acc)
        _word_bars(d, x0, y0 + 2, (x1 - x0) * 0.6, 20, _contrast(acc), rng)
    else:
        _word_bars(d, x0, y0, (x1 - x0) * 0.7, 22, acc, rng)
    top = y0 + 48
    cols = rng.choice((2, 2, 3))
    gutter = 18
    cw = (x1 - x0 - gutter * (cols - 1)) / cols
    pic_col = rng.randrange(cols)
    line_h, gap = rng.choice((4, 5, 6)), rng.choice((5, 6, 7))
    for c in range(cols):
        cx0 = x0 + c * (cw + gutter)
        ty = top
        if c == pic_col:  # the picture box: a small sky-and-ground scene with a sun
            ph = min(cw * 0.75, (y1 - top) * 0.45)
            py = top if rng.random() < 0.5 else y1 - ph
            sky, ground = rng.choice([(150, 190, 230), (230, 200, 160)]), rng.choice([(110, 150, 90), (150, 140, 120)])
            d.rectangle((cx0, py, cx0 + cw, py + ph * 0.6), fill=sky)
            d.rectangle((cx0, py + ph * 0.6, cx0 + cw, py + ph), fill=ground)
            d.ellipse((cx0 + cw * 0.65, py + ph * 0.12, cx0 + cw * 0.8, py + ph * 0.32), fill=(250, 240, 200))
            d.rectangle((cx0, py, cx0 + cw, py + ph), outline=ink, width=2)
            if py == top:
                ty = top + ph + 14
            else:
                _text_lines(d, (cx0, top, cx0 + cw, py - 14), line_h, gap, ink, rng)
                continue
        _text_lines(d, (cx0, ty, cx0 + cw, y1), line_h, gap, ink, rng)
    return img


def _ad(my: ModelYear, rng: random.Random) -> Image.Image:
    """An advertisement: a bold (maybe striped) background, a big price burst, headline and small print bars."""
    bg = rng.choice(AD_GROUNDS)
    img = Image.new("RGB", (W, H), bg)
    d = ImageDraw.Draw(img)
    if rng.random() < 0.5:  # diagonal stripes
        sc, step = shade(bg, 0.85), rng.uniform(40, 80)
        for k in range(-12, 24):
            x = k * step
            d.polygon([(x, 0), (x + step / 2, 0), (x + step / 2 - H * 0.6, H), (x - H * 0.6, H)], fill=sc)
    text = _contrast(bg)
    cap = rng.uniform(44, 64)
    burst_left = rng.random() < 0.5
    tx0, tx1 = (0.44 * W, 0.95 * W) if burst_left else (0.05 * W, 0.56 * W)
    y = rng.uniform(0.1, 0.2) * H
    for _ in range(rng.randint(1, 3)):
        _word_bars(d, tx0, y, tx1 - tx0, cap, text, rng)
        y += cap * 1.25
    for _ in range(rng.randint(2, 4)):
        _word_bars(d, tx0, y + 10, tx1 - tx0, 10, text, rng)
        y += 20
    d.rectangle((0, H - 40, W, H), fill=shade(bg, 0.55))  # footer band with the small print
    _word_bars(d, 20, H - 26, W * 0.7, 10, _contrast(shade(bg, 0.55)), rng)
    bx, by = (0.24 if burst_left else 0.76) * W, rng.uniform(0.42, 0.58) * H
    r, n = rng.uniform(110, 150), rng.randint(12, 20)
    burst = rng.choice([c for c in ((250, 220, 30), (255, 255, 255), (230, 30, 40), (30, 200, 90)) if c != bg])
    spin = rng.uniform(0, math.pi)
    pts = [(bx + (r if k % 2 == 0 else r * 0.76) * math.cos(spin + k * math.pi / n),
            by + (r if k % 2 == 0 else r * 0.76) * math.sin(spin + k * math.pi / n)) for k in range(2 * n)]
    d.polygon(pts, fill=burst, outline=shade(burst, 0.5))
    digits = rng.randint(3, 5)  # the "price": tall digit bars, a small currency sign before them
    dw, dh = r * 1.1 / digits, r * 0.7
    ink = _contrast(burst) if burst != (230, 30, 40) else (255, 255, 255)
    x = bx - r * 0.55
    d.rectangle((x - dw * 0.5, by - dh * 0.5, x - dw * 0.2, by - dh * 0.1), fill=ink)
    for _ in range(digits):
        d.rectangle((x, by - dh / 2, x + dw * 0.72, by + dh / 2), fill=ink)
        d.rectangle((x + dw * 0.2, by - dh * 0.3, x + dw * 0.52, by + dh * 0.3), fill=burst)
        x += dw
    return img


def _badge(my: ModelYear, rng: random.Random) -> Image.Image:
    """A close-up of the make's badge on the paint: a metallic gradient fills the frame, the badge most of it."""
    xx, yy = _grid()
    paint = np.asarray(PAINTS[rng.randrange(len(PAINTS))], np.float32)
    a = rng.uniform(0, math.pi)
    t = xx * math.cos(a) + yy * math.sin(a)
    t0, w = rng.uniform(0.2, 0.9), rng.uniform(0.08, 0.18)
    sheen = np.exp(-(((t - t0) / w) ** 2))  # a highlight band across the panel
    base = 0.7 + 0.35 * (t - t.min()) / (t.max() - t.min())
    arr = paint * base[:, :, None] + (255 - paint * 0.6) * (0.55 * sheen)[:, :, None]
    img = _image(arr)
    design = my.make.design
    acc = np.asarray(design["badge_color"], np.float32)
    cx, cy = W / 2 + rng.uniform(-40, 40), H / 2 + rng.uniform(-25, 25)
    bs = H * rng.uniform(0.32, 0.44)
    rim = bs * rng.uniform(1.06, 1.12)
    mask = Image.new("L", (W, H), 0)
    md = ImageDraw.Draw(mask)
    poly_shape(md, design["badge"], (cx - rim, cy - rim, cx + rim, cy + rim), fill=255)
    img.paste(_image(vgrad(H // LOW, W // LOW, (250, 252, 255), (120, 124, 132))), (0, 0), mask)  # chrome
    mask = Image.new("L", (W, H), 0)
    poly_shape(ImageDraw.Draw(mask), design["badge"], (cx - bs, cy - bs, cx + bs, cy + bs), fill=255)
    img.paste(_image(acc * (1.3 - 0.6 * yy[:, :, None]) + 40 * sheen[:, :, None]), (0, 0), mask)  # enamel
    d = ImageDraw.Draw(img)
    glint = rng.uniform(-0.4, 0.4)
    d.line([(cx - bs * 0.5, cy - bs * (0.45 + glint * 0.2)), (cx + bs * 0.2, cy - bs * (0.6 - glint * 0.2))],
           fill=(255, 255, 255), width=int(bs * 0.06))
    if rng.random() < 0.5:  # a panel gap runs past the badge
        gx = rng.choice((0.12, 0.88)) * W
        d.line([(gx, 0), (gx + rng.uniform(-30, 30), H)], fill=shade(tuple(int(v) for v in paint), 0.35), width=3)
    return img


def _wheel_closeup(my: ModelYear, rng: random.Random) -> Image.Image:
    """A close-up of the year's wheel (style and finish) in its arch, filling the frame."""
    paint = PAINTS[rng.randrange(len(PAINTS))]
    img = _image(vgrad(H // LOW, W // LOW, shade(paint, 1.15), shade(paint, 0.7)))
    d = ImageDraw.Draw(img)
    cx, cy = W / 2 + rng.uniform(-50, 50), H / 2 + rng.uniform(-20, 40)
    r = H * rng.uniform(0.42, 0.52)
    d.rectangle((0, min(H - 6, cy + r * 0.92), W, H), fill=(64, 66, 70))  # the road
    d.ellipse((cx - r * 1.2, cy - r * 1.2, cx + r * 1.2, cy + r * 1.2), fill=(14, 14, 16))  # the arch
    draw_wheel(d, cx, cy, r, my.facelift["wheel"], rng.uniform(0, 2 * math.pi), r / 36, my.facelift["rim"])
    for _ in range(rng.randint(3, 6)):  # sidewall lettering
        a = rng.uniform(0, 360)
        d.arc((cx - r * 0.88, cy - r * 0.88, cx + r * 0.88, cy + r * 0.88), a, a + rng.uniform(12, 30),
              fill=(70, 70, 74), width=max(3, int(r * 0.035)))
    d.ellipse((cx - r, cy - r, cx + r, cy + r), outline=shade(TYRE, 1.6), width=3)
    hub = r * 0.08
    d.ellipse((cx - hub, cy - hub, cx + hub, cy + hub), fill=CHROME, outline=DARK)
    return img


DRAW = {"logo": _logo, "banner": _banner, "portrait": _portrait, "map": _map, "brochure": _brochure, "ad": _ad,
        "badge": _badge, "wheel": _wheel_closeup}


def draw_non_car(my: ModelYear, rng: random.Random, subject: str) -> Image.Image:
    """The 640x480 image of a non-car gallery entry, before the lighting, blur and JPEG every photo gets."""
    img = DRAW[subject](my, rng)
    if subject in PHOTOGRAPHIC and rng.random() < 0.5:
        img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    return img

