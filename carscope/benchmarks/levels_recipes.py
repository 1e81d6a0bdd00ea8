"""`carscope bench levels`' recipes: train each, take its outputs on every photo set, and score them
(carscope/benchmarks/levels.py runs this; the figures are carscope/benchmarks/levels_eval.py's).

    python -c "from carscope.benchmarks.levels_recipes import evaluate_recipes; help(evaluate_recipes)"
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import numpy as np

from carscope.benchmarks.levels_eval import (
    Outputs,
    answers,
    colour_histograms,
    fit_linear,
    slice_figures,
    torch_outputs,
    unknown_figures,
    unknown_scores,
)
from carscope.export.parity import softmax

UNKNOWN_SETS = ("unknown_realistic", "unknown_classic")


def _say(msg: str) -> None:
    import sys

    print(f"bench levels: {msg}", file=sys.stderr, flush=True)


def _split_table(run_dir: Path, root: Path, labels: list[str]):
    from carscope.export.photos import read_splits

    table = read_splits(run_dir)
    table = table[table["label"].isin(set(labels))].reset_index(drop=True)
    table["file"] = [str(root / p) for p in table["path"]]
    index = {lab: i for i, lab in enumerate(labels)}
    table["target"] = [index[lab] for lab in table["label"]]
    return table


def _unknown_photos(show: dict) -> tuple[list[str], list[str], list[dict]]:
    """The exterior car photos of an unknown showroom (the truth says which)."""
    files, shas, truth = [], [], []
    for row in show["images"].itertuples():
        t = show["truth"][row.sha256]
        if t["view"] == "exterior" and t["car"]:
            files.append(str(show["root"] / row.path))
            shas.append(row.sha256)
            truth.append(t)
    return files, shas, truth


def _sets(table, shows: dict) -> dict[str, tuple[list[str], list[str], np.ndarray | None, list[dict]]]:
    """name -> (files, sha256s, targets or None, truth) for train, val, test and each unknown set."""
    known = shows["known"]["truth"]
    out = {}
    for split in ("train", "val", "test"):
        part = table[table["split"] == split]
        out[split] = (part["file"].tolist(), part["sha256"].tolist(), part["target"].to_numpy(),
                      [known.get(s, {}) for s in part["sha256"]])
    for name in UNKNOWN_SETS:
        files, shas, truth = _unknown_photos(shows[name])
        out[name] = (files, shas, None, truth)
    return out


def _torch_model(run_dir: Path):
    from carscope.train.checkpoint import load_run
    from carscope.train.models import create_model

    state = load_run(run_dir, task="model")
    model = create_model(state["arch"], len(state["labels"]), **(state.get("arch_kwargs") or {}))
    model.load_state_dict(state["model"])
    return model, state


def evaluate_recipes(args, recipes: list[str], shows: dict, work: Path, out: Path, *, threads: int,
                     workers: int) -> dict[str, Any]:
    """Train (or fit) each recipe and score it; returns {"recipes": {name: figures}, "split": counts}."""
    import torch

    from carscope.benchmarks.recipe import ARCH, SCRATCH_ARCH, WEIGHTS, _seed, _train_cli
    from carscope.common.errors import CarscopeError

    data = shows["known"]["root"]
    common = ["--data", str(data), "--all-years", "--img-size", str(args.img_size), "--epochs", str(args.epochs),
              "--seed", str(args.seed), "--threads", str(threads), "--workers", str(workers), "--device", "cpu"]
    runs = work / "runs"
    device = torch.device("cpu")
    results: dict[str, Any] = {}
    table, labels = None, None
    outputs: dict[str, tuple[dict[str, Outputs], float]] = {}
    trained: dict[str, dict] = {}
    for recipe in recipes:
        t0 = time.perf_counter()
        if recipe in ("carscope", "scratch"):
            arch_args = ["--arch", ARCH, "--weights", WEIGHTS] if recipe == "carscope" else ["--arch", SCRATCH_ARCH]
            extra = args.carscope_args.split() if recipe == "carscope" and args.carscope_args else []
            trained[recipe] = _train_cli(recipe, [*common, *arch_args, *extra], runs / recipe, out, say=_say)
            model, state = _torch_model(runs / recipe)
            if labels is None:
                labels = state["labels"]
                table = _split_table(runs / recipe, data, labels)
            elif state["labels"] != labels:
                raise CarscopeError(f"{recipe}: its classes differ from the first run's")
            outputs[recipe] = (_outputs(model, state["preprocess"], _sets(table, shows), work / f"cache-{recipe}",
                                        workers), float(state["temperature"]))
        elif recipe == "seed":
            keep: dict = {}
            _say("seed: its recipe, from the same weights, on the carscope run's split")
            seed_args = argparse.Namespace(seed=args.seed, epochs=args.epochs, test_draws=1)
            trained["seed"] = _seed(seed_args, data, runs / "carscope", work, device, workers, keep=keep)
            if keep["labels"] != labels:
                raise CarscopeError("seed: its classes differ from the carscope run's")
            outputs["seed"] = (_outputs(keep["model"], keep["spec"], _sets(table, shows), work / "cache-seed",
                                        workers), 1.0)  # the seed calibrated nothing
        elif recipe == "colour":
            if table is None:  # no trained run yet: split as train would, through the scratch recipe's prepare
                raise CarscopeError("the colour baseline uses a trained recipe's split: put it after one")
            _say("colour: a logistic regression on colour histograms")
            sets = _sets(table, shows)
            hists = {name: colour_histograms(files) for name, (files, _, _, _) in sets.items()}
            logits_of = fit_linear(hists["train"], sets["train"][2], len(labels), seed=args.seed)
            outputs["colour"] = ({name: Outputs(logits_of(hists[name]), hists[name], sets[name][2], sets[name][3])
                                  for name in sets}, 1.0)
        results[recipe] = {"wall_s": round(time.perf_counter() - t0, 1)}
        _say(f"{recipe}: trained and measured in {results[recipe]['wall_s']:.0f} s")
    for recipe, (outs, temperature) in outputs.items():
        results[recipe].update(score(args, outs, temperature, labels, shows))
        if recipe in trained:
            results[recipe]["training"] = _training_summary(trained[recipe])
    split = {s: int((table["split"] == s).sum()) for s in ("train", "val", "test")} if table is not None else {}
    return {"recipes": results, "classes": len(labels or []), "split": split,
            "unknown_photos": {name: len(_unknown_photos(shows[name])[0]) for name in UNKNOWN_SETS}}


def _outputs(model, spec: dict, sets: dict, cache: Path, workers: int) -> dict[str, Outputs]:
    import torch

    out = {}
    for name, (files, shas, targets, truth) in sets.items():
        logits, feats = torch_outputs(model, spec, files, shas, cache / name, device=torch.device("cpu"),
                                      workers=workers)
        out[name] = Outputs(logits, feats, targets, truth)
    return out


def _training_summary(t: dict) -> dict[str, Any]:
    keep = ("command", "val_top1", "best_epoch", "temperature", "train_seconds", "wall_s", "amp", "weights",
            "trainable_params", "recipe", "load")
    return {k: t[k] for k in keep if k in t}


def score(args, outs: dict[str, Outputs], temperature: float, labels: list[str], shows: dict) -> dict[str, Any]:
    """Every figure of one recipe (levels, groups, answers, slices, unknown models)."""
    from carscope.common.levels import DEFAULT_JOIN, Hierarchy, answered, confusable_groups, level_metrics
    from carscope.crawler.dataset import load as load_dataset

    h = Hierarchy.from_table(labels, load_dataset(shows["known"]["root"]).specs)
    probs = {name: softmax(o.logits, temperature) for name, o in outs.items()}
    test, val = outs["test"], outs["val"]
    ungrouped = answered(probs["test"], test.targets, h, args.threshold)
    join = args.join if args.join is not None else DEFAULT_JOIN
    groups, found = confusable_groups(probs["val"], val.targets, h, join)
    h.set_groups(groups)
    look = shows["known"]["look_of"]
    same_look_pairs = {(a, b) for a in labels for b in labels if a < b and look.get(a) == look.get(b)}
    grouped_pairs = {(a, b) for g in groups for a in g for b in g if a < b}
    figures: dict[str, Any] = {
        "temperature": temperature,
        "test": level_metrics(probs["test"], test.targets, h),
        "val": level_metrics(probs["val"], val.targets, h),
        "groups": groups,
        "groups_found": {"join": join, "groups": len(groups), "classes_grouped": sum(len(g) for g in groups),
                         "truth_same_look_pairs": len(same_look_pairs),
                         "grouped_pairs": len(grouped_pairs),
                         "grouped_pairs_same_look": len(grouped_pairs & same_look_pairs)},
        "answered_test": answered(probs["test"], test.targets, h, args.threshold),
        "answered_test_without_groups": ungrouped,
        "slices_test": slice_figures(probs["test"], test.targets, test.truth, h),
    }
    scores = unknown_scores(outs["train"], {k: v for k, v in outs.items() if k != "train"}, temperature)
    figures["unknown"] = unknown_figures(scores, probs, test.targets, h, args.threshold, args.unknown_tpr)
    figures["unknown_by_shared_design"] = _by_shared_design(scores, probs, outs, h, args)
    # no unknown-model check: what the classifier answers alone
    figures["unknown_without_check"] = {
        name: round(float(np.mean([answers(p, h, args.threshold) for p in probs[name]])), 4) for name in UNKNOWN_SETS}
    return figures


def _by_shared_design(scores, probs, outs: dict[str, Outputs], h, args) -> dict[str, Any]:
    """The unknown cars still answered, by how many design elements their make shares with the most alike known
    make, at the served score's threshold (mahalanobis, else the first score measured)."""
    from carscope.export.ood import threshold_at

    method = "mahalanobis" if "mahalanobis" in scores else next(iter(scores))
    cut = threshold_at(scores[method]["val"], args.unknown_tpr)
    rows: dict[int, list[bool]] = {}
    for name in UNKNOWN_SETS:
        for i, t in enumerate(outs[name].truth):
            sure = scores[method][name][i] <= cut and answers(probs[name][i], h, args.threshold)
            rows.setdefault(int(t.get("shared_design", -1)), []).append(bool(sure))
    return {"score": method, "buckets": {str(k): {"photos": len(v), "sure": round(sum(v) / len(v), 4)}
                                         for k, v in sorted(rows.items())}}
