"""A model's looks over its years: the yearly look of the default catalog, generations with a facelift at their
midpoint (`ShowroomConfig.generations`), and badge-engineered twins of another make's model (`twins`).

    python -c "from carscope.showroom.catalog import build_catalog; from carscope.showroom.config import ShowroomConfig; \
c = build_catalog(ShowroomConfig(makes=1, years=(2015, 2023), generations=4)); \
print([(my.year, my.generation['look']) for my in c.model_years[:9]])"

A look is a model-year's `facelift` dict (vocab.LOOK: wheel, rim, lamp graphics, grille pattern, lower trim,
contrasting roof). Without generations every model-year has its own look and consecutive years differ in every
element. With generations of N years, a model's years fall into generations (the first one starts at a seeded
offset, so models do not all change in the same year); the model-years of one generation and phase (before or
after the facelift at its midpoint) share the very same dict; a facelift changes two or three elements, a new
generation every element and, a little, the proportions the drawing uses. A twin takes its donor's body,
proportions and looks (the same dicts); its make's design language (grille shape, badge, lamps, stripe...) stays
its own. Specs are the catalog's business: they follow the model's body as before.
"""

from __future__ import annotations

from dataclasses import replace

from carscope.showroom.vocab import (
    GRILLE_PATTERNS,
    LAMP_VARIANTS,
    LOOK,
    RIM_FINISHES,
    WHEEL_STYLES,
    seeded_rng,
)

ELEMENTS = tuple(LOOK)  # wheel, lamp_variant, grille_pattern, lower_trim, rim, two_tone_roof


def yearly_look(seed: int, make_index: int, j: int, year_index: int) -> dict:
    """What changes from one model year to the next: wheels and their finish, a contrasting roof, lamps, grille
    pattern, lower trim. Each must survive a 128-pixel thumbnail, so the rim finish and the roof are big."""
    base = seeded_rng(seed, "facelift-base", make_index, j)
    w0, l0, g0 = base.randrange(len(WHEEL_STYLES)), base.randrange(len(LAMP_VARIANTS)), base.randrange(len(GRILLE_PATTERNS))
    # step through each vocabulary so that consecutive years always differ in every element
    return {
        "wheel": WHEEL_STYLES[(w0 + year_index) % len(WHEEL_STYLES)],
        "lamp_variant": LAMP_VARIANTS[(l0 + year_index) % len(LAMP_VARIANTS)],
        "grille_pattern": GRILLE_PATTERNS[(g0 + year_index) % len(GRILLE_PATTERNS)],
        "lower_trim": ("black", "chrome", "body")[(base.randrange(3) + year_index) % 3],
        "rim": RIM_FINISHES[(base.randrange(3) + year_index) % 3],
        "two_tone_roof": (base.randrange(2) + year_index) % 2 == 1,
    }


def twin_models(config, models: list) -> tuple[list, dict]:
    """(models with the twins' body and proportions replaced by their donors', {(make index, model index): donor}).

    round(twins x models) models (at least one when twins > 0), picked by hash among the models of the second
    make on; each one's donor is a model of an earlier make that is not a twin itself."""
    eligible = [md for md in models if md.make.index > 0]
    if not config.twins or not eligible:
        return models, {}
    n = min(len(eligible), max(1, round(config.twins * len(models))))
    picked = sorted(eligible, key=lambda md: seeded_rng(config.seed, "twin", md.make.index, md.index).random())[:n]
    keys = {(md.make.index, md.index) for md in picked}
    donors, out = {}, []
    for md in models:
        key = (md.make.index, md.index)
        if key in keys:
            pool = [d for d in out if d.make.index < md.make.index and (d.make.index, d.index) not in donors]
            donor = seeded_rng(config.seed, "twin-donor", *key).choice(pool)
            donors[key] = donor
            md = replace(md, body=donor.body, proportions=donor.proportions)
        out.append(md)
    return out, donors


def twin_slug(donors: dict, model) -> str | None:
    """A twin's `twin_of`: its donor's "make-slug/model-slug"; None for any other model."""
    donor = donors.get((model.make.index, model.index))
    return f"{donor.make.slug}/{donor.slug}" if donor else None


def model_years_looks(config, models: list, donors: dict) -> dict:
    """{(make index, model index, year index): (facelift, generation or None, proportions or {})} for every
    model-year, or {} when neither generations nor twins are on (the catalog then draws yearly looks itself).
    `generation` None: the model-year is a generation of its own; proportions {}: the model's."""
    if not config.generations and not donors:
        return {}
    n_years = len(config.year_list)
    plans, out = {}, {}
    for md in models:
        src = donors.get((md.make.index, md.index), md)  # a twin shows its donor's looks: the same dicts
        skey = (src.make.index, src.index)
        if skey not in plans:
            plans[skey] = (_generations(config, src, n_years) if config.generations else
                           [(yearly_look(config.seed, *skey, yi), None, {}) for yi in range(n_years)])
        for yi, (look, gen, shape) in enumerate(plans[skey]):
            if gen is not None:  # the look id names the model: a twin's badge makes its look its own
                gen = dict(gen, look=f"{md.make.slug}/{md.slug}/{gen['name']}-{gen['phase']}")
            out[(md.make.index, md.index, yi)] = (look, gen, shape)
    return out


def _generations(config, model, n_years: int) -> list[tuple[dict, dict, dict]]:
    """Per year index: (facelift, generation, proportions) of a model whose generations last N years."""
    n, seed, mi, j = config.generations, config.seed, model.make.index, model.index
    offset = seeded_rng(seed, "generation-offset", mi, j).randrange(n)  # years of the first one before the catalog
    y0, y1 = config.years
    looks, shapes, prev = [], [], None
    for g in range((n_years - 1 + offset) // n + 1):
        r = seeded_rng(seed, "generation-look", mi, j, g)
        early = {k: _other(r, LOOK[k], prev[k] if prev else None) for k in ELEMENTS}  # all new
        late = dict(early)
        for k in r.sample(ELEMENTS, r.randint(2, 3)):  # the facelift: two or three elements
            late[k] = _other(r, LOOK[k], early[k])
        looks.append((early, late))
        prev = late
        shapes.append(dict(model.proportions) if g == 0 else _next_shape(r, shapes[-1]))
    out = []
    for yi in range(n_years):
        g, within = divmod(yi + offset, n)
        phase = "facelift" if n >= 2 and within >= (n + 1) // 2 else "early"
        first = y0 + g * n - offset
        gen = {"index": g, "name": f"G{g + 1}", "phase": phase, "years": [max(y0, first), min(y1, first + n - 1)]}
        out.append((looks[g][phase == "facelift"], gen, shapes[g]))
    return out


def _other(r, vocab, current):
    """A value of vocab other than current (any value when current is None)."""
    return r.choice([v for v in vocab if v != current] if current is not None else list(vocab))


def _next_shape(r, shape: dict) -> dict:
    """A new generation's proportions: the same car, a little taller or lower, longer or shorter in the wheelbase."""
    def step(lo, hi):
        return r.choice((-1, 1)) * r.uniform(lo, hi)
    out = dict(shape)
    out["h_ratio"] = shape["h_ratio"] * (1 + step(0.025, 0.05))
    out["wheelbase"] = min(0.66, max(0.56, shape["wheelbase"] + step(0.01, 0.02)))
    out["nose"] = min(1.15, max(0.85, shape["nose"] + step(0.03, 0.06)))
    out["roof_len"] = min(1.15, max(0.85, shape["roof_len"] + step(0.03, 0.06)))
    return out
