"""The ground truth of a served showroom (SITE.md, `/__truth.json`): its catalog as the site's layout shows it.

    python -c "from carscope.showroom.catalog import build_catalog; from carscope.showroom.config import ShowroomConfig; \
from carscope.showroom.truth import truth; print(truth(build_catalog(ShowroomConfig(makes=1)))['model_years'][0])"

Apart from the catalog because it reads the layouts (each layout's URLs and page shapes), and the layouts read
the catalog.
"""

from __future__ import annotations

from carscope.showroom.catalog import Catalog, Photo
from carscope.showroom.config import HEIGHTS
from carscope.showroom.layouts import layout_module


def truth(catalog: Catalog, sha256: dict[str, str] | None = None) -> dict:
    """The ground truth (SITE.md `/__truth.json`) of the site the catalog's config serves (its `layout`).
    `sha256`: photo id -> sha256 of its 640 bytes, if known."""
    cfg = catalog.config
    lay = layout_module(cfg.layout)
    return {
        "config": cfg.to_dict(),
        "site_layout": cfg.layout,
        "image_size": {str(w): [w, HEIGHTS[w]] for w in HEIGHTS},
        "makes": [{"name": m.name, "slug": m.slug, "url": f"/make/{m.slug}", "design": _jsonable(m.design)}
                  for m in catalog.makes],
        "models": [{"make": md.make.name, "model": md.name, "slug": md.slug, "body": md.body,
                    "years": cfg.year_list} for md in catalog.models],
        "years": cfg.year_list,
        "model_years": [{
            "model_id": my.model_id, "make": my.make.name, "model": my.model.name, "year": my.year,
            "body": my.model.body, "layout": my.layout, "facelift": my.facelift,
            "overview_url": f"{my.path}/overview", "specifications_url": f"{my.path}/specifications",
            "photos_url": f"{my.path}/photos", "gallery_url": f"/api/gallery/{my.make.slug}/{my.model.slug}/{my.year}.json",
            "specs": dict(my.specs),
            "pages": lay.model_year_pages(catalog, my),
            "values": dict(my.values),
            "layout_specs": lay.layout_specs(catalog, my),
            "generation": my.generation, "twin_of": my.twin_of,
        } for my in catalog.model_years],
        "photos": [_photo_truth(lay, p, sha256) for my in catalog.model_years for p in my.photos],
    }


def _photo_truth(lay, p: Photo, sha256: dict[str, str] | None) -> dict:
    """One photo's truth; its URLs in the layout's URL scheme (classic: /photos/<id>-640.jpg)."""
    url = lay.photo_url
    d = {
        "id": p.id, "model_id": p.model_id, "view": p.view, "pose": p.pose, "subject": p.subject, "car": p.car,
        "url": url(p, 640), "url_320": url(p, 320),
        "urls": [url(p, 640)] + ([url(p, 640, cdn=True)] if p.dup else []),
        "dup_urls": [url(p, 640, cdn=True), url(p, 320, cdn=True)] if p.dup else [],
        "corrupt": p.corrupt,
        "framing": p.framing, "part": p.part, "conditions": list(p.conditions),
        "sha256": (sha256 or {}).get(p.id),
    }
    if lay.THUMBNAILS:
        d["thumb_url"] = url(p, 320)
    return d


def _jsonable(d: dict) -> dict:
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in d.items()}
