"""Two trained runs -> a checked serving bundle (`export_bundle`, what `carscope export` and the demo call).

    python -c "from carscope.export.pipeline import export_bundle; export_bundle('runs/view', 'runs/model', 'dataset', \
'bundle', int8=True)"

An export is done only when it has proven itself: each graph passes onnx.checker, its onnxruntime logits
match PyTorch's on the run's held-out test photos (every top-1 the same), an int8 variant keeps accuracy within
1 point of fp32 (or is refused, with the numbers, unless `force`), and the finished bundle re-reads and
verifies through carscope/export/bundle.py. Everything is built in a temporary directory beside `out` and renamed into
place at the end, so a failed or interrupted export leaves no half bundle.

This module reads the inputs, runs the stages and publishes the bundle; each stage is its own module:
graph.py (the ONNX graph, and its parity with PyTorch), ood_fit.py (the model classifier's OOD score),
variants.py (int8 and fp16), thumbs.py (the result page's thumbnails).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from carscope.common.errors import CarscopeError
from carscope.export.bundle import (
    BUNDLE_JSON,
    FORMAT_VERSION,
    MODEL_KEYS,
    OTHER_LABEL,
    SPECS_JSON,
    Bundle,
    load,
    write_meta,
)
from carscope.export.graph import ExportFailed, check_parity, export_graph, model_entry
from carscope.export.levels_fit import fit_levels
from carscope.export.ood_fit import DEFAULT_UNKNOWN_TPR, fit_ood
from carscope.export.thumbs import write_thumbs
from carscope.export.variants import Variant, fp16_variant, int8_variant

__all__ = ["DEFAULT_OOD_TPR", "ExportFailed", "OOD_CHOICES", "export_bundle"]

# The OOD threshold keeps this share of held-out in-distribution photos. 95% is the literature's operating point
# (bench ood reports FPR at 95% TPR), but a 95% threshold refuses 1 in 20 good photos by construction, before
# the confidence gate refuses any: 98% keeps the served coverage of in-distribution photos above 95%.
DEFAULT_OOD_TPR = 0.98
OOD_CHOICES = ("auto", "mahalanobis", "knn", "none")
# the OOD fit's own constants (OOD_MAX_FIT_PHOTOS, OOD_SYNTHETIC_*) live in carscope/export/ood_fit.py, the
# thumbnails' size in thumbs.py; the gates' limits (FP32_MAX_REL_ERROR, INT8_MAX_DROP_POINTS, INT8_OOD_MAX_*,
# FP16_MIN_AGREEMENT) and their comparisons in carscope/export/parity.py, one function per gate, where
# `make mutate` holds them
MIN_CALIB_PHOTOS = 100
PREPROCESS_KEYS = ("resize", "crop", "mean", "std")


@dataclass
class _Inputs:
    """The two runs and what export reads of them, keyed "view" and "model"."""

    runs: dict[str, Path]  # run directories
    dataset: Any  # the model run's dataset (`data`): thumbnails, specs, the bundle's source
    datasets: dict[str, Any]  # each run's dataset (the view run's is `view_data` when given)
    states: dict[str, dict]  # checkpoints (carscope.train.checkpoint.load_run)
    photos: dict[str, dict[str, Any]]  # split name -> the run's photos in its dataset (export/photos.py)


def export_bundle(view_run: str | os.PathLike, model_run: str | os.PathLike, data: str | os.PathLike,
                  out: str | os.PathLike, *, int8: bool = False, fp16: bool = False, force: bool = False,
                  opset: int | None = None, eval_photos: int = 1000, calib_photos: int = 128,
                  thumbs_per_view: int = 3, thumbs_max: int = 20_000, exporter: str = "auto",
                  view_data: str | os.PathLike | None = None,
                  ood_method: str = "auto", ood_tpr: float = DEFAULT_OOD_TPR,
                  unknown_tpr: float | None = DEFAULT_UNKNOWN_TPR, levels: bool = True,
                  log: Callable[[str], Any] = print) -> Bundle:
    """Export the view and model runs trained on `data` into the bundle directory `out`; returns it, loaded.

    `view_data` is the view run's dataset when it is not `data` (its test and train photos are read there);
    thumbnails then come from `data` alone.

    `eval_photos` caps the test-split photos used for parity and int8 accuracy; `calib_photos` is the number of
    train-split photos int8 is calibrated on (all of them when the split is smaller). Raises CarscopeError
    (exit 2) for bad input and ExportFailed (exit 1) when the exported graph does not match PyTorch."""
    opset = _check_options(opset, eval_photos=eval_photos, calib_photos=calib_photos, ood_method=ood_method,
                           ood_tpr=ood_tpr, unknown_tpr=unknown_tpr)
    options = {"int8": int8, "fp16": fp16, "force": force, "opset": opset, "exporter": exporter,
               "eval_photos": eval_photos, "calib_photos": calib_photos, "ood": ood_method, "ood_tpr": ood_tpr,
               "unknown_tpr": unknown_tpr, "levels": levels}
    out = Path(out)
    _check_out(out)
    inputs = _read_inputs(view_run, model_run, data, view_data)

    tmp, work = _scratch_dirs(out)
    t0 = time.perf_counter()
    try:
        models = {}
        for key in MODEL_KEYS:
            models[key] = _export_model(key, inputs.states[key], inputs.runs[key], inputs.photos[key], tmp, work,
                                        log=log, opset=opset, exporter=exporter, int8=int8, fp16=fp16,
                                        force=force, eval_photos=eval_photos, calib_photos=calib_photos,
                                        ood_method=ood_method if key == "model" else "none", ood_tpr=ood_tpr,
                                        unknown_tpr=unknown_tpr,
                                        dataset=inputs.dataset if key == "model" and levels else None)
        log("thumbnails and specs")
        thumbs = write_thumbs(inputs.photos, inputs.dataset, tmp, models["view"], inputs.states["view"],
                              inputs.states["model"]["labels"], thumbs_per_view, thumbs_max)
        _write_specs(inputs.dataset, inputs.states["model"]["labels"], tmp)
        meta = _bundle_meta(models, thumbs, inputs, options, view_data is not None, t0=t0)
        shutil.rmtree(work)
        write_meta(meta, tmp)
        load(tmp, verify=True)  # the bundle must read back through the contract module before it is published
        _publish(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log(f"bundle written to {out} in {time.perf_counter() - t0:.1f}s")
    return load(out, verify=False)


def _export_model(key: str, state: dict, run_dir: Path, photos: dict, tmp: Path, work: Path, *, log, opset: int,
                  exporter: str, int8: bool, fp16: bool, force: bool, eval_photos: int,
                  calib_photos: int, ood_method: str = "none", ood_tpr: float = DEFAULT_OOD_TPR,
                  unknown_tpr: float | None = None, dataset=None) -> dict[str, Any]:
    """One classifier's stages, in order; returns its bundle.json entry. `photos` holds its run's splits; with a
    `dataset` (the model classifier's), the levels stage finds the model-years it cannot tell apart."""
    graph = export_graph(key, state, run_dir, tmp, work, opset=opset, exporter=exporter,
                         features=ood_method != "none", log=log)  # features: the OOD score's input
    checked = check_parity(graph, photos["test"].iloc[:eval_photos], log=log)
    entry = model_entry(graph, checked.parity)
    ood = None
    if graph.features:
        ood = fit_ood(graph, checked, photos, tmp, method=ood_method, tpr=ood_tpr, unknown_tpr=unknown_tpr,
                      log=log)
        entry["ood"] = ood.entry
    if dataset is not None:
        entry["levels"] = fit_levels(checked.session, photos, graph.spec, state["labels"], dataset,
                                     float(state["temperature"]), test_logits=checked.fp32,
                                     test_targets=checked.targets, val_logits=ood and ood.val_logits, log=log)
    if int8:
        _record(entry, int8_variant(graph, checked, photos["train"], tmp, calib_photos=calib_photos, ood=ood,
                                    force=force, log=log))
    if fp16:
        _record(entry, fp16_variant(graph, checked, tmp, force=force, log=log))
    return entry


def _record(entry: dict[str, Any], variant: Variant) -> None:
    """A variant into its classifier's entry: under "variants" when kept, "refused" when not; a kept int8's own
    OOD threshold beside the OOD score's (whose "variants" exists once int8 was tried)."""
    entry["variants" if variant.kept else "refused"][variant.name] = variant.record
    if variant.ood is not None:
        ood_variants = entry["ood"].setdefault("variants", {})
        if variant.kept:
            ood_variants[variant.name] = variant.ood


def _check_options(opset: int | None, *, eval_photos: int, calib_photos: int, ood_method: str,
                   ood_tpr: float, unknown_tpr: float | None = None) -> int:
    """CarscopeError for an option out of range; returns the opset to export with."""
    from carscope.export.onnx_export import DEFAULT_OPSET, MIN_OPSET

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
    if unknown_tpr is not None and not 0.5 <= unknown_tpr <= ood_tpr:
        raise CarscopeError(f"--unknown-tpr must be in [0.5, --ood-tpr {ood_tpr}], not {unknown_tpr} (0: no "
                            "unknown-model check)")
    return opset


def _check_out(out: Path) -> None:
    """Replacing an earlier bundle is fine; writing over some other directory is not."""
    if out.exists():
        if not out.is_dir():
            raise CarscopeError(f"--out {out} exists and is not a directory")
        if any(out.iterdir()) and not (out / BUNDLE_JSON).is_file():
            raise CarscopeError(f"--out {out} is a non-empty directory that is not a bundle; choose another path")


def _read_inputs(view_run, model_run, data, view_data) -> _Inputs:
    """Load both runs and their datasets, check that they belong together, and resolve each run's splits."""
    from carscope.crawler import dataset as dsmod
    from carscope.train.checkpoint import load_run

    runs = {"view": Path(view_run), "model": Path(model_run)}
    if runs["view"].resolve() == runs["model"].resolve():
        raise CarscopeError("--view-run and --model-run are the same run")
    dataset = dsmod.load(data)
    datasets = {"model": dataset, "view": dsmod.load(view_data) if view_data is not None else dataset}
    states = {key: load_run(path, task=key) for key, path in runs.items()}
    _check_runs(runs, states, dataset)
    return _Inputs(runs=runs, dataset=dataset, datasets=datasets, states=states,
                   photos={key: _run_photos(runs[key], datasets[key], states[key]["labels"]) for key in runs})


def _check_runs(runs: dict[str, Path], states: dict[str, dict], dataset) -> None:
    """Each checkpoint carries a whole preprocessing spec and a usable temperature; the view run classifies
    views; every class of the model run is in the dataset."""
    from carscope.train.checkpoint import VIEW_LABELS

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


def _run_photos(run: Path, dataset, labels: list[str]) -> dict[str, Any]:
    """The run's test, train and val photos in `dataset`; a run with no test photos cannot be checked."""
    from carscope.export.photos import read_splits, split_photos

    splits = read_splits(run)
    test = split_photos(run, dataset, "test", labels, splits)
    if test.empty:
        raise CarscopeError(f"run {run} has no test-split photos in {dataset.root} to check the export on")
    train = split_photos(run, dataset, "train", labels, splits)
    val = split_photos(run, dataset, "val", labels, splits)
    return {"test": test, "train": train, "val": val}


def _scratch_dirs(out: Path) -> tuple[Path, Path]:
    """The temporary bundle beside `out`, and its work directory for what the bundle does not keep."""
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    except OSError as exc:
        raise CarscopeError(f"cannot write a bundle next to {out}: {exc.strerror}") from None
    work = tmp / ".work"
    work.mkdir()
    return tmp, work


def _write_specs(dataset, served: list[str], tmp: Path) -> None:
    """The served classes' rows of the dataset's specs table: as parquet (the dataset's format) and as JSON, the
    rows serve reads (no pandas or pyarrow in a serving process: carscope/export/bundle.py `specs_rows`)."""
    import json

    from carscope.crawler import dataset as dsmod
    from carscope.export.bundle import SPECS_JSON, json_value

    specs = dataset.specs[dataset.specs["model_id"].astype(str).isin(served)]
    dsmod.write_table(specs, tmp / "specs.parquet", dsmod.SPECS_COLUMNS)
    rows = [{k: json_value(v) for k, v in row.items()} for row in specs.to_dict(orient="records")]
    (tmp / SPECS_JSON).write_text(json.dumps(rows, ensure_ascii=False, sort_keys=True) + "\n")


def _bundle_meta(models: dict, thumbs: dict, inputs: _Inputs, options: dict, own_view_data: bool, *,
                 t0: float) -> dict[str, Any]:
    """bundle.json's content (carscope/export/bundle.py); the export took from `t0` (perf_counter) to now."""
    dataset = inputs.dataset
    return {
        "format_version": FORMAT_VERSION,
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "tools": _tool_versions(),
        "models": models,
        "thumbs": thumbs,
        "specs": "specs.parquet",
        "specs_json": SPECS_JSON,
        "source": {"data": str(dataset.root.resolve()),
                   "images": int(len(dataset.images)),
                   **({"view_data": str(inputs.datasets["view"].root.resolve())} if own_view_data else {})},
        "options": options,
        "export_s": round(time.perf_counter() - t0, 2),
    }


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
