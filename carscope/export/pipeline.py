"""Two trained runs -> a checked serving bundle (`export_bundle`, what `carscope export` and the demo call).

    python -c "from carscope.export.pipeline import export_bundle; export_bundle('runs/view', 'runs/model', 'dataset', \
'bundle', int8=True)"

An export is done only when it has proven itself: each graph passes onnx.checker, its onnxruntime logits
match PyTorch's on the run's held-out test photos (every top-1 the same), an int8 variant keeps accuracy within
1 point of fp32 (or is refused, with the numbers, unless `force`), and the finished bundle re-reads and
verifies through carscope/export/bundle.py. Everything is built in a temporary directory beside `out` and renamed into
place at the end, so a failed or interrupted export leaves no half bundle.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from carscope.common.errors import CarscopeError
from carscope.export.bundle import (
    BUNDLE_JSON,
    FORMAT_VERSION,
    OTHER_LABEL,
    Bundle,
    load,
    sha256_file,
    write_meta,
)

# The OOD threshold keeps this share of held-out in-distribution photos. 95% is the literature's operating point
# (bench ood reports FPR at 95% TPR), but a 95% threshold refuses 1 in 20 good photos by construction, before
# the confidence gate refuses any: 98% keeps the served coverage of in-distribution photos above 95%.
DEFAULT_OOD_TPR = 0.98
OOD_CHOICES = ("auto", "mahalanobis", "knn", "none")
OOD_SYNTHETIC_FRAMES = 200  # generic synthetic frames (carscope/train/negatives.py, seeds no training run draws)
OOD_SYNTHETIC_SEED = 1_000_000_007
OOD_MAX_FIT_PHOTOS = 20_000  # train photos the score is fitted on, at most (10x ResNet50's 2,048 features)
# the gates' limits (FP32_MAX_REL_ERROR, INT8_MAX_DROP_POINTS, INT8_OOD_MAX_*, FP16_MIN_AGREEMENT) and their
# comparisons live in carscope/export/parity.py, one function per gate, where `make mutate` holds them
MIN_CALIB_PHOTOS = 100
THUMB_SIZE = 192  # longest side, px: the result page shows them small
PREPROCESS_KEYS = ("resize", "crop", "mean", "std")


class ExportFailed(CarscopeError):
    """The export ran but did not prove itself (parity): exit status 1, the numbers in the message."""

    def __init__(self, message: str):
        super().__init__(message, exit_code=1)


def export_bundle(view_run: str | os.PathLike, model_run: str | os.PathLike, data: str | os.PathLike,
                  out: str | os.PathLike, *, int8: bool = False, fp16: bool = False, force: bool = False,
                  opset: int | None = None, eval_photos: int = 1000, calib_photos: int = 128,
                  thumbs_per_view: int = 3, exporter: str = "auto", view_data: str | os.PathLike | None = None,
                  ood_method: str = "auto", ood_tpr: float = DEFAULT_OOD_TPR,
                  log: Callable[[str], Any] = print) -> Bundle:
    """Export the view and model runs trained on `data` into the bundle directory `out`; returns it, loaded.

    `view_data` is the view run's dataset when it is not `data` (its test and train photos are read there);
    thumbnails then come from `data` alone.

    `eval_photos` caps the test-split photos used for parity and int8 accuracy; `calib_photos` is the number of
    train-split photos int8 is calibrated on (all of them when the split is smaller). Raises CarscopeError
    (exit 2) for bad input and ExportFailed (exit 1) when the exported graph does not match PyTorch."""
    from carscope.crawler import dataset as dsmod
    from carscope.export.onnx_export import DEFAULT_OPSET, MIN_OPSET
    from carscope.export.photos import read_splits, split_photos
    from carscope.train.checkpoint import VIEW_LABELS, load_run

    opset = DEFAULT_OPSET if opset is None else int(opset)
    if opset < MIN_OPSET:
        raise CarscopeError(f"--opset {opset} is too old; carscope exports opset {MIN_OPSET} or newer")
    if calib_photos < MIN_CALIB_PHOTOS:
        raise CarscopeError(f"int8 calibration needs at least {MIN_CALIB_PHOTOS} photos (got {calib_photos})")
    if eval_photos < 1:
        raise CarscopeError("eval_photos must be at least 1")
    if ood_method not in OOD_CHOICES:
        raise CarscopeError(f"--ood must be one of {', '.join(OOD_CHOICES)}, not '{ood_method}'")
    if not 0.5 <= ood_tpr < 1:
        raise CarscopeError(f"--ood-tpr must be in [0.5, 1), not {ood_tpr}")
    out = Path(out)
    _check_out(out)
    runs = {"view": Path(view_run), "model": Path(model_run)}
    if runs["view"].resolve() == runs["model"].resolve():
        raise CarscopeError("--view-run and --model-run are the same run")
    dataset = dsmod.load(data)
    datasets = {"model": dataset, "view": dsmod.load(view_data) if view_data is not None else dataset}
    states = {key: load_run(path, task=key) for key, path in runs.items()}
    for state in states.values():
        missing = [k for k in PREPROCESS_KEYS if k not in state["preprocess"]]
        if missing:
            raise CarscopeError(f"{state['path']} has an incomplete preprocessing spec (no {', '.join(missing)})")
    for state in states.values():
        try:
            t = float(state["temperature"])
        except (TypeError, ValueError):
            t = float("nan")
        if not 0 < t < float("inf"):  # NaN fails this too
            raise CarscopeError(f"{state['path']} has temperature {state['temperature']!r}; it must be positive")
    view_labels = sorted(states["view"]["labels"])
    if view_labels not in (sorted(VIEW_LABELS), sorted([*VIEW_LABELS, OTHER_LABEL])):
        raise CarscopeError(f"{runs['view']} does not classify {' / '.join(VIEW_LABELS)} [/ {OTHER_LABEL}] "
                            f"(its labels: {', '.join(states['view']['labels'][:5])})")
    known = set(dataset.specs["model_id"].astype(str))
    absent = [label for label in states["model"]["labels"] if label not in known]
    if absent:
        raise CarscopeError(f"dataset {dataset.root} does not match run {runs['model']}: {len(absent)} of its "
                            f"{len(states['model']['labels'])} classes are not in specs.parquet (e.g. {absent[0]})")
    photos: dict[str, dict[str, Any]] = {}
    for key, state in states.items():
        splits = read_splits(runs[key])
        test = split_photos(runs[key], datasets[key], "test", state["labels"], splits)
        if test.empty:
            raise CarscopeError(f"run {runs[key]} has no test-split photos in {datasets[key].root} to check the "
                                f"export on")
        train = split_photos(runs[key], datasets[key], "train", state["labels"], splits)
        val = split_photos(runs[key], datasets[key], "val", state["labels"], splits)
        photos[key] = {"test": test, "train": train, "val": val}

    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    except OSError as exc:
        raise CarscopeError(f"cannot write a bundle next to {out}: {exc.strerror}") from None
    work = tmp / ".work"
    work.mkdir()
    t0 = time.perf_counter()
    try:
        models = {}
        for key in ("view", "model"):
            models[key] = _export_model(key, states[key], runs[key], photos[key], tmp, work, log=log,
                                        opset=opset, exporter=exporter, int8=int8, fp16=fp16, force=force,
                                        eval_photos=eval_photos, calib_photos=calib_photos,
                                        ood_method=ood_method if key == "model" else "none", ood_tpr=ood_tpr)
        log("thumbnails and specs")
        thumbs = _write_thumbs(photos, dataset, tmp, models["view"], states["view"], states["model"]["labels"],
                               thumbs_per_view)
        specs = dataset.specs[dataset.specs["model_id"].astype(str).isin(states["model"]["labels"])]
        dsmod.write_table(specs, tmp / "specs.parquet", dsmod.SPECS_COLUMNS)
        meta = {
            "format_version": FORMAT_VERSION,
            "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "tools": _tool_versions(),
            "models": models,
            "thumbs": thumbs,
            "specs": "specs.parquet",
            "source": {"data": str(dataset.root.resolve()),
                       "images": int(len(dataset.images)),
                       **({"view_data": str(datasets["view"].root.resolve())} if view_data is not None else {})},
            "options": {"int8": int8, "fp16": fp16, "force": force, "opset": opset, "exporter": exporter,
                        "eval_photos": eval_photos, "calib_photos": calib_photos, "ood": ood_method,
                        "ood_tpr": ood_tpr},
            "export_s": round(time.perf_counter() - t0, 2),
        }
        shutil.rmtree(work)
        write_meta(meta, tmp)
        load(tmp, verify=True)  # the bundle must read back through the contract module before it is published
        _publish(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log(f"bundle written to {out} in {time.perf_counter() - t0:.1f}s")
    return load(out, verify=False)


def _check_out(out: Path) -> None:
    """Replacing an earlier bundle is fine; writing over some other directory is not."""
    if out.exists():
        if not out.is_dir():
            raise CarscopeError(f"--out {out} exists and is not a directory")
        if any(out.iterdir()) and not (out / BUNDLE_JSON).is_file():
            raise CarscopeError(f"--out {out} is a non-empty directory that is not a bundle; choose another path")


def _publish(tmp: Path, out: Path) -> None:
    """Rename `tmp` to `out`; an old bundle there is moved aside first and removed only once the new one is in."""
    old = None
    if out.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
        os.replace(out, old / "bundle")
    try:
        os.replace(tmp, out)
    except BaseException:
        if old is not None:
            os.replace(old / "bundle", out)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _export_model(key: str, state: dict, run_dir: Path, photos: dict, tmp: Path, work: Path, *, log, opset: int,
                  exporter: str, int8: bool, fp16: bool, force: bool, eval_photos: int,
                  calib_photos: int, ood_method: str = "none", ood_tpr: float = DEFAULT_OOD_TPR) -> dict[str, Any]:
    import numpy as np
    import torch

    from carscope.export import parity as parity_mod
    from carscope.export.onnx_export import (
        FEATURES_NAME,
        INPUT_NAME,
        OUTPUT_NAME,
        choose_graph,
        cpu_session,
        export_onnx,
        run_all,
        with_features,
    )
    from carscope.export.parity import compare, fp32_passes, summary
    from carscope.export.photos import SPLITS_FILE, batches
    from carscope.train.models import model_from_checkpoint

    spec = dict(state["preprocess"])
    size = int(spec["crop"])
    labels = list(state["labels"])
    temperature = float(state["temperature"])
    try:
        model = model_from_checkpoint(state)
    except (RuntimeError, KeyError, TypeError) as exc:  # state dict does not fit the arch it names
        raise CarscopeError(f"{state['path']}: weights do not fit arch '{state['arch']}' "
                            f"({str(exc).strip().splitlines()[0][:120]})") from None

    raw = work / f"{key}.raw.onnx"
    features = ood_method != "none"  # the graph returns the penultimate features beside the logits
    info = export_onnx(model, size, raw, opset, exporter, features=features)
    net = with_features(model) if features else model
    how = info["exporter"] + (f" (dynamo failed: {info['fallback_reason']})" if info["fallback_reason"] else "")
    log(f"{key}: {state['arch']} exported with {how}, opset {opset}, in {info['export_s']:.1f}s; onnx.checker ok")
    fname = f"{key}.onnx"
    graph = choose_graph(raw, tmp / fname, size, work_dir=work, threads=torch.get_num_threads())
    m = graph["measured"]
    log(f"{key}: shipping the {graph['chosen'].replace('_', ' ')} graph (load+optimise "
        f"{m['optimise_at_load']['load_ms']:.0f} ms, p50 {m['optimise_at_load']['p50_ms']:.2f} ms; offline "
        f"{m['offline_optimised']['load_ms']:.0f} ms, p50 {m['offline_optimised']['p50_ms']:.2f} ms)")

    test = photos["test"].iloc[:eval_photos]
    files, targets = test["file"].tolist(), test["target"].to_numpy()
    session = cpu_session(tmp / fname, threads=torch.get_num_threads())
    eager, fp32, eager_f, fp32_f = [], [], [], []
    with torch.inference_mode():
        for x in batches(files, spec):
            out = net(torch.from_numpy(x))
            logits, feats = out if features else (out, None)
            eager.append(logits.float().numpy())
            ort_out = session.run(None, {INPUT_NAME: x})
            fp32.append(ort_out[0])
            if features:
                eager_f.append(feats.float().numpy())
                fp32_f.append(ort_out[1])
        first = next(batches(files[:1], spec))
        single = session.run(None, {INPUT_NAME: first})[0]
    eager, fp32 = np.concatenate(eager), np.concatenate(fp32).astype(np.float32)
    parity = compare(eager, fp32, temperature=temperature, targets=targets)
    parity.update(provider="CPUExecutionProvider", split="test",
                  batch1_max_abs_logit_diff=float(np.abs(single[0] - fp32[0]).max()))
    if features:
        eager_f, fp32_f = np.concatenate(eager_f), np.concatenate(fp32_f).astype(np.float32)
        parity["features"] = parity_mod.compare_features(eager_f, fp32_f)
    if not fp32_passes(parity):
        raise ExportFailed(f"{key}: onnxruntime fp32 does not match PyTorch: {summary(parity)} "
                           f"(needs every top-1 equal and max rel. error <= {parity_mod.FP32_MAX_REL_ERROR:g}, "
                           f"logits and features)")
    log(f"{key}: parity fp32 vs PyTorch: {summary(parity)}")

    run_files = {name: run_dir / name for name in (SPLITS_FILE, "config.json", "report.json")}
    entry: dict[str, Any] = {
        "file": fname, "sha256": sha256_file(tmp / fname), "task": key, "arch": state["arch"],
        "arch_kwargs": _jsonable(state.get("arch_kwargs", {})), "labels": labels,
        "input": {"name": INPUT_NAME, **_jsonable(spec), "shape": ["batch", 3, size, size]},
        "output": {"name": OUTPUT_NAME, "kind": "logits", **({"features": FEATURES_NAME} if features else {})},
        "temperature": temperature,
        "metrics": _jsonable(state.get("metrics", {})), "epoch": _jsonable(state.get("epoch")),
        "parity": parity, "export": info, "graph": graph, "variants": {}, "refused": {},
        "source": {"run": str(run_dir.resolve()), "checkpoint": str(Path(state["path"]).resolve()),
                   "checkpoint_sha256": sha256_file(state["path"]),
                   **{f"{Path(n).stem}": str(p.resolve()) for n, p in run_files.items() if p.is_file()},
                   "splits_sha256": sha256_file(run_files[SPLITS_FILE])},
    }

    ood = None
    if features:
        ood = _fit_ood(key, ood_method, ood_tpr, session, spec, photos, eager_f, fp32_f, targets, tmp, log=log)
        entry["ood"] = ood.entry

    if int8:
        from carscope.export.quantize import to_int8

        train = photos["train"].sample(frac=1.0, random_state=0) if len(photos["train"]) else photos["train"]
        calib = train["file"].tolist()[:calib_photos]
        if not calib:
            raise CarscopeError(f"run {run_dir} has no train-split photos in the dataset to calibrate int8 on")
        q_file = f"{key}.int8.onnx"
        quant = to_int8(raw, tmp / q_file, batches(calib, spec, 16))
        q_session = cpu_session(tmp / q_file, threads=torch.get_num_threads())
        q_logits, q_feats = run_all(q_session, batches(files, spec))
        vs = compare(fp32, q_logits, temperature=temperature, targets=targets)
        drop = (vs["top1_reference"] - vs["top1_candidate"]) * 100
        metrics = {"split": "test", "photos": vs["photos"], "top1_fp32": vs["top1_reference"],
                   "top1_int8": vs["top1_candidate"], "top1_drop_points": round(drop, 4),
                   "top1_agreement_vs_fp32": vs["top1_agreement"], "max_abs_logit_diff": vs["max_abs_logit_diff"],
                   "max_abs_prob_diff": vs["max_abs_prob_diff"]}
        line = (f"{key}: int8 on {vs['photos']} test photos: top-1 {vs['top1_reference']:.2%} fp32 -> "
                f"{vs['top1_candidate']:.2%} int8 (drop {drop:.2f} points), agreement with fp32 "
                f"{vs['top1_agreement']:.2%}, calibrated on {quant['calibration']['photos']} train photos")
        reasons = parity_mod.int8_failures(drop)
        if ood is not None:
            q_ood = ood.variant(q_session, q_feats, spec)
            ood.entry.setdefault("variants", {})["int8"] = q_ood
            metrics["ood"] = q_ood["gate"]
            reasons += q_ood["gate"]["failures"]
            log(f"{key}: int8 OOD score: {q_ood['gate']['line']}")
        if reasons and not force:
            (tmp / q_file).unlink()
            ood and ood.entry.get("variants", {}).pop("int8", None)
            entry["refused"]["int8"] = {"reason": "; ".join(reasons), "metrics": metrics, "quantization": quant}
            log(f"{line}: REFUSED ({'; '.join(reasons)}; --force keeps it)")
        else:
            forced = bool(reasons)
            entry["variants"]["int8"] = {"file": q_file, "sha256": sha256_file(tmp / q_file), "metrics": metrics,
                                         "quantization": quant, "forced": forced}
            log(line + (" (kept by --force)" if forced else ""))

    if fp16:
        from carscope.export.quantize import cuda_session, to_fp16

        h_file = f"{key}.fp16.onnx"
        conv = to_fp16(raw, tmp / h_file)
        sess, reason = cuda_session(tmp / h_file)
        variant = {"file": h_file, "provider": "CUDAExecutionProvider", "conversion": conv}
        if sess is None:
            variant["validation"] = {"validated": False, "reason": reason}
            log(f"{key}: fp16 written, {reason}")
        else:
            h_logits = np.concatenate([sess.run(None, {INPUT_NAME: x})[0] for x in batches(files, spec)])
            vs = compare(eager, h_logits, temperature=temperature, targets=targets)
            variant["validation"] = {"validated": True, "vs": "pytorch fp32", **vs}
            log(f"{key}: fp16 on CUDA vs PyTorch fp32: {summary(vs)}")
            if not parity_mod.fp16_passes(vs["top1_agreement"]) and not force:
                (tmp / h_file).unlink()
                limit = parity_mod.FP16_MIN_AGREEMENT
                entry["refused"]["fp16"] = {"reason": f"top-1 agreement {vs['top1_agreement']:.2%} < {limit:.0%}",
                                            "validation": vs}
                variant = None
                log(f"{key}: fp16 REFUSED (agreement below {limit:.0%}; --force keeps it)")
        if variant is not None:
            variant["sha256"] = sha256_file(tmp / h_file)
            entry["variants"]["fp16"] = variant
    return entry


class _OodFit:
    """The fitted OOD score of the model classifier: its bundle entry, and the int8 check against it."""

    def __init__(self, entry: dict[str, Any], scorer, tpr: float, files: dict[str, list[str]], synthetic: list,
                 fp32_scores: dict[str, Any]):
        self.entry, self.scorer, self.tpr = entry, scorer, tpr
        self.files, self.synthetic, self.fp32_scores = files, synthetic, fp32_scores

    def variant(self, session, test_features, spec) -> dict[str, Any]:
        """A quantised graph's own threshold (its val features) and its figures against fp32's."""
        import numpy as np

        from carscope.export.onnx_export import run_all
        from carscope.export.ood import auroc, threshold_at
        from carscope.export.parity import int8_ood_failures
        from carscope.export.photos import batches, image_batches

        val = self.scorer.score(run_all(session, batches(self.files["val"], spec))[1])
        test = self.scorer.score(test_features)
        syn = self.scorer.score(run_all(session, image_batches(self.synthetic, spec))[1])
        threshold = threshold_at(val, self.tpr)
        ref = self.fp32_scores
        tpr_ref, tpr_q = float((ref["test"] <= ref["threshold"]).mean()), float((test <= threshold).mean())
        au_ref, au_q = auroc(ref["test"], ref["synthetic"]), auroc(test, syn)
        agree = float(np.mean(np.concatenate([(test > threshold) == (ref["test"] > ref["threshold"]),
                                              (syn > threshold) == (ref["synthetic"] > ref["threshold"])])))
        failures = int8_ood_failures(tpr_ref, tpr_q, au_ref, au_q)
        gate = {"test_tpr_fp32": round(tpr_ref, 4), "test_tpr": round(tpr_q, 4),
                "auroc_synthetic_fp32": round(au_ref, 4), "auroc_synthetic": round(au_q, 4),
                "decision_agreement_vs_fp32": round(agree, 4), "failures": failures,
                "line": (f"in-distribution kept {tpr_ref:.1%} fp32 -> {tpr_q:.1%} int8, AUROC vs synthetic "
                         f"{au_ref:.3f} -> {au_q:.3f}, decisions agree with fp32 on {agree:.1%}")}
        return {"threshold": threshold, "gate": gate}


def _fit_ood(key: str, method: str, tpr: float, session, spec: dict, photos: dict, eager_test, fp32_test,
             targets, tmp: Path, *, log) -> _OodFit:
    """Fit the OOD score(s) on the train split's fp32 ONNX features, set the threshold on the val split (the
    test split when there is no val), measure on the test split and synthetic frames; write the arrays file."""
    import numpy as np

    from carscope.export import ood as oodmod
    from carscope.export.onnx_export import _median_ms, run_all
    from carscope.export.photos import batches, image_batches
    from carscope.train.negatives import draw_negative

    train = photos["train"]
    if train.empty:
        raise CarscopeError("the model run has no train-split photos in the dataset to fit the OOD score on")
    if len(train) > OOD_MAX_FIT_PHOTOS:  # the same share of every class: the seed's 200,000 would take hours on a CPU
        share = OOD_MAX_FIT_PHOTOS / len(train)
        keep = [i for _, g in train.groupby("target")
                for i in g.sample(n=min(len(g), max(2, round(len(g) * share))), random_state=0).index]
        train = train.loc[sorted(keep)].reset_index(drop=True)
    val = photos["val"] if len(photos["val"]) else photos["test"]
    files = {"train": train["file"].tolist(), "val": val["file"].tolist()}
    t0 = time.perf_counter()
    train_f = run_all(session, batches(files["train"], spec))[1]
    val_f = run_all(session, batches(files["val"], spec))[1]
    synthetic = [draw_negative(OOD_SYNTHETIC_SEED + i, int(spec["resize"])) for i in range(OOD_SYNTHETIC_FRAMES)]
    syn_f = run_all(session, image_batches(synthetic, spec))[1]
    sets = {"val": val_f, "test": fp32_test, "synthetic": syn_f}
    compared: dict[str, Any] = {}
    fitted = {}
    for m in (("mahalanobis", "knn") if method == "auto" else (method,)):
        scorer = oodmod.fit(m, train_f, train["target"].to_numpy())
        threshold = oodmod.threshold_at(scorer.score(val_f), tpr)
        test_s, syn_s = scorer.score(fp32_test), scorer.score(syn_f)
        compared[m] = {"threshold": threshold, "test_tpr": round(float((test_s <= threshold).mean()), 4),
                       "auroc_synthetic": round(oodmod.auroc(test_s, syn_s), 4),
                       "fpr95_synthetic": round(oodmod.fpr_at_tpr(test_s, syn_s, 0.95), 4),
                       "bytes": scorer.nbytes}
        fitted[m] = (scorer, threshold)
    # auto: the higher AUROC against the synthetic frames; within 0.005 Mahalanobis, whose cost does not grow
    # with the training set (knn's bank does)
    chosen = max(compared, key=lambda m: (compared[m]["auroc_synthetic"] + (0.005 if m == "mahalanobis" else 0)))
    scorer, threshold = fitted[chosen]
    fname = f"{key}.ood.npz"
    scorer.save(tmp / fname)
    test_s = scorer.score(fp32_test)
    eager_s = scorer.score(eager_test)
    x1 = fp32_test[:1]
    entry = {
        "method": chosen, "file": fname, "sha256": sha256_file(tmp / fname), "output": "features",
        "dim": int(train_f.shape[1]), "bytes": scorer.nbytes, "threshold": threshold, "tpr": tpr,
        "fit": {"split": "train", "photos": int(len(train_f)), "source": "onnxruntime fp32"},
        "threshold_split": "val" if len(photos["val"]) else "test",
        "figures": oodmod.figures(scorer, threshold, sets),
        "compared": compared,
        "parity": {"photos": int(len(test_s)),
                   "max_abs_score_diff": float(np.abs(eager_s - test_s).max()) if len(test_s) else 0.0,
                   "decisions_equal": bool(((eager_s > threshold) == (test_s > threshold)).all())},
        "score_ms_batch1": round(_median_ms(lambda: scorer.score(x1), 50), 4),
        "fit_s": round(time.perf_counter() - t0, 2),
    }
    test_rate = entry["figures"]["test"]["flagged"]
    aurocs = ", ".join(f"{m} AUROC {c['auroc_synthetic']:.3f}" for m, c in compared.items())
    log(f"{key}: OOD score {chosen} ({aurocs}"
        f" vs {OOD_SYNTHETIC_FRAMES} synthetic frames): threshold {threshold:.4g} keeps {tpr:.0%} of "
        f"{len(val_f)} val photos; flags {test_rate:.1%} of test photos, "
        f"{entry['figures']['synthetic']['flagged']:.1%} of synthetic frames; {scorer.nbytes / 1e6:.2f} MB, "
        f"{entry['score_ms_batch1']:.3f} ms per photo")
    return _OodFit(entry, scorer, tpr, files, synthetic,
                   {"test": test_s, "synthetic": scorer.score(syn_f), "threshold": threshold})


def _write_thumbs(photos: dict, dataset, tmp: Path, view_entry: dict, view_state: dict, served: list[str],
                  per_view: int) -> dict:
    """A few small train-split photos per served class and view.

    Candidates are the train splits of both runs: the model run trains on exterior photos only, so interior
    ones come from the view run's split, their model-year from the dataset. The view is the page's hint;
    photos from mixed, unlabelled galleries are sorted by the exported view model."""
    import numpy as np
    import pandas as pd

    from carscope.export.onnx_export import INPUT_NAME, cpu_session
    from carscope.export.photos import batches, open_rgb

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
        if min(counts.get("exterior", 0), counts.get("interior", 0)) < per_view:
            unsure.append(group[group["view"] == "unknown"].head(4 * per_view))
    unknown = pd.concat(unsure) if unsure else cand.iloc[:0]
    if len(unknown):
        session = cpu_session(tmp / view_entry["file"], threads=_threads())
        logits = np.concatenate([session.run(None, {INPUT_NAME: x})[0]
                                 for x in batches(unknown["file"].tolist(), view_state["preprocess"])])
        cand.loc[unknown.index, "view"] = [view_entry["labels"][i] for i in logits.argmax(axis=1)]
    thumbs: dict[str, dict[str, list[str]]] = {}
    for label, group in cand.groupby("model_id", sort=True):
        folder = _safe_name(str(label))
        for view in ("exterior", "interior"):
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


def _safe_name(label: str) -> str:
    """A label as a folder name: model_ids are slugs already; anything else is slugified (never a path)."""
    from carscope.crawler.dataset import slugify

    if label and all(c.isalnum() or c in "_-" for c in label):
        return label
    return slugify(label) or "label"


def _tool_versions() -> dict[str, str]:
    import platform

    import numpy
    import onnx
    import onnxruntime
    import torch

    versions = {"torch": torch.__version__, "onnx": onnx.__version__, "onnxruntime": onnxruntime.__version__,
                "numpy": numpy.__version__, "python": platform.python_version()}
    try:
        import onnxscript

        versions["onnxscript"] = onnxscript.__version__
    except ImportError:  # only the dynamo exporter needs it
        pass
    return versions


def _jsonable(obj):
    """Checkpoint values as JSON: tensors and numpy scalars become numbers/lists; anything else a string."""
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    if hasattr(obj, "tolist"):
        return obj.tolist()
    return str(obj)
