"""`carscope bench ood`: how well a bundle refuses photos that are not car photos like its training photos.

    carscope bench ood --bundle demo-work/bundle --out benchmarks/results/mine

In distribution: the model run's held-out test photos (exterior, from the bundle's dataset). Out of distribution:
- showroom negatives: the showroom's non-car images (logos, banners, portraits, maps, brochure pages, ads, badge
  and wheel close-ups), rendered from a seed no training run saw;
- synthetic frames: blank, noise, gradients, shapes, textures, documents, tilings (carscope/train/negatives.py, seeds
  that neither training nor export draws);
- real photos an installed package ships: scikit-image's `skimage.data` (a person, a cat, coffee, a rocket, a
  motorcycle, ...), when scikit-image is installed;
- unknown cars: exterior car photos of a showroom of another seed (`--unknown-cars`), makes and models the bundle
  does not hold: car photos like the training ones, that no answer should name.
Every photo goes through serve's Predictor as an upload would (decode, preprocess, batched ONNX). Reported, in one
run: each score's AUROC and false-positive rate at 95% true positives (the max-softmax baseline, the bundle's OOD
score, both methods refitted on the run's train features, the view classifier's p(other)); the coverage and
accuracy of `sure` answers under each rule (before this change: confidence alone; the `other` class alone; the
OOD score alone; both checks at a model-year's confidence; as served: any level, after the unknown-model check); what the score costs at the seed's scale; and the request latency with and
without the OOD check, interleaved.
"""

from __future__ import annotations

import io
import json
import shutil
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from carscope.benchmarks.common import describe_code, percentiles, time_calls

SYNTHETIC_SEED = 2_000_000_011  # neither train (seed x 1,000,003 + i) nor export (1,000,000,007 + i) draws these
SYNTHETIC_FAMILIES = ("flat", "noise", "gradient", "shapes", "fractal", "document", "tiling")
SHOWROOM_SEED = 90_210
UNKNOWN_CARS_SEED = 90_211  # the unknown cars: a showroom no training run or other set of this benchmark uses
SKIMAGE_PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "stereo_motorcycle", "hubble_deep_field", "retina",
                  "coins", "grass", "gravel", "brick", "moon", "horse", "clock", "page", "logo", "colorwheel",
                  "camera", "text", "cell", "immunohistochemistry")
POLICIES = ("before", "other_only", "score_only", "both", "served")


def add_arguments(p) -> None:
    p.add_argument("--bundle", required=True, help="the bundle to measure (from `carscope export`)")
    p.add_argument("--synthetic", type=int, default=140, help="synthetic frames (default: %(default)s)")
    p.add_argument("--showroom-negatives", type=int, default=96,
                   help="showroom non-car images (default: %(default)s)")
    p.add_argument("--unknown-cars", type=int, default=72,
                   help="exterior photos of cars the bundle does not know: another seed's showroom, whose makes and "
                        "models took no part in training (default: %(default)s)")
    p.add_argument("--latency-rounds", type=int, default=150,
                   help="batch-1 requests per bundle for the latency comparison (default: %(default)s)")


def _jpeg(img, quality: int = 90) -> bytes:
    buf = io.BytesIO()
    img.convert("RGB").save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def _say(msg: str) -> None:
    print(f"bench ood: {msg}", flush=True)


def _id_photos(bundle) -> tuple[list[str], list[int], dict[str, Any]]:
    """The model run's test split (files, targets) and its train/val splits, resolved in the bundle's dataset."""
    from carscope.common.errors import CarscopeError
    from carscope.crawler import dataset as dsmod
    from carscope.export.photos import read_splits, split_photos

    src = bundle.meta["models"]["model"].get("source", {})
    data = bundle.meta.get("source", {}).get("data")
    if not src.get("splits") or not data or not Path(src["splits"]).is_file() or not Path(data).is_dir():
        raise CarscopeError(f"bundle {bundle.root} does not name a readable model run and dataset (bundle.json "
                            "source); bench ood needs the run's held-out photos")
    ds = dsmod.load(data)
    splits = read_splits(src["splits"])
    labels = bundle.models["model"].labels
    parts = {s: split_photos(src["splits"], ds, s, labels, splits) for s in ("train", "val", "test")}
    return parts["test"]["file"].tolist(), parts["test"]["target"].tolist(), parts


def _ood_sets(n_synthetic: int, n_showroom: int, n_unknown_cars: int = 0
              ) -> tuple[dict[str, list[tuple[str, bytes]]], dict[str, Any]]:
    """name -> [(what, JPEG bytes)] for every out-of-distribution set; and notes on what was left out."""
    from PIL import Image

    from carscope.train.negatives import draw_negative

    notes: dict[str, Any] = {}
    sets: dict[str, list[tuple[str, bytes]]] = {}
    sets["synthetic"] = [(SYNTHETIC_FAMILIES[i % len(SYNTHETIC_FAMILIES)],
                          _jpeg(draw_negative(SYNTHETIC_SEED + i, 256,
                                              family=SYNTHETIC_FAMILIES[i % len(SYNTHETIC_FAMILIES)])))
                         for i in range(n_synthetic)]
    shown = _showroom_negatives(n_showroom)
    if shown:
        sets["showroom_negatives"] = shown
    else:
        notes["showroom_negatives"] = "this showroom draws no non-car images"
    cars = _unknown_cars(n_unknown_cars)
    if cars:
        sets["unknown_cars"] = cars
        notes["unknown_cars"] = (f"exterior photos of a showroom of seed {UNKNOWN_CARS_SEED}: makes and models no "
                                 "training showroom holds; every answer naming one is wrong")
    try:
        import numpy as np
        import skimage
        import skimage.data as sd
    except ImportError:
        notes["real_photos"] = "scikit-image is not installed (pip install scikit-image): left out"
    else:
        real = []
        for name in SKIMAGE_PHOTOS:
            try:
                a = getattr(sd, name)()
                a = np.asarray(a[0] if isinstance(a, tuple) else a)  # stereo_motorcycle: (left, right, disparity)
            except Exception:  # some need a download (pooch): not available offline
                continue
            if a.ndim not in (2, 3) or min(a.shape[:2]) < 16:  # a stack or a tiny sample: not a photo
                continue
            if a.ndim == 2:
                a = np.stack([a] * 3, axis=-1)
            a = a[..., :3]
            if a.dtype != np.uint8:
                a = a.astype(np.float64)
                a = (255 * (a - a.min()) / max(float(a.max() - a.min()), 1e-9)).astype(np.uint8)
            real.append((name, _jpeg(Image.fromarray(a))))
        sets["real_photos"] = real
        notes["real_photos"] = f"skimage.data of scikit-image {skimage.__version__}: {len(real)} photos"
    return sets, notes


def _showroom_negatives(n: int) -> list[tuple[str, bytes]]:
    """The showroom's non-car images from a catalog seeded apart from any training showroom."""
    import itertools

    from carscope.showroom.config import ShowroomConfig
    from carscope.showroom.offline import non_car_images

    if n <= 0:
        return []
    config = ShowroomConfig(makes=4, models_per_make=2, years=(2023, 2023), photos=3, seed=SHOWROOM_SEED,
                            others=max(1, -(-n // 8)))
    return list(itertools.islice(non_car_images(config), n))


def _unknown_cars(n: int) -> list[tuple[str, bytes]]:
    """Exterior car photos of a showroom (the demo's size and renderer) of a seed no training showroom uses."""
    from carscope.showroom.catalog import build_catalog
    from carscope.showroom.config import ShowroomConfig
    from carscope.showroom.render import render_dataset_photo

    if n <= 0:
        return []
    config = ShowroomConfig(makes=6, models_per_make=4, years=(2023, 2023), photos=max(1, -(-n // 24)), others=0,
                            seed=UNKNOWN_CARS_SEED, mixed_fraction=0.0)
    catalog = build_catalog(config)
    photos = [p for my in catalog.model_years for p in my.photos if p.car and p.view == "exterior"][:n]
    return [(f"{catalog.by_model_id[p.model_id].make.name} {catalog.by_model_id[p.model_id].model.name}",
             render_dataset_photo(catalog, p, 640)) for p in photos]


def _predict_all(predictor, items: list[bytes]) -> list[dict[str, Any]]:
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(8) as pool:  # batches form as they would under load; answers are per photo
        return list(pool.map(predictor.predict, items))


def _policy_sure(r: dict[str, Any], policy: str, min_conf: float) -> bool:
    """Would a rule have answered `sure`? before: the calibrated confidence alone (serve before the OOD check)."""
    confident = r["model"]["top"][0]["confidence"] >= min_conf
    if policy == "before":
        return confident
    interior = r["view"]["interior"]
    other = r["view"].get("not_a_car", False)
    unfamiliar = bool(r["ood"].get("unfamiliar"))
    if policy == "other_only":
        return confident and not interior and not other
    if policy == "score_only":
        return confident and not interior and not unfamiliar
    if policy == "both":
        return confident and not interior and not other and not unfamiliar
    return bool(r["model"]["sure"])  # served: at any level, after the unknown-model check too


def run(args, out_dir) -> tuple[dict[str, Any], str]:
    import numpy as np

    from carscope.common.errors import CarscopeError
    from carscope.export import ood as oodmod
    from carscope.export.bundle import OTHER_LABEL
    from carscope.export.bundle import load as load_bundle
    from carscope.export.onnx_export import cpu_session, run_all
    from carscope.export.parity import softmax
    from carscope.export.photos import batches, image_batches
    from carscope.serve.config import ServeConfig
    from carscope.serve.predictor import Predictor

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    bundle = load_bundle(args.bundle)
    if not bundle.models["model"].ood:
        raise CarscopeError(f"bundle {args.bundle} has no OOD check (exported before it, or with --ood none)")
    files, targets, parts = _id_photos(bundle)
    _say(f"{len(files)} in-distribution test photos; drawing the out-of-distribution sets")
    sets, notes = _ood_sets(args.synthetic, args.showroom_negatives, getattr(args, "unknown_cars", 0))
    config = ServeConfig(background_load=False)
    predictor = Predictor(args.bundle, config)
    predictor.start()
    try:
        _say("answering every photo through serve's Predictor")
        answers = {"id_test": _predict_all(predictor, [Path(f).read_bytes() for f in files])}
        for name, items in sets.items():
            answers[name] = _predict_all(predictor, [b for _, b in items])
        served = {"variant": predictor.engine.variants.get("model"), "threshold": predictor.ood_threshold(),
                  "method": bundle.models["model"].ood["method"], "min_confidence": config.min_confidence}
    finally:
        predictor.close()

    # -- the scores, each on the same photos (fp32 ONNX features, export's preprocessing) ----------------------
    _say("fitting both OOD methods on the run's train features and scoring every set")
    entry = bundle.models["model"]
    spec = entry.input_spec
    session = cpu_session(entry.path("fp32"))
    train_f = run_all(session, batches(parts["train"]["file"].tolist(), spec))[1]
    val_f = run_all(session, batches(parts["val"]["file"].tolist() or files, spec))[1]
    from PIL import Image

    feats = {"id_test": run_all(session, batches(files, spec))}
    for name, items in sets.items():
        feats[name] = run_all(session, image_batches([Image.open(io.BytesIO(b)) for _, b in items], spec))
    scorers = {"mahalanobis": oodmod.fit("mahalanobis", train_f, parts["train"]["target"].to_numpy()),
               "knn": oodmod.fit("knn", train_f, parts["train"]["target"].to_numpy())}
    temperature = entry.temperature

    def msp(logits):  # the max-softmax baseline, as an OOD score (larger: less sure)
        return 1.0 - softmax(logits, temperature).max(axis=1)

    score_sets: dict[str, dict[str, np.ndarray]] = {}
    for name, (logits, f) in feats.items():
        score_sets[name] = {"max_softmax": msp(logits), **{m: s.score(f) for m, s in scorers.items()},
                            "view_p_other": np.array([a["view"]["probabilities"].get(OTHER_LABEL, 0.0)
                                                      for a in answers[name]]),
                            "served": np.array([a["ood"]["score"] for a in answers[name]], dtype=np.float64)}
    thresholds = {m: oodmod.threshold_at(s.score(val_f), bundle.models["model"].ood.get("tpr", 0.95))
                  for m, s in scorers.items()}
    scores: dict[str, dict[str, Any]] = {}
    for name in sets:
        scores[name] = {}
        for kind, values in score_sets[name].items():
            ref = score_sets["id_test"][kind]
            scores[name][kind] = {"auroc": round(oodmod.auroc(ref, values), 4),
                                  "fpr_at_95_tpr": round(oodmod.fpr_at_tpr(ref, values, 0.95), 4)}
    methods_flagged = {m: {name: round(float((score_sets[name][m] > thresholds[m]).mean()), 4)
                           for name in score_sets} for m in scorers}

    # -- the answers under each rule ----------------------------------------------------------------------------
    min_conf = config.min_confidence
    rules: dict[str, dict[str, Any]] = {}
    for policy in POLICIES:
        row: dict[str, Any] = {}
        for name, res in answers.items():
            sure = np.array([_policy_sure(r, policy, min_conf) for r in res])
            row[name] = {"photos": len(res), "sure": int(sure.sum()), "sure_rate": round(float(sure.mean()), 4)}
            if name == "id_test":
                top1 = np.array([r["model"]["top"][0]["label"] for r in res])
                correct = top1 == np.array([entry.labels[t] for t in targets])
                row[name]["top1_all"] = round(float(correct.mean()), 4)
                row[name]["top1_among_sure"] = round(float(correct[sure].mean()), 4) if sure.any() else None
        rules[policy] = row
    reasons = {name: dict(sorted(Counter(r["model"]["reason"] or "sure" for r in res).items()))
               for name, res in answers.items()}
    per_photo = {name: [{"what": what, "sure": r["model"]["sure"], "reason": r["model"]["reason"],
                         "view": r["view"]["label"], "ood_score": round(r["ood"]["score"], 3),
                         "top1_confidence": round(r["model"]["top"][0]["confidence"], 4)}
                        for (what, _), r in zip(items, answers[name], strict=True)]
                 for name, items in sets.items() if name != "synthetic"}

    _say("the score's cost at the seed's scale")
    scale = _scale()
    _say("request latency with and without the OOD check (interleaved)")
    latency = _latency(args.bundle, Path(files[0]).read_bytes(), args.latency_rounds)
    result = {"bundle": str(Path(args.bundle).resolve()), "code": describe_code(), "served": served,
              "sets": {"id_test": len(files), **{n: len(v) for n, v in sets.items()}}, "notes": notes,
              "scores": scores, "method_thresholds": thresholds, "methods_flagged": methods_flagged,
              "rules": rules, "reasons": reasons, "per_photo": per_photo, "scale": scale, "latency": latency,
              "export_figures": bundle.models["model"].ood.get("figures", {}),
              "export_compared": bundle.models["model"].ood.get("compared", {})}
    _plots(score_sets, served, rules, out)
    return result, _markdown(result)


def _scale(dim: int = 2048, classes: int = 175, fit_rows: int = 4096, photos: int = 200_000) -> dict[str, Any]:
    """Bytes and batch-1 scoring time of both methods at the seed's scale (ResNet50's 2,048 features, 175
    classes, 200,000 training photos). Mahalanobis' cost does not depend on the photo count (it is fitted on
    `fit_rows` random features here: the fit's quality does not change the cost); knn's bank is capped."""
    import numpy as np

    from carscope.export import ood as oodmod

    rng = np.random.default_rng(0)
    x = rng.standard_normal((fit_rows, dim)).astype(np.float32)
    y = rng.integers(0, classes, fit_rows)
    one = rng.standard_normal((1, dim)).astype(np.float32)
    out: dict[str, Any] = {"dim": dim, "classes": classes, "train_photos": photos}
    maha = oodmod.fit("mahalanobis", x, y)
    bank_x = rng.standard_normal((oodmod.MAX_BANK, dim)).astype(np.float32)
    knn = oodmod.fit("knn", bank_x, rng.integers(0, classes, oodmod.MAX_BANK), max_bank=oodmod.MAX_BANK)
    for name, scorer in (("mahalanobis", maha), ("knn_capped", knn)):
        times = time_calls(lambda s=scorer: s.score(one), warmup=5, repeat=200)
        out[name] = {"bytes": scorer.nbytes, "mb": round(scorer.nbytes / 1e6, 2),
                     "score_ms_p50": round(percentiles(times)["p50_ms"], 4)}
    out["knn_capped"]["bank"] = oodmod.MAX_BANK
    full = photos * dim * 2
    out["knn_uncapped_arithmetic"] = {"bytes": full, "mb": round(full / 1e6, 1),
                                      "score_ms_estimate": round(out["knn_capped"]["score_ms_p50"] * photos
                                                                 / oodmod.MAX_BANK, 2)}
    return out


def _latency(bundle_dir: str, photo: bytes, rounds: int) -> dict[str, Any]:
    """Batch-1 request p50 of the bundle and of a copy of it without its OOD check, calls interleaved."""
    from carscope.serve.config import ServeConfig
    from carscope.serve.predictor import Predictor

    tmp = Path(tempfile.mkdtemp(prefix="carscope-bench-ood-"))
    try:
        plain = tmp / "bundle"
        shutil.copytree(bundle_dir, plain)
        meta = json.loads((plain / "bundle.json").read_text())
        meta["models"]["model"].pop("ood", None)
        (plain / "bundle.json").write_text(json.dumps(meta))
        # Both on the same plan for a lone batch: "auto" times the plans at warm-up, and two processes' worth of
        # sessions on 2 cores can pick differently, which would be measured instead of the OOD check.
        first = Predictor(bundle_dir, ServeConfig(background_load=False))
        first.start()
        plan = first.engine.alone_plan or "off"
        preds = {"with_ood": first, "without_ood": Predictor(plain, ServeConfig(background_load=False, alone=plan))}
        times: dict[str, list[float]] = {k: [] for k in preds}
        try:
            preds["without_ood"].start()
            for p in preds.values():
                for _ in range(5):
                    p.predict(photo)
            order = list(preds.items())
            for r in range(rounds):
                for k, p in (order if r % 2 == 0 else order[::-1]):  # who goes first alternates
                    t0 = time.perf_counter()
                    p.predict(photo)
                    times[k].append(time.perf_counter() - t0)
        finally:
            for p in preds.values():
                p.close()
        stats = {k: percentiles(v) for k, v in times.items()}
        ratio = stats["with_ood"]["p50_ms"] / stats["without_ood"]["p50_ms"]
        return {"rounds": rounds, "alone_plan": plan,
                **{k: {m: round(x, 3) for m, x in v.items()} for k, v in stats.items()}, "p50_ratio": round(ratio, 4)}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _plots(score_sets: dict[str, dict[str, Any]], served: dict[str, Any], rules: dict, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.2))
    all_scores = np.concatenate([s["served"] for s in score_sets.values()])
    lo, hi = max(float(all_scores.min()), 1e-3), float(all_scores.max())
    bins = np.geomspace(lo, hi * 1.01, 40)
    for name, s in score_sets.items():
        ax1.hist(np.maximum(s["served"], lo), bins=bins, alpha=0.55, label=f"{name} ({len(s['served'])})",
                 density=False)
    ax1.axvline(served["threshold"], color="k", ls="--", lw=1, label="threshold")
    ax1.set_xscale("log")
    from matplotlib.ticker import NullFormatter

    ax1.xaxis.set_minor_formatter(NullFormatter())
    ax1.set_xlabel(f"OOD score ({served['method']}, served {served['variant']})")
    ax1.set_ylabel("photos")
    ax1.legend(fontsize=8)
    names = list(next(iter(rules.values())))
    width = 0.8 / len(rules)
    for k, (policy, row) in enumerate(rules.items()):
        ax2.bar([i + k * width for i in range(len(names))], [row[n]["sure_rate"] for n in names], width, label=policy)
    ax2.set_xticks([i + width * (len(rules) - 1) / 2 for i in range(len(names))], names, fontsize=8)
    ax2.set_ylabel("share answered sure")
    ax2.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "ood_scores.png", dpi=110)
    plt.close(fig)


def _markdown(r: dict[str, Any]) -> str:
    code = r["code"]
    sv = r["served"]
    lines = ["# bench ood: photos that are not car photos like the training ones", "",
             f"Code at {(code['head'] or 'unknown')[:12]}{' (with uncommitted changes)' if code['uncommitted_changes'] else ''}; "
             f"bundle {r['bundle']}; served: {sv['method']} score on the {sv['variant']} graph, threshold "
             f"{sv['threshold']:.4g}, min confidence {sv['min_confidence']:.0%}. Sets: " +
             ", ".join(f"{n} {k}" for n, k in r["sets"].items()) + ".", ""]
    for n, note in r["notes"].items():
        lines.append(f"- {n}: {note}")
    lines += ["", "## Answered `sure`, by rule", "",
              "before = the confidence alone (serve before the OOD check); other_only = the view classifier's "
              "`other` class (and interior) alone; score_only = the OOD score (and interior) alone; both = the two "
              "checks, a model-year's confidence; served = as served (any level, after the unknown-model check).",
              "", "| rule | " + " | ".join(r["rules"]["before"]) + " | top-1 among sure (id_test) |",
              "|---|" + "---:|" * (len(r["rules"]["before"]) + 1)]
    for policy, row in r["rules"].items():
        cells = [f"{v['sure']}/{v['photos']} ({v['sure_rate']:.1%})" for v in row.values()]
        acc = row["id_test"]["top1_among_sure"]
        lines.append(f"| {policy} | " + " | ".join(cells) + (f" | {acc:.1%} |" if acc is not None else " | n/a |"))
    lines += ["", "## Scores: AUROC / FPR at 95% TPR against the in-distribution test photos", "",
              "| set | " + " | ".join(next(iter(r["scores"].values()))) + " |",
              "|---|" + "---:|" * len(next(iter(r["scores"].values())))]
    for name, kinds in r["scores"].items():
        lines.append(f"| {name} | " + " | ".join(f"{v['auroc']:.3f} / {v['fpr_at_95_tpr']:.1%}"
                                                  for v in kinds.values()) + " |")
    lines += ["", "Flagged at each method's own threshold (same TPR as the bundle's, on the val split): " +
              "; ".join(f"{m}: " + ", ".join(f"{n} {v:.1%}" for n, v in flagged.items())
                        for m, flagged in r["methods_flagged"].items()), "",
              "## Why not sure (as served)", ""]
    for name, counts in r["reasons"].items():
        lines.append(f"- {name}: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    s, lat = r["scale"], r["latency"]
    lines += ["", "## Cost", "",
              f"- at the seed's scale ({s['dim']} features, {s['classes']} classes, {s['train_photos']:,} train "
              f"photos): mahalanobis {s['mahalanobis']['mb']} MB, {s['mahalanobis']['score_ms_p50']:.3f} ms per "
              f"photo (independent of the photo count); knn capped at {s['knn_capped']['bank']:,} photos "
              f"{s['knn_capped']['mb']} MB, {s['knn_capped']['score_ms_p50']:.3f} ms; knn on all "
              f"{s['train_photos']:,}: {s['knn_uncapped_arithmetic']['mb']:,} MB, about "
              f"{s['knn_uncapped_arithmetic']['score_ms_estimate']} ms (linear in the bank)",
              f"- request p50, batch 1, {lat['rounds']} interleaved rounds: with the OOD check "
              f"{lat['with_ood']['p50_ms']:.2f} ms, without {lat['without_ood']['p50_ms']:.2f} ms "
              f"({(lat['p50_ratio'] - 1) * 100:+.1f}%)", "", "![scores and answers](ood_scores.png)"]
    return "\n".join(lines)


__all__ = ["add_arguments", "run"]
