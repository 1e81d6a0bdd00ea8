"""The export's thumbnail stage: a few small train-split photos per served class and view, for the result page.

    python -c "from carscope.export.thumbs import THUMB_SIZE, safe_name; print(THUMB_SIZE, safe_name('a b/c'))"

Written under the bundle's thumbs/<model_id>/<view>_<n>.jpg; `write_thumbs` returns the mapping bundle.json
records ({model_id: {view: [paths]}}).
"""

from __future__ import annotations

from pathlib import Path

THUMB_SIZE = 192  # longest side, px: the result page shows them small
THUMBS_MAX = 20_000  # thumbnails in a bundle at most, but always one exterior photo per class (thumb_plan)


def thumb_plan(n_classes: int, per_view: int, cap: int = THUMBS_MAX) -> tuple[int, tuple[str, ...]]:
    """Thumbnails per class and view, and the views, so that a bundle holds at most `cap` of them: `per_view` of
    both views while they fit; fewer per view as the classes grow; past cap / 2 classes, one exterior photo each
    (19,000 classes: 19,000 thumbnails, about 80 MB, instead of 90,000 and 350 MB)."""
    if per_view <= 0 or n_classes <= 0:
        return 0, ()
    if 2 * n_classes * per_view <= cap:
        return per_view, ("exterior", "interior")
    if 2 * n_classes <= cap:
        return max(1, cap // (2 * n_classes)), ("exterior", "interior")
    return 1, ("exterior",)


def write_thumbs(photos: dict, dataset, tmp: Path, view_entry: dict, view_state: dict, served: list[str],
                 per_view: int, cap: int = THUMBS_MAX) -> dict:
    """A few small train-split photos per served class and view, at most `cap` in all (thumb_plan).

    Candidates are the train splits of both runs: the model run trains on exterior photos only, so interior
    ones come from the view run's split, their model-year from the dataset. The view is the page's hint;
    photos from mixed, unlabelled galleries are sorted by the exported view model (`view_entry`, already in
    `tmp`)."""
    import numpy as np
    import pandas as pd

    from carscope.export.onnx_export import INPUT_NAME, cpu_session
    from carscope.export.photos import batches, open_rgb

    per_view, views = thumb_plan(len(served), per_view, cap)
    if per_view <= 0:
        return {}
    images = dataset.images.drop_duplicates("sha256")
    model_of = dict(zip(images["sha256"].astype(str), images["model_id"].astype(str), strict=True))
    hint_of = dict(zip(images["sha256"].astype(str), images["view_hint"].astype(str), strict=True))
    cand = pd.concat([photos["model"]["train"][["sha256", "file"]], photos["view"]["train"][["sha256", "file"]]])
    cand = cand.assign(sha256=cand["sha256"].astype(str)).drop_duplicates("sha256").sort_values("sha256")
    cand = cand.assign(model_id=cand["sha256"].map(model_of), view=cand["sha256"].map(hint_of).fillna("unknown"))
    cand = cand[cand["model_id"].isin(set(served))].reset_index(drop=True)
    unsure = []
    for _, group in cand.groupby("model_id", sort=True):
        counts = group["view"].value_counts()
        if min(counts.get(view, 0) for view in views) < per_view:
            unsure.append(group[group["view"] == "unknown"].head(4 * per_view))
    unknown = pd.concat(unsure) if unsure else cand.iloc[:0]
    if len(unknown):
        session = cpu_session(tmp / view_entry["file"], threads=_threads())
        logits = np.concatenate([session.run(None, {INPUT_NAME: x})[0]
                                 for x in batches(unknown["file"].tolist(), view_state["preprocess"])])
        cand.loc[unknown.index, "view"] = [view_entry["labels"][i] for i in logits.argmax(axis=1)]
    thumbs: dict[str, dict[str, list[str]]] = {}
    for label, group in cand.groupby("model_id", sort=True):
        folder = safe_name(str(label))
        for view in views:
            for n, f in enumerate(group.loc[group["view"] == view, "file"].head(per_view)):
                rel = f"thumbs/{folder}/{view}_{n}.jpg"
                (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
                im = open_rgb(f)
                im.thumbnail((THUMB_SIZE, THUMB_SIZE))
                im.save(tmp / rel, "JPEG", quality=82, optimize=True)
                thumbs.setdefault(str(label), {}).setdefault(view, []).append(rel)
    return thumbs


def _threads() -> int:
    """onnxruntime gets the thread budget torch was given (set once by the caller: CLI default or a test)."""
    import torch

    return torch.get_num_threads()


def safe_name(label: str) -> str:
    """A label as a folder name: model_ids are slugs already; anything else is slugified (never a path)."""
    from carscope.crawler.dataset import slugify

    if label and all(c.isalnum() or c in "_-" for c in label):
        return label
    return slugify(label) or "label"
