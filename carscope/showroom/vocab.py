"""The design vocabularies the catalog draws a make's design language and a model-year's look from, and the seeded
RNG every draw of the showroom comes from. Apart from catalog.py so that the modules the catalog calls
(generations.py, shots.py) share them without importing the catalog.

    python -c "from carscope.showroom.vocab import seeded_rng, WHEEL_STYLES; print(seeded_rng(0, 'x').choice(WHEEL_STYLES))"
"""

from __future__ import annotations

import hashlib
import random

# A make's design language: a make picks one of each; models of a make share them.
GRILLE_SHAPES = ("wide", "hex", "kidney", "shield", "slot", "oval", "trapezoid")
LAMP_SHAPES = ("round", "rect", "slit", "boomerang", "oval", "triangle")
BADGE_SHAPES = ("circle", "diamond", "shield", "triangle", "square", "star")
STRIPES = ("belt", "single", "double", "sill", "swoosh", "gills")  # every make carries one: its biggest signature
ARCHES = ("round", "flat", "clad")
WINDOW_TRIMS = ("chrome", "black")
SCREENS = ("landscape", "portrait", "twin", "floating")
WHEEL_SPOKES = (2, 3, 4)
VENTS = ("round", "slot", "square")
QUILTS = ("plain", "hstripes", "diamond", "vstripes")

# A model-year's look (its `facelift` dict): what changes from one year, facelift or generation to the next.
WHEEL_STYLES = ("spoke5", "spoke10", "disc", "turbine", "split", "mesh")
RIM_FINISHES = ("silver", "black", "bronze")
GRILLE_PATTERNS = ("hbars", "vbars", "mesh", "dots", "solid")
LAMP_VARIANTS = ("plain", "drl", "double", "hollow")
LOWER_TRIMS = ("black", "chrome", "body")
LOOK = {  # facelift key -> its vocabulary
    "wheel": WHEEL_STYLES, "lamp_variant": LAMP_VARIANTS, "grille_pattern": GRILLE_PATTERNS,
    "lower_trim": LOWER_TRIMS, "rim": RIM_FINISHES, "two_tone_roof": (False, True),
}

ACCENTS = [  # badge/stripe/mirror colours: a make's signature, ordered so that neighbours differ most
    (200, 30, 40), (30, 110, 220), (230, 190, 30), (40, 170, 90), (150, 60, 210), (20, 200, 210),
    (235, 110, 20), (225, 225, 230), (30, 30, 35), (170, 130, 70),
]


def seeded_rng(*parts) -> random.Random:
    """A `random.Random` of its own for (seed, what, which, ...): one entity's draws never depend on another's."""
    h = hashlib.sha256("|".join(map(str, parts)).encode()).digest()
    return random.Random(int.from_bytes(h[:8], "big"))
