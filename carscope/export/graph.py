"""The first two stages of exporting one classifier: its ONNX graph, and the proof that the graph is the model.

    python -c "from carscope.train.checkpoint import load_run; from carscope.export.graph import export_graph; \
from pathlib import Path; g = export_graph('model', load_run('runs/model'), Path('runs/model'), Path('/tmp'), \
Path('/tmp'), opset=18, exporter='auto', features=True, log=print); print(g.path)"

`export_graph` rebuilds the run's model from its checkpoint, exports it (onnx.checker included) and ships the
faster of the two graph forms (carscope/export/onnx_export.py `choose_graph`). `check_parity` runs eager PyTorch
and onnxruntime fp32 side by side on the run's test photos and raises ExportFailed unless the graph passes the fp32
gate of carscope/export/parity.py (logits, and features when the graph returns them). `model_entry` is the
classifier's bundle.json entry built from the two.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from carscope.common.errors import CarscopeError
from carscope.export.bundle import sha256_file

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np
    import pandas as pd


class ExportFailed(CarscopeError):
    """The export ran but did not prove itself (parity): exit status 1, the numbers in the message."""

    def __init__(self, message: str):
        super().__init__(message, exit_code=1)


@dataclass
class Graph:
    """One classifier exported: its run, the eager model and the ONNX graph made from it."""

    key: str  # "view" or "model": the bundle's name for the classifier
    run: Path  # the run directory
    state: dict[str, Any]  # the run's checkpoint (carscope.train.checkpoint.load_run)
    spec: dict[str, Any]  # the preprocessing spec the checkpoint carries
    size: int  # the input's side, px (the spec's crop)
    labels: list[str]
    temperature: float
    net: Any  # the eager model; returns (logits, features) when `features`
    features: bool  # the graph returns the penultimate features beside the logits
    raw: Path  # the graph as exported, in the work directory: the int8 and fp16 variants start from it
    path: Path  # the shipped fp32 graph, in the bundle
    info: dict[str, Any]  # how it was exported (export_onnx's record)
    choice: dict[str, Any]  # which form was shipped, with the timings (choose_graph's record)


@dataclass
class Checked:
    """The test photos' outputs from eager PyTorch and onnxruntime fp32, and the parity figures between them."""

    session: Any  # onnxruntime fp32 session on the shipped graph
    files: list[str]  # the test photos the figures are over
    targets: np.ndarray
    eager: np.ndarray  # logits
    fp32: np.ndarray
    eager_features: np.ndarray | None  # None when the graph returns logits only
    fp32_features: np.ndarray | None
    parity: dict[str, Any]


def export_graph(key: str, state: dict, run: Path, tmp: Path, work: Path, *, opset: int, exporter: str,
                 features: bool, log: Callable[[str], Any]) -> Graph:
    """Export the run's model to `work`/<key>.raw.onnx and ship the chosen form as `tmp`/<key>.onnx."""
    import torch

    from carscope.export.onnx_export import choose_graph, export_onnx, with_features
    from carscope.train.models import model_from_checkpoint

    spec = dict(state["preprocess"])
    size = int(spec["crop"])
    try:
        model = model_from_checkpoint(state)
    except (RuntimeError, KeyError, TypeError) as exc:  # state dict does not fit the arch it names
        raise CarscopeError(f"{state['path']}: weights do not fit arch '{state['arch']}' "
                            f"({str(exc).strip().splitlines()[0][:120]})") from None

    raw = work / f"{key}.raw.onnx"
    info = export_onnx(model, size, raw, opset, exporter, features=features)
    net = with_features(model) if features else model
    how = info["exporter"] + (f" (dynamo failed: {info['fallback_reason']})" if info["fallback_reason"] else "")
    log(f"{key}: {state['arch']} exported with {how}, opset {opset}, in {info['export_s']:.1f}s; onnx.checker ok")
    path = tmp / f"{key}.onnx"
    choice = choose_graph(raw, path, size, work_dir=work, threads=torch.get_num_threads())
    m = choice["measured"]
    log(f"{key}: shipping the {choice['chosen'].replace('_', ' ')} graph (load+optimise "
        f"{m['optimise_at_load']['load_ms']:.0f} ms, p50 {m['optimise_at_load']['p50_ms']:.2f} ms; offline "
        f"{m['offline_optimised']['load_ms']:.0f} ms, p50 {m['offline_optimised']['p50_ms']:.2f} ms)")
    return Graph(key=key, run=run, state=state, spec=spec, size=size, labels=list(state["labels"]),
                 temperature=float(state["temperature"]), net=net, features=features, raw=raw, path=path,
                 info=info, choice=choice)


def check_parity(graph: Graph, test: pd.DataFrame, *, log: Callable[[str], Any]) -> Checked:
    """Eager PyTorch against onnxruntime fp32 on the `test` photos (columns file, target); ExportFailed unless
    every top-1 is the same and the error is within the fp32 gate's limit."""
    import numpy as np
    import torch

    from carscope.export import parity
    from carscope.export.onnx_export import INPUT_NAME, cpu_session
    from carscope.export.photos import batches

    spec, features = graph.spec, graph.features
    files, targets = test["file"].tolist(), test["target"].to_numpy()
    session = cpu_session(graph.path, threads=torch.get_num_threads())
    eager, fp32, eager_f, fp32_f = [], [], [], []
    with torch.inference_mode():
        for x in batches(files, spec):
            out = graph.net(torch.from_numpy(x))
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
    result = parity.compare(eager, fp32, temperature=graph.temperature, targets=targets)
    result.update(provider="CPUExecutionProvider", split="test",
                  batch1_max_abs_logit_diff=float(np.abs(single[0] - fp32[0]).max()))
    eager_features = fp32_features = None
    if features:
        eager_features, fp32_features = np.concatenate(eager_f), np.concatenate(fp32_f).astype(np.float32)
        result["features"] = parity.compare_features(eager_features, fp32_features)
    if not parity.fp32_passes(result):
        raise ExportFailed(f"{graph.key}: onnxruntime fp32 does not match PyTorch: {parity.summary(result)} "
                           f"(needs every top-1 equal and max rel. error <= {parity.FP32_MAX_REL_ERROR:g}, "
                           f"logits and features)")
    log(f"{graph.key}: parity fp32 vs PyTorch: {parity.summary(result)}")
    return Checked(session=session, files=files, targets=targets, eager=eager, fp32=fp32,
                   eager_features=eager_features, fp32_features=fp32_features, parity=result)


def model_entry(graph: Graph, parity: dict[str, Any]) -> dict[str, Any]:
    """The classifier's bundle.json entry (carscope/export/bundle.py), before its OOD score and variants."""
    from carscope.export.onnx_export import FEATURES_NAME, INPUT_NAME, OUTPUT_NAME
    from carscope.export.photos import SPLITS_FILE

    state, size = graph.state, graph.size
    run_files = {name: graph.run / name for name in (SPLITS_FILE, "config.json", "report.json")}
    return {
        "file": graph.path.name, "sha256": sha256_file(graph.path), "task": graph.key, "arch": state["arch"],
        "arch_kwargs": _jsonable(state.get("arch_kwargs", {})), "labels": graph.labels,
        "input": {"name": INPUT_NAME, **_jsonable(graph.spec), "shape": ["batch", 3, size, size]},
        "output": {"name": OUTPUT_NAME, "kind": "logits", **({"features": FEATURES_NAME} if graph.features else {})},
        "temperature": graph.temperature,
        "metrics": _jsonable(state.get("metrics", {})), "epoch": _jsonable(state.get("epoch")),
        "parity": parity, "export": graph.info, "graph": graph.choice, "variants": {}, "refused": {},
        "source": {"run": str(graph.run.resolve()), "checkpoint": str(Path(state["path"]).resolve()),
                   "checkpoint_sha256": sha256_file(state["path"]),
                   **{f"{Path(n).stem}": str(p.resolve()) for n, p in run_files.items() if p.is_file()},
                   "splits_sha256": sha256_file(run_files[SPLITS_FILE])},
    }


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
