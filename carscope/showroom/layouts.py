"""The markup families ("layouts") one catalog can be served in (`carscope showroom --layout NAME`).

    python -c "from carscope.showroom.layouts import layout_module; print(layout_module('dl').model_year_pages)"

Each layout is a module `showroom.layout_<name>` (URL map and page shapes: carscope/showroom/SITE.md). The catalog,
the photo bytes and the faults are the same in every layout; only URLs and markup differ. A layout module has:

    THUMBNAILS                      True where its pages show a thumbnail of each photo (truth `thumb_url`)
    add_routes(router)              registers its pages (server.py keeps the shared routes: robots.txt,
                                    /sitemap.xml, /compare, /redirect, /static, /__truth.json, /__stats)
    photo_url(photo, width, cdn)    the URL serving that photo's bytes at width 640 (full size) or 320
    model_year_pages(catalog, my)   {"specs": path of the page with its specs, "photos": ... with its photos}
    layout_specs(catalog, my)       [[key, value], ...] as its page shows them, in page order (or None)
    sitemap_paths(catalog)          the model-year pages its sitemap lists
    compare_id(catalog, my)         how its /compare trap links name a model-year
"""

from __future__ import annotations

import importlib

from carscope.common.errors import CarscopeError
from carscope.showroom.config import LAYOUTS


def layout_module(name: str):
    """`"dl"` -> the module `showroom.layout_dl` (imported on first use)."""
    if name not in LAYOUTS:
        raise CarscopeError(f"--layout must be one of {', '.join(LAYOUTS)}, not '{name}'")
    return importlib.import_module(f"carscope.showroom.layout_{name}")
