"""PyTorch module -> checked ONNX file with a dynamic batch axis, and onnxruntime session helpers.

    python -c "from carscope.train.models import create_model; from carscope.export.onnx_export import export_onnx; \
print(export_onnx(create_model('tinynet', 3).eval(), 64, 'tiny.onnx'))"

The torch.export-based exporter (`dynamo=True`) is tried first; when it cannot trace a model, the TorchScript
exporter is used and the reason is recorded, so a bundle says how its graph was made.
"""

from __future__ import annotations

import os
import shutil
import time
import warnings
from pathlib import Path
from typing import Any

from carscope.common.errors import CarscopeError

INPUT_NAME = "input"
OUTPUT_NAME = "logits"
FEATURES_NAME = "features"  # the penultimate activations (the last Linear's input): the OOD score's input
MIN_OPSET = 18
DEFAULT_OPSET = 18  # the oldest opset the dynamo exporter targets natively: widest runtime support
MAX_BATCH = 4096


def with_features(model):
    """`model` as a module returning (logits, features) from one forward pass: features are the input of its
    last Linear layer (the penultimate activations, after pooling and any hidden head layers). The weights are
    shared with `model`, not copied."""
    import torch
    from torch import nn

    linears = [(name, m) for name, m in model.named_modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise CarscopeError("the model has no Linear layer to take features from")
    name, last = linears[-1]

    class WithFeatures(nn.Module):
        def __init__(self):
            super().__init__()
            self.model = model
            self.captured: list[torch.Tensor] = []
            self.head = last

        def forward(self, x):
            feats = []
            handle = self.head.register_forward_pre_hook(lambda m, args: feats.append(args[0]))
            try:
                logits = self.model(x)
            finally:
                handle.remove()
            return logits, feats[-1]

    return WithFeatures().eval()


def export_onnx(model, img_size: int, path: str | os.PathLike, opset: int = DEFAULT_OPSET,
                exporter: str = "auto", features: bool = False) -> dict[str, Any]:
    """Write `model` (eval mode, CPU) as ONNX to `path`; returns how (exporter, fallback reason, seconds).

    `exporter`: "auto" (dynamo, falling back to TorchScript), "dynamo" or "torchscript". `features`: the graph
    returns the penultimate features too (second output, FEATURES_NAME), from the same run."""
    import torch

    if opset < MIN_OPSET:
        raise CarscopeError(f"--opset {opset} is too old; carscope exports opset {MIN_OPSET} or newer")
    path = Path(path)
    # batch 2, not 1: torch.export specialises a dimension whose example size is 0 or 1
    example = torch.randn(2, 3, img_size, img_size)
    outputs = [OUTPUT_NAME, FEATURES_NAME] if features else [OUTPUT_NAME]
    if features:
        model = with_features(model)
    info: dict[str, Any] = {"opset": opset, "fallback_reason": None, "outputs": outputs}
    t0 = time.perf_counter()
    if exporter in ("auto", "dynamo"):
        try:
            _export_dynamo(model, example, path, opset, info, outputs)
            info["exporter"] = "dynamo"
        except Exception as exc:  # any tracing failure: the exporters raise many types
            if exporter == "dynamo":
                raise
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            info["fallback_reason"] = f"{type(exc).__name__}: {reason}"[:500]
            path.unlink(missing_ok=True)
    if "exporter" not in info:
        _export_torchscript(model, example, path, opset, info, outputs)
        info["exporter"] = "torchscript"
    info["export_s"] = round(time.perf_counter() - t0, 3)
    check(path)
    info["dynamic_batch"] = _batch_is_dynamic(path)
    if not info["dynamic_batch"]:
        raise CarscopeError(f"{path.name}: exported graph has a fixed batch size")
    return info


def _export_dynamo(model, example, path: Path, opset: int, info: dict, outputs: list[str]) -> None:
    import torch

    batch = torch.export.Dim("batch", min=1, max=MAX_BATCH)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        program = torch.onnx.export(model, (example,), dynamo=True, opset_version=opset,
                                    input_names=[INPUT_NAME], output_names=outputs,
                                    dynamic_shapes=({0: batch},), optimize=True, verbose=False)
        program.save(str(path))
    info["warnings"] = sorted({str(w.message).splitlines()[0][:200] for w in caught})[:5]


def _export_torchscript(model, example, path: Path, opset: int, info: dict, outputs: list[str]) -> None:
    import torch

    with warnings.catch_warnings(record=True) as caught:  # its deprecation warning is expected here
        warnings.simplefilter("always")
        torch.onnx.export(model, (example,), str(path), dynamo=False, opset_version=opset,
                          input_names=[INPUT_NAME], output_names=outputs,
                          dynamic_axes={INPUT_NAME: {0: "batch"}, **{name: {0: "batch"} for name in outputs}})
    info["warnings"] = sorted({str(w.message).splitlines()[0][:200] for w in caught})[:5]


def check(path: str | os.PathLike) -> None:
    """onnx.checker with full_check (shape inference too); CarscopeError naming the file when it fails."""
    import onnx

    try:
        onnx.checker.check_model(str(path), full_check=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CarscopeError(f"{Path(path).name} fails onnx.checker: {first}") from None


def _batch_is_dynamic(path: Path) -> bool:
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    dim = graph.input[0].type.tensor_type.shape.dim[0]
    out = graph.output[0].type.tensor_type.shape.dim[0]
    return bool(dim.dim_param) and not dim.HasField("dim_value") and not out.HasField("dim_value")


def cpu_session(path: str | os.PathLike, *, threads: int | None = None, level: str = "all",
                optimized_out: str | os.PathLike | None = None):
    """An onnxruntime session on the CPU provider, asked for explicitly (onnxruntime-gpu lists CUDA too)."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.graph_optimization_level = {
        "none": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
        "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
        "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
    }[level]
    so.log_severity_level = 3  # errors only: ORT's warnings about unused initialisers are noise here
    if threads:
        so.intra_op_num_threads = int(threads)
        so.inter_op_num_threads = 1
    if optimized_out is not None:
        so.optimized_model_filepath = str(optimized_out)
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def run_batches(session, arrays) -> Any:
    """Logits of every batch in `arrays` through `session`, concatenated."""
    import numpy as np

    name = session.get_inputs()[0].name
    outs = [session.run(None, {name: a})[0] for a in arrays]
    return np.concatenate(outs).astype(np.float32)


def run_all(session, arrays) -> tuple[Any, Any]:
    """(logits, features or None) of every batch in `arrays`, concatenated: one session call per batch."""
    import numpy as np

    name = session.get_inputs()[0].name
    names = [o.name for o in session.get_outputs()]
    logits, feats = [], []
    for a in arrays:
        out = session.run(None, {name: a})
        logits.append(out[0])
        if FEATURES_NAME in names:
            feats.append(out[names.index(FEATURES_NAME)])
    return (np.concatenate(logits).astype(np.float32),
            np.concatenate(feats).astype(np.float32) if feats else None)


def choose_graph(raw: str | os.PathLike, dest: str | os.PathLike, img_size: int, *, work_dir: str | os.PathLike,
                 repeat: int = 20, threads: int | None = None) -> dict[str, Any]:
    """Ship the ORT-optimised graph or the exported one (optimised at load), whichever measures faster.

    The offline graph is optimised at ORT_ENABLE_BASIC: its rewrites (constant folding, node fusions into
    standard ops) are provider-independent, so the file still runs on CUDA; the layout rewrites of
    ORT_ENABLE_ALL are CPU-specific and always happen at load. Both candidates are measured the way serve
    uses them (loaded with ORT_ENABLE_ALL): session creation and batch-1 latency."""
    import numpy as np

    raw, dest, work_dir = Path(raw), Path(dest), Path(work_dir)
    offline = work_dir / f"{dest.stem}.ort-basic.onnx"
    cpu_session(raw, level="basic", optimized_out=offline, threads=threads)
    x = np.random.default_rng(0).standard_normal((1, 3, img_size, img_size), dtype=np.float32)
    measured: dict[str, dict[str, float]] = {}
    for name, candidate in (("optimise_at_load", raw), ("offline_optimised", offline)):
        t0 = time.perf_counter()
        sess = cpu_session(candidate, threads=threads)
        load_ms = (time.perf_counter() - t0) * 1000
        p50 = median_ms(lambda s=sess: s.run(None, {INPUT_NAME: x}), repeat)
        measured[name] = {"load_ms": round(load_ms, 2), "p50_ms": round(p50, 3),
                          "bytes": candidate.stat().st_size}
    a, b = measured["optimise_at_load"], measured["offline_optimised"]
    # latency decides; within 3% (timing noise on a shared CPU) the quicker load decides
    if abs(a["p50_ms"] - b["p50_ms"]) <= 0.03 * min(a["p50_ms"], b["p50_ms"]):
        chosen = "offline_optimised" if b["load_ms"] < a["load_ms"] else "optimise_at_load"
    else:
        chosen = "offline_optimised" if b["p50_ms"] < a["p50_ms"] else "optimise_at_load"
    if chosen == "offline_optimised":
        try:
            check(offline)  # ship only a graph that is still plain, checkable ONNX
        except CarscopeError:
            chosen = "optimise_at_load"
    shutil.copyfile(offline if chosen == "offline_optimised" else raw, dest)
    return {"chosen": chosen, "measured": measured, "repeat": repeat}


def median_ms(fn, repeat: int, warmup: int = 3, max_seconds: float = 5.0) -> float:
    import statistics

    for _ in range(warmup):
        fn()
    times, start = [], time.perf_counter()
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
        if time.perf_counter() - start > max_seconds and len(times) >= 5:
            break
    return statistics.median(times) * 1000
