"""The export's variant stage: an int8 and an fp16 graph beside the fp32 one, each kept only if it passes its gate.

    python -c "from carscope.export.variants import Variant; print(Variant('int8', {'reason': 'x'}, kept=False))"

Both start from the graph as exported (`Graph.raw`) and are judged on the same test photos as the fp32 parity
check (`Checked`), by the gates of carscope/export/parity.py: int8 (static QDQ, CPU) against onnxruntime fp32's
accuracy, and the OOD score's figures when the classifier has one; fp16 (CUDA) against PyTorch fp32, when a CUDA
provider is there to run it. A refused variant's file is removed and its numbers are returned to be recorded;
`force` keeps it anyway, marked.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from carscope.common.errors import CarscopeError
from carscope.export.bundle import sha256_file

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from carscope.export.graph import Checked, Graph
    from carscope.export.ood_fit import OodFit


@dataclass
class Variant:
    """What one variant came to: its record for the entry's "variants" (kept) or "refused" (not)."""

    name: str  # "int8" or "fp16"
    record: dict[str, Any]
    kept: bool
    ood: dict[str, Any] | None = None  # int8 of a classifier with an OOD score: its own threshold and gate


def int8_variant(graph: Graph, checked: Checked, train: pd.DataFrame, tmp: Path, *, calib_photos: int,
                 ood: OodFit | None, force: bool, log: Callable[[str], Any]) -> Variant:
    """Quantise to `tmp`/<key>.int8.onnx, calibrated on `calib_photos` of the `train` photos (shuffled), and
    measure it on the checked test photos against onnxruntime fp32."""
    import torch

    from carscope.export import parity
    from carscope.export.onnx_export import cpu_session, run_all
    from carscope.export.photos import batches
    from carscope.export.quantize import to_int8

    key, spec = graph.key, graph.spec
    train = train.sample(frac=1.0, random_state=0) if len(train) else train
    calib = train["file"].tolist()[:calib_photos]
    if not calib:
        raise CarscopeError(f"run {graph.run} has no train-split photos in the dataset to calibrate int8 on")
    q_file = f"{key}.int8.onnx"
    quant = to_int8(graph.raw, tmp / q_file, batches(calib, spec, 16))
    q_session = cpu_session(tmp / q_file, threads=torch.get_num_threads())
    q_logits, q_feats = run_all(q_session, batches(checked.files, spec))
    vs = parity.compare(checked.fp32, q_logits, temperature=graph.temperature, targets=checked.targets)
    drop = (vs["top1_reference"] - vs["top1_candidate"]) * 100
    metrics = {"split": "test", "photos": vs["photos"], "top1_fp32": vs["top1_reference"],
               "top1_int8": vs["top1_candidate"], "top1_drop_points": round(drop, 4),
               "top1_agreement_vs_fp32": vs["top1_agreement"], "max_abs_logit_diff": vs["max_abs_logit_diff"],
               "max_abs_prob_diff": vs["max_abs_prob_diff"]}
    line = (f"{key}: int8 on {vs['photos']} test photos: top-1 {vs['top1_reference']:.2%} fp32 -> "
            f"{vs['top1_candidate']:.2%} int8 (drop {drop:.2f} points), agreement with fp32 "
            f"{vs['top1_agreement']:.2%}, calibrated on {quant['calibration']['photos']} train photos")
    reasons = parity.int8_failures(drop)
    q_ood = None
    if ood is not None:
        q_ood = ood.variant(q_session, q_feats, spec)
        metrics["ood"] = q_ood["gate"]
        reasons += q_ood["gate"]["failures"]
        log(f"{key}: int8 OOD score: {q_ood['gate']['line']}")
    if reasons and not force:
        (tmp / q_file).unlink()
        log(f"{line}: REFUSED ({'; '.join(reasons)}; --force keeps it)")
        return Variant("int8", {"reason": "; ".join(reasons), "metrics": metrics, "quantization": quant},
                       kept=False, ood=q_ood)
    forced = bool(reasons)
    record = {"file": q_file, "sha256": sha256_file(tmp / q_file), "metrics": metrics, "quantization": quant,
              "forced": forced}
    log(line + (" (kept by --force)" if forced else ""))
    return Variant("int8", record, kept=True, ood=q_ood)


def fp16_variant(graph: Graph, checked: Checked, tmp: Path, *, force: bool, log: Callable[[str], Any]) -> Variant:
    """Convert to `tmp`/<key>.fp16.onnx and, where CUDA runs it, measure it against PyTorch fp32; without CUDA it
    is kept unvalidated, with the reason."""
    import numpy as np

    from carscope.export import parity
    from carscope.export.onnx_export import INPUT_NAME
    from carscope.export.photos import batches
    from carscope.export.quantize import cuda_session, to_fp16

    key = graph.key
    h_file = f"{key}.fp16.onnx"
    conv = to_fp16(graph.raw, tmp / h_file)
    sess, reason = cuda_session(tmp / h_file)
    record = {"file": h_file, "provider": "CUDAExecutionProvider", "conversion": conv}
    if sess is None:
        record["validation"] = {"validated": False, "reason": reason}
        log(f"{key}: fp16 written, {reason}")
    else:
        h_logits = np.concatenate([sess.run(None, {INPUT_NAME: x})[0] for x in batches(checked.files, graph.spec)])
        vs = parity.compare(checked.eager, h_logits, temperature=graph.temperature, targets=checked.targets)
        record["validation"] = {"validated": True, "vs": "pytorch fp32", **vs}
        log(f"{key}: fp16 on CUDA vs PyTorch fp32: {parity.summary(vs)}")
        if not parity.fp16_passes(vs["top1_agreement"]) and not force:
            (tmp / h_file).unlink()
            limit = parity.FP16_MIN_AGREEMENT
            log(f"{key}: fp16 REFUSED (agreement below {limit:.0%}; --force keeps it)")
            return Variant("fp16", {"reason": f"top-1 agreement {vs['top1_agreement']:.2%} < {limit:.0%}",
                                    "validation": vs}, kept=False)
    record["sha256"] = sha256_file(tmp / h_file)
    return Variant("fp16", record, kept=True)
