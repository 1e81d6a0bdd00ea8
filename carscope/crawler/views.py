"""The view vocabulary: which words name an exterior or an interior photo, in one place.

    python -c "from carscope.crawler.views import normalize_view; print(normalize_view('Cabin'), normalize_view('side'))"

Three readers, three lists, on purpose:
- `VIEW_NAMES`: a whole label a page or a hook gives (`data-view="ext"`, a tab named "Cabin"), read by
  `normalize_view` and by photo sources before they look at single words;
- `DEFAULT_VIEW_WORDS`: single words inside a longer text (a class, an alt text, a caption), the defaults of a
  photo source's `view_words` (carscope/crawler/extract/photos.py), which an adapter may add to;
- `IMPORT_VIEW_WORDS`: a folder name or a manifest's view column in `carscope dataset import`
  (carscope/crawler/sources.py), where "unknown" is a valid answer and words are not guessed.
Anything else is `unknown`: a view is never guessed from pixels.
"""

from __future__ import annotations

VIEW_NAMES = {"exterior": "exterior", "interior": "interior", "ext": "exterior", "int": "interior",
              "outside": "exterior", "inside": "interior", "cabin": "interior"}
DEFAULT_VIEW_WORDS = {
    "exterior": ("exterior", "exteriors", "ext", "outside", "outer", "exterieur", "aussen"),
    "interior": ("interior", "interiors", "int", "inside", "cabin", "cockpit", "dashboard", "innenraum",
                 "interieur"),
}
# A folder named "cabin" stays part of a class path: only the plain words name a view folder
IMPORT_VIEW_WORDS = {**{w: v for w, v in VIEW_NAMES.items() if w != "cabin"}, "unknown": "unknown"}


def normalize_view(value: str | None) -> str:
    """A page's view label -> exterior / interior / unknown (never guessed from pixels)."""
    if not value:
        return "unknown"
    return VIEW_NAMES.get(str(value).strip().lower(), "unknown")
