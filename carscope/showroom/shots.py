"""What each car photo shows under the realism options (SITE.md "Realism options"): its pose (`views`), whether
it is a close-up of a part (`closeups`), and its framing and conditions (`conditions`). Decided in the catalog,
per photo id, from streams of their own, so a photo's draws never depend on another's and, with the options at
their defaults, every photo is what it was.

    python -c "from carscope.showroom.catalog import build_catalog; from carscope.showroom.config import ShowroomConfig, REALISTIC; \
print([(p.pose, p.framing, p.part, p.conditions) for p in list(build_catalog(ShowroomConfig(makes=1, **REALISTIC)).photos.values())[:8]])"

render.py draws what is decided here (views.py: the straight front and rear views; conditions.py: framings,
conditions and close-ups).
"""

from __future__ import annotations

from dataclasses import replace

from carscope.showroom.vocab import seeded_rng

VIEW_WEIGHTS = {"front": 15, "rear": 15, "front34": 25, "rear34": 20, "side": 25}  # views="all", in percent
EXTERIOR_PARTS = ("wheel", "lamp", "grille", "badge")
INTERIOR_PARTS = {"screen": ("dash", "console"), "steering": ("dash",), "seat": ("seats",)}  # part -> poses showing it
FRAMINGS = ("cut", "small")  # at most one per photo
CONDITIONS = ("clutter", "night", "rain", "blur", "jpeg")
PART_NAMES = EXTERIOR_PARTS + tuple(INTERIOR_PARTS)


def plan_photo(config, photo):
    """The photo with its pose, framing, part and conditions as the config's realism options decide (the photo
    itself when they are at their defaults)."""
    if not photo.car:
        return photo
    seed, pid = config.seed, photo.id
    changes = {}
    if photo.view == "exterior" and config.views == "all":
        r = seeded_rng(seed, "pose", pid)
        changes["pose"] = r.choices(list(VIEW_WEIGHTS), weights=list(VIEW_WEIGHTS.values()))[0]
    pose = changes.get("pose", photo.pose)
    if config.closeups and seeded_rng(seed, "closeup", pid).random() < config.closeups:
        r = seeded_rng(seed, "closeup-part", pid)
        if photo.view == "interior":
            part = r.choice(tuple(INTERIOR_PARTS))
            poses = INTERIOR_PARTS[part]
            changes["pose"] = pose if pose in poses else r.choice(poses)
        else:
            part = r.choice(EXTERIOR_PARTS)
            changes["pose"] = _closeup_pose(r, part, pose, config.views)
        changes.update(framing="closeup", part=part)
    elif (photo.view == "exterior" and config.conditions
          and seeded_rng(seed, "conditions", pid).random() < config.conditions):
        r = seeded_rng(seed, "condition-names", pid)
        names = r.sample(FRAMINGS + CONDITIONS, r.choice((1, 1, 2)))
        if all(n in FRAMINGS for n in names):  # cut and small both: keep one
            names = names[:1]
        changes["framing"] = next((n for n in names if n in FRAMINGS), "full")
        changes["conditions"] = tuple(n for n in CONDITIONS if n in names)  # in a fixed order
    return replace(photo, **changes) if changes else photo


def _closeup_pose(r, part: str, pose: str, views: str) -> str:
    """The pose a close-up is cropped from: one that shows the part (a wheel any side or three-quarter view; a lamp
    or the grille the front; a badge the front or the rear), straight on where the views allow it."""
    if part == "wheel":
        return pose if pose in ("side", "front34", "rear34") else "side"
    straight = views == "all"
    if part == "badge" and r.random() < 0.4:
        return "rear" if straight else "rear34"
    return "front" if straight else "front34"
