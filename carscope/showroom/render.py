"""Procedural, deterministic car photos (Pillow + numpy): what the showroom serves under /photos/.

    python -m carscope.showroom.render --out /tmp/showroom-photos --makes 2 --photos 6   # writes a contact sheet

What identifies what (so a small CNN can learn it, and colour alone never does):
  make  = design language: grille shape, lamp shape, badge shape and colour, side stripe, wheel-arch style,
          window trim; interiors: screen layout, steering-wheel spokes, vents, seat quilting.
  model = body silhouette and proportions (sedan, SUV, pickup, coupe, hatchback, van).
  year  = a facelift: wheel design and finish, contrasting roof or not, lamp graphics, grille pattern, lower trim.
Nuisances: paint from a shared palette, background (sky, road, showroom floor, clutter), scale, position,
slight rotation, mirror, viewpoint (side, front and rear three-quarter), lighting, blur, JPEG quality.

This module puts a photo together and encodes it; the drawing lives beside it: draw.py (shared helpers,
backgrounds, shapes, wheels), car.py (the car layer), views.py (straight front and rear views), interior.py (the
interiors), non_car.py (the galleries' logos, maps, ...), closeups.py and conditions.py (the realism options'
close-ups, framings and conditions, SITE.md). The 320-wide photo is the 640 one downscaled. `render_photo_bytes` is the uncached entry
point; photo_store.PhotoStore caches the encoded bytes (memory LRU, optional disk folder).
"""

from __future__ import annotations

import io
import math
import random
from pathlib import Path

from PIL import Image, ImageFilter

from carscope.showroom.catalog import PAINTS, Catalog, ModelYear, Photo, build_catalog, seeded_rng
from carscope.showroom.closeups import exterior_closeup, interior_closeup
from carscope.showroom.conditions import apply_conditions, cut_x, draw_clutter, place_lights, small_width
from carscope.showroom.config import REALISM_DEFAULTS, REALISTIC, RENDER_VERSION, ShowroomConfig
from carscope.showroom.draw import H, W, background
from carscope.showroom.interior import draw_interior
from carscope.showroom.non_car import PHOTOGRAPHIC, draw_non_car
from carscope.showroom.views import draw_layer

# ---------------------------------------------------------------- photo assembly

def render_photo_image(catalog: Catalog, photo: Photo) -> tuple[Image.Image, int]:
    """The 640x480 RGB image of a photo and the JPEG quality it is served at."""
    my = catalog.photo_model_year(photo)
    rng = seeded_rng(catalog.config.seed, "photo", photo.id, RENDER_VERSION)
    if not photo.car:
        return _render_non_car(my, rng, photo.subject)
    lights = None
    if photo.view == "interior":
        img = (interior_closeup(catalog, my, photo, rng) if photo.framing == "closeup" else
               draw_interior(my, rng, photo.pose))
    else:
        img, lights = _exterior(catalog, my, photo, rng)
    # lighting, blur
    gain = rng.uniform(0.85, 1.12)
    if abs(gain - 1) > 0.02:
        img = img.point(lambda v: min(255, int(v * gain)))
    if rng.random() < 0.25:
        img = img.filter(ImageFilter.BoxBlur(rng.uniform(0.4, 1.0)))
    if photo.view == "interior" and rng.random() < 0.5:
        img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    quality = rng.randint(68, 92)
    if photo.conditions:
        img, quality = apply_conditions(catalog.config.seed, photo, img, quality, lights)
    return img, quality


def _exterior(catalog: Catalog, my: ModelYear, photo: Photo, rng: random.Random) -> tuple[Image.Image, list | None]:
    """An exterior photo before lighting, and where its lamps are when it is a night photo (else None).
    The framings (cut, small) and the clutter change the placement, never the draws of `rng`."""
    paint = PAINTS[rng.randrange(len(PAINTS))]
    img, horizon = background(rng, rng.choice(("sky", "road", "showroom", "clutter")))
    if photo.framing == "closeup":
        return exterior_closeup(catalog, my, photo, rng, paint, img), None
    seed = catalog.config.seed
    if "clutter" in photo.conditions:
        draw_clutter(catalog, photo, img, horizon)
    marks = {} if "night" in photo.conditions else None
    layer = draw_layer(my, rng, photo.pose, paint, marks=marks)
    flip = rng.random() < 0.5
    if flip:
        layer = layer.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    angle = rng.uniform(-3, 3)
    target_w = W * rng.uniform(0.70, 0.92)
    if photo.framing == "small":
        target_w = small_width(seed, photo)
    k = min(target_w / layer.width, H * 0.85 / layer.height)
    size0 = layer.size
    # shrink first, then rotate the small layer: rotating the 2x layer costs more than the whole photo
    layer = layer.resize((int(layer.width * k), int(layer.height * k)), Image.Resampling.BOX)
    size1 = layer.size
    layer = layer.rotate(angle, resample=Image.Resampling.BILINEAR, expand=True)
    tw, th = layer.size
    x = int(rng.uniform(0.02, 0.98) * (W - tw))
    ground = rng.uniform(max(horizon + 30, th * 0.95), H - 8)
    y = int(min(H - th, max(0, ground - th)))
    if photo.framing == "cut":
        x = cut_x(seed, photo, tw)
    img.paste(layer, (x, y), layer)
    return img, (place_lights(marks, size0, flip, size1, angle, (tw, th), (x, y)) if marks is not None else None)


def _render_non_car(my: ModelYear, rng: random.Random, subject: str) -> tuple[Image.Image, int]:
    """A non-car gallery image (carscope/showroom/non_car.py): photographic kinds get a photo's lighting and blur,
    graphics (logo, banner, map, brochure, ad) only a rare slight blur; the same JPEG qualities as photos."""
    img = draw_non_car(my, rng, subject)
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

    ap = argparse.ArgumentParser(description="write contact sheets of showroom photos")
    ap.add_argument("--out", default="showroom-sheet")
    ap.add_argument("--makes", type=int, default=3)
    ap.add_argument("--models-per-make", type=int, default=4)
    ap.add_argument("--years", default="2022-2023")
    ap.add_argument("--photos", type=int, default=6)
    ap.add_argument("--others", type=int, default=2, help="non-car images per model-year (non_car.py)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--format", choices=("jpg", "png"), default="jpg", help="of the sheets (png: lossless)")
    ap.add_argument("--by-model", action="store_true",
                    help="one sheet per model, a row per year (to compare generations and facelifts)")
    for name, default in REALISM_DEFAULTS.items():  # the realism options (SITE.md), as `carscope showroom` has them
        ap.add_argument(f"--{name}", type=type(default), default=None)
    ap.add_argument("--realistic", action="store_true", help=f"the preset {REALISTIC}")
    a = ap.parse_args(argv)
    options = dict(REALISTIC if a.realistic else {})
    options.update({k: getattr(a, k) for k in REALISM_DEFAULTS if getattr(a, k) is not None})
    cat = build_catalog(ShowroomConfig(makes=a.makes, models_per_make=a.models_per_make, years=a.years,
                                       photos=a.photos, others=a.others, seed=a.seed, **options))
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    if a.by_model:
        for model in cat.models:
            mys = [my for my in cat.model_years if my.model.slug == model.slug]
            photos = [p for my in mys for p in [q for q in my.photos if q.car][:a.photos]]
            contact_sheet(cat, photos, cols=a.photos).save(out / f"{model.make.slug}_{model.slug}.{a.format}", quality=85)
        print(f"wrote {len(cat.models)} sheets to {out}")
        return 0
    for my in cat.model_years:
        contact_sheet(cat, list(my.photos), cols=6).save(out / f"{my.model_id}.{a.format}", quality=85)
    print(f"wrote {len(cat.model_years)} sheets to {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(_main())
