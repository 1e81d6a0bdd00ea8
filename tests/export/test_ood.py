"""The out-of-distribution score an export fits, records and gates, computed the same from PyTorch, fp32 ONNX and
int8 ONNX features (the arithmetic alone: test_ood_unit.py)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from carscope.common.errors import CarscopeError
from carscope.export.bundle import load as load_bundle


# ------------------------------------------------------------------------------------------- the export
def test_bundle_records_the_ood_check(bundle):
    out, logs = bundle
    meta = json.loads((out / "bundle.json").read_text())
    ood = meta["models"]["model"]["ood"]
    assert ood["method"] in ("mahalanobis", "knn") and set(ood["compared"]) == {"mahalanobis", "knn"}
    assert ood["tpr"] == 0.98 and ood["threshold_split"] in ("val", "test") and ood["fit"]["split"] == "train"
    assert ood["figures"]["synthetic"]["photos"] == 200 and "auroc_vs_test" in ood["figures"]["synthetic"]
    assert meta["models"]["model"]["output"]["features"] == "features"
    assert "ood" not in meta["models"]["view"]  # the view classifier has its `other` class instead
    assert meta["models"]["model"]["parity"]["features"]["max_rel_error"] < 1e-3
    assert any("OOD score" in line for line in logs)
    # the unknown-model threshold: the same score's val quantile at unknown_tpr, tighter than the unfamiliar one
    assert ood["unknown_tpr"] == 0.90 and ood["unknown_threshold"] <= ood["threshold"]
    if "int8" in (ood.get("variants") or {}):
        v = ood["variants"]["int8"]
        assert v["unknown_threshold"] <= v["threshold"]
    # the levels stage: groups of model-years of one model, from the val photos, and the test figures
    levels = meta["models"]["model"]["levels"]
    assert levels["source"] in ("val", "test") and levels["join"] == 0.25
    specs = {r["model_id"]: r for r in __import__("pandas").read_parquet(out / "specs.parquet").to_dict("records")}
    for group in levels["groups"]:
        assert len(group) > 1 and len({(specs[g]["make"], specs[g]["model"]) for g in group}) == 1
    test = levels["figures"]["test"]
    assert test["model_year"]["top1"] <= test["model"]["top1"] <= test["make"]["top1"]
    assert any("cannot tell apart" in line for line in logs)
    # a tampered OOD file is refused like a tampered graph
    assert load_bundle(out).models["model"].ood_scorer().method == ood["method"]


def test_score_is_the_same_from_pytorch_fp32_and_int8(bundle, tiny):
    """The features of the three graphs give the same score: fp32 ONNX = PyTorch to float rounding, and int8
    keeps the decisions export measured (its own threshold, recorded)."""
    from carscope.crawler import dataset as dsmod
    from carscope.export.onnx_export import cpu_session, run_all, with_features
    from carscope.export.photos import batches, split_photos
    from carscope.train.checkpoint import load_run
    from carscope.train.models import model_from_checkpoint

    out, _ = bundle
    data, _, model_run = tiny
    b = load_bundle(out)
    entry = b.models["model"]
    scorer = entry.ood_scorer()
    state = load_run(model_run, task="model")
    files = split_photos(model_run, dsmod.load(data), "test", state["labels"])["file"].tolist()
    x = np.concatenate(list(batches(files, entry.input_spec)))
    with torch.inference_mode():
        _, eager = with_features(model_from_checkpoint(state))(torch.from_numpy(x))
    _, fp32 = run_all(cpu_session(entry.path("fp32")), [x])
    s_eager, s_fp32 = scorer.score(eager.numpy()), scorer.score(fp32)
    np.testing.assert_allclose(s_fp32, s_eager, rtol=1e-4, atol=1e-4)
    assert "int8" in entry.variants(), "the tiny export's int8 variant passed its gates"
    _, q = run_all(cpu_session(entry.path("int8")), [x])
    s_q = scorer.score(q)
    t32, t8 = entry.ood_threshold("fp32"), entry.ood_threshold("int8")
    assert t8 == entry.ood["variants"]["int8"]["threshold"] and t32 == entry.ood["threshold"]  # int8's own
    agree = ((s_q > t8) == (s_fp32 > t32)).mean()
    gate = entry.meta["variants"]["int8"]["metrics"]["ood"]
    assert agree >= 0.9 and gate["failures"] == [] and gate["test_tpr"] >= gate["test_tpr_fp32"] - 0.03
    assert np.corrcoef(s_q, s_fp32)[0, 1] > 0.9


def test_int8_that_loses_the_score_is_refused(tiny, tmp_path, monkeypatch):
    from carscope.export import ood_fit, parity, pipeline

    monkeypatch.setattr(parity, "INT8_OOD_MAX_AUROC_DROP", -1.0)  # any AUROC at all counts as a drop
    monkeypatch.setattr(ood_fit, "OOD_MAX_FIT_PHOTOS", 12)  # and the fit takes a per-class sample
    data, view, model = tiny
    logs: list[str] = []
    b = pipeline.export_bundle(view, model, data, tmp_path / "b", int8=True, log=logs.append)
    entry = b.models["model"]
    assert "int8" not in entry.variants() and "OOD AUROC drops" in entry.meta["refused"]["int8"]["reason"]
    assert "int8" not in (entry.ood.get("variants") or {})
    assert entry.ood["fit"]["photos"] <= 12 + len(entry.labels)  # at most the cap, rounded per class
    assert any("REFUSED" in line and "OOD" in line for line in logs)


def test_export_without_ood(tiny, tmp_path):
    from carscope.export.pipeline import export_bundle
    from carscope.serve.app import create_app

    data, view, model = tiny
    b = export_bundle(view, model, data, tmp_path / "b", ood_method="none", log=lambda m: None)
    assert b.models["model"].ood is None and "features" not in b.models["model"].meta["output"]
    import onnx

    assert [o.name for o in onnx.load(str(b.models["model"].path())).graph.output] == ["logits"]
    models = create_app(tmp_path / "b", {"providers": "cpu"}).test_client().get("/api/v1/models").get_json()
    assert models["ood"]["checked"] is False
    with pytest.raises(CarscopeError, match="--ood-tpr"):
        export_bundle(view, model, data, tmp_path / "c", ood_tpr=1.0)
    with pytest.raises(CarscopeError, match="--unknown-tpr must be in"):  # looser than unfamiliar: no meaning
        export_bundle(view, model, data, tmp_path / "c", ood_tpr=0.95, unknown_tpr=0.97)
    # ood none: no unknown-model check either; no levels when asked: every answer a model-year or coarser
    assert b.models["model"].unknown_threshold() is None and b.models["model"].levels  # levels need no features
    c = export_bundle(view, model, data, tmp_path / "d", ood_method="none", levels=False, log=lambda m: None)
    assert c.models["model"].levels == {} and "levels" not in c.models["model"].meta
