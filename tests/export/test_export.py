"""`carscope export` on tiny runs: the bundle it writes, the numbers it records, and how it refuses."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from carscope.commands.cli import main
from carscope.common.errors import CarscopeError
from carscope.export import bundle as bmod

from .conftest import make_dataset


def _leftovers(parent: Path) -> list[str]:
    return [p.name for p in parent.iterdir() if p.name.startswith(".")]


def _ort(path: Path):
    from carscope.export.onnx_export import cpu_session

    return cpu_session(path, threads=1)


def test_bundle_is_complete_and_reads_back(bundle, tiny):
    out, _ = bundle
    data, view_run, model_run = tiny
    b = bmod.load(out)  # verifies every file's sha256
    from carscope.train.checkpoint import load_run

    for key, run in (("view", view_run), ("model", model_run)):
        state = load_run(run)
        entry = b.models[key]
        assert entry.labels == state["labels"]
        assert entry.temperature == pytest.approx(1.5)
        assert {k: entry.input_spec[k] for k in state["preprocess"]} == state["preprocess"]
        assert entry.meta["export"]["exporter"] == "dynamo" and entry.meta["export"]["fallback_reason"] is None
        assert entry.meta["graph"]["chosen"] in ("optimise_at_load", "offline_optimised")
        assert set(entry.meta["graph"]["measured"]) == {"optimise_at_load", "offline_optimised"}
        assert entry.meta["source"]["splits_sha256"] == bmod.sha256_file(Path(run) / "splits.parquet")
        # dynamic batch: the shipped graph answers 1 and 5 photos alike
        size = entry.input_spec["crop"]
        sess = _ort(entry.path())
        x = np.random.default_rng(0).standard_normal((5, 3, size, size), dtype=np.float32)
        five = sess.run(None, {"input": x})[0]
        one = sess.run(None, {"input": x[:1]})[0]
        assert five.shape == (5, len(entry.labels))
        np.testing.assert_allclose(one[0], five[0], atol=1e-5)
    assert set(b.meta["tools"]) >= {"torch", "onnx", "onnxruntime"}
    specs = b.specs()
    assert sorted(specs["model_id"]) == sorted(b.models["model"].labels)
    for label in b.models["model"].labels:
        thumbs = b.thumbs(label)
        assert len(thumbs["exterior"]) == 3 and len(thumbs["interior"]) == 3
    _check_thumbs(out, b)
    assert not _leftovers(out.parent)


def _check_thumbs(out: Path, b) -> None:
    """Every thumbnail is small and shows its view: the drawn interiors are dark, the exteriors sky-bright."""
    from PIL import Image

    for label in b.models["model"].labels:
        for view, files in b.thumbs(label).items():
            for rel in files:
                with Image.open(out / rel) as im:
                    assert max(im.size) <= 192
                    brightness = float(np.asarray(im.convert("L")).mean())
                assert (brightness < 90) == (view == "interior"), (rel, brightness)


def test_parity_numbers_in_bundle_json(bundle, tiny):
    out, logs = bundle
    data, _, model_run = tiny
    meta = json.loads((out / "bundle.json").read_text())
    n_test = int((pd.read_parquet(Path(model_run) / "splits.parquet")["split"] == "test").sum())
    for key in ("view", "model"):
        p = meta["models"][key]["parity"]
        assert p["provider"] == "CPUExecutionProvider" and p["split"] == "test"
        assert p["top1_agreement"] == 1.0 and p["top1_disagreements"] == 0
        assert 0 <= p["max_abs_logit_diff"] < 1e-3 and 0 <= p["max_rel_error"] < 1e-3
    assert meta["models"]["model"]["parity"]["photos"] == n_test
    assert any("parity fp32 vs PyTorch" in line for line in logs)


def test_recorded_parity_bounds_an_independent_check(bundle, tiny):
    """Re-run one test photo through PyTorch and the shipped graph: it is within the recorded max |Δlogit|."""
    import torch

    from carscope.export.photos import batches, split_photos
    from carscope.train.checkpoint import load_run
    from carscope.train.models import model_from_checkpoint

    out, _ = bundle
    data, _, model_run = tiny
    from carscope.crawler.dataset import load as load_dataset

    entry = bmod.load(out).models["model"]
    state = load_run(model_run)
    test = split_photos(model_run, load_dataset(data), "test", state["labels"])
    x = next(batches(test["file"].tolist()[:4], state["preprocess"]))
    with torch.inference_mode():
        ref = model_from_checkpoint(state)(torch.from_numpy(x)).numpy()
    got = _ort(entry.path()).run(None, {"input": x})[0]
    assert np.abs(ref - got).max() <= entry.meta["parity"]["max_abs_logit_diff"] + 1e-6
    assert (ref.argmax(1) == got.argmax(1)).all()


def test_int8_variant_is_quantised_and_measured(bundle):
    import onnx

    out, logs = bundle
    b = bmod.load(out)
    for key in ("view", "model"):
        v = b.models[key].meta["variants"]["int8"]
        m = v["metrics"]
        assert m["split"] == "test" and m["photos"] == b.models[key].meta["parity"]["photos"]
        assert m["top1_drop_points"] == pytest.approx((m["top1_fp32"] - m["top1_int8"]) * 100, abs=1e-3)
        assert m["top1_drop_points"] <= 1.0 and v["forced"] is False
        assert 0 < v["quantization"]["calibration"]["photos"] <= 128
        graph = onnx.load(str(b.models[key].path("int8"))).graph
        ops = {n.op_type for n in graph.node}
        assert {"QuantizeLinear", "DequantizeLinear"} <= ops
        inits = {i.name: i for i in graph.initializer}
        # per-channel: some weight's DequantizeLinear has one scale per output channel
        scales = [inits[n.input[1]] for n in graph.node if n.op_type == "DequantizeLinear" and n.input[1] in inits]
        assert any(len(s.dims) == 1 and s.dims[0] > 1 for s in scales)
        assert b.models[key].path("int8").stat().st_size < 0.5 * b.models[key].path().stat().st_size
        # the classifier head stays float: its Gemm reads a dequantised input and a float weight
        head = [n for n in graph.node if n.op_type == "Gemm"]
        assert head and all(n.input[1] in inits and inits[n.input[1]].data_type == onnx.TensorProto.FLOAT
                            for n in head)
        assert v["quantization"]["float_nodes"] == [n.name for n in head]
        # the pooling before the head is onnxruntime's int8-capable GlobalAveragePool, not a float ReduceMean
        assert v["quantization"]["global_pools_from_means"] >= 1
        assert "GlobalAveragePool" in ops and "ReduceMean" not in ops
    assert any("int8 on" in line for line in logs)


def test_fp16_variant_recorded_as_unvalidated_without_cuda(bundle):
    import onnx

    out, _ = bundle
    b = bmod.load(out)
    v = b.models["model"].meta["variants"]["fp16"]
    model = onnx.load(str(b.models["model"].path("fp16")))
    assert model.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT  # io kept float32
    assert any(i.data_type == onnx.TensorProto.FLOAT16 for i in model.graph.initializer)
    try:
        import torch

        cuda = torch.cuda.is_available()
    except ImportError:  # pragma: no cover
        cuda = False
    if not cuda:
        assert v["validation"] == {"validated": False, "reason": "not validated: no CUDA"}
    else:  # pragma: no cover - GPU machines
        assert v["validation"]["validated"] and v["validation"]["top1_agreement"] >= 0.99


def test_tampered_onnx_is_caught_by_sha256(bundle, tmp_path, capsys):
    out, _ = bundle
    copy = tmp_path / "bundle"
    shutil.copytree(out, copy)
    raw = bytearray((copy / "model.onnx").read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    (copy / "model.onnx").write_bytes(bytes(raw))
    with pytest.raises(CarscopeError, match="model.onnx does not match its sha256"):
        bmod.load(copy)
    code = main(["bench", "accuracy", "--bundle", str(copy), "--out", str(tmp_path / "res")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "sha256" in err


def _cli(capsys, *argv) -> tuple[int, str]:
    code = main(["export", *map(str, argv)])
    return code, capsys.readouterr().err.strip()


def test_bad_inputs_one_line_exit_2(tiny, tmp_path, capsys):
    data, view_run, model_run = tiny
    out = tmp_path / "b"
    empty_run = tmp_path / "empty_run"
    empty_run.mkdir()
    other = make_dataset(tmp_path / "other", models=["2022_zeta_one", "2022_zeta_two"], seed=5)
    same_specs = make_dataset(tmp_path / "reshot", seed=9)  # same model-years, other photos
    nonbundle = tmp_path / "notes"
    nonbundle.mkdir()
    (nonbundle / "x.txt").write_text("mine")
    cases = [
        ((empty_run, model_run, data, out), "has no checkpoint"),
        ((tmp_path / "nope", model_run, data, out), "does not exist"),
        ((model_run, model_run, data, out), "same run"),
        ((model_run, view_run, data, out), "is a 'model' run, expected a 'view' run"),
        ((view_run, model_run, other, out), "does not match"),
        ((view_run, model_run, same_specs, out), "does not match"),
        ((view_run, model_run, tmp_path / "missing", out), "does not exist"),
        ((view_run, model_run, data, nonbundle), "not a bundle"),
    ]
    for (v, m, d, o), expected in cases:
        code, err = _cli(capsys, "--view-run", v, "--model-run", m, "--data", d, "--out", o)
        assert code == 2, (expected, err)
        assert len(err.splitlines()) == 1 and expected in err, (expected, err)
        assert err.startswith("carscope export: error:")
    code, err = _cli(capsys, "--view-run", view_run, "--model-run", model_run, "--data", data, "--out", out,
                     "--opset", 17)
    assert code == 2 and "opset" in err
    assert not out.exists() and (nonbundle / "x.txt").exists()
    assert not _leftovers(tmp_path)


def test_broken_checkpoint_and_splits_exit_2(tiny, tmp_path, capsys):
    data, view_run, model_run = tiny
    broken = tmp_path / "broken"
    shutil.copytree(model_run, broken)
    (broken / "best.pt").write_bytes(b"not a checkpoint")
    code, err = _cli(capsys, "--view-run", view_run, "--model-run", broken, "--data", data, "--out", tmp_path / "o")
    assert code == 2 and "not a readable carscope checkpoint" in err
    nosplits = tmp_path / "nosplits"
    shutil.copytree(model_run, nosplits)
    (nosplits / "splits.parquet").unlink()
    code, err = _cli(capsys, "--view-run", view_run, "--model-run", nosplits, "--data", data, "--out", tmp_path / "o")
    assert code == 2 and "splits.parquet" in err and len(err.splitlines()) == 1


def test_parity_failure_fails_export_and_leaves_nothing(tiny, tmp_path, capsys, monkeypatch):
    """A graph that disagrees with PyTorch must not become a bundle; the numbers are printed."""
    from carscope.export import parity

    data, view_run, model_run = tiny
    monkeypatch.setattr(parity, "FP32_MAX_REL_ERROR", -1.0)  # any difference at all now fails
    out = tmp_path / "b"
    code, err = _cli(capsys, "--view-run", view_run, "--model-run", model_run, "--data", data, "--out", out,
                     "--exporter", "torchscript")  # the quicker exporter: the parity gate is the same
    assert code == 1, err
    assert "does not match PyTorch" in err and "max |Δlogit|" in err and "top-1 agreement" in err
    assert not out.exists() and not _leftovers(tmp_path)


@pytest.mark.slow
def test_int8_refusal_and_force(tiny, tmp_path, monkeypatch):
    """Above the allowed accuracy drop int8 is refused (numbers recorded, no file); --force keeps it."""
    import carscope.export.pipeline as pipeline
    from carscope.export import parity

    data, view_run, model_run = tiny
    monkeypatch.setattr(parity, "INT8_MAX_DROP_POINTS", -1.0)  # a drop of 0 points is now too much
    logs: list[str] = []
    # 8 thumbs per view is more than the hinted train photos of a class: unlabelled ones get sorted by the view model
    # the TorchScript exporter only to save time: the int8 decision does not depend on how the graph was made
    b = pipeline.export_bundle(view_run, model_run, data, tmp_path / "a", int8=True, thumbs_per_view=8,
                               exporter="torchscript", log=logs.append)
    _check_thumbs(tmp_path / "a", b)
    assert max(len(b.thumbs(label).get("exterior", [])) for label in b.models["model"].labels) == 8
    entry = b.models["model"]
    assert "int8" not in entry.variants() and not (tmp_path / "a" / "model.int8.onnx").exists()
    refused = entry.meta["refused"]["int8"]
    assert "top1_drop_points" in refused["metrics"] and "points" in refused["reason"]
    assert any("REFUSED" in line for line in logs)
    n = len(b.models["model"].labels)
    # and a thumbnail budget below two per class: one exterior photo per class, no interiors
    b = pipeline.export_bundle(view_run, model_run, data, tmp_path / "a", int8=True, force=True,
                               exporter="torchscript", thumbs_max=n, log=logs.append)
    assert all(b.thumbs(label) == {"exterior": [f"thumbs/{label}/exterior_0.jpg"]} for label in b.models["model"].labels)
    assert len(list((tmp_path / "a" / "thumbs").rglob("*.jpg"))) == n
    assert b.models["model"].meta["export"]["exporter"] == "torchscript"
    assert b.models["model"].meta["variants"]["int8"]["forced"] is True
    b.verify(("int8",))
    assert not _leftovers(tmp_path)  # the second export replaced the first in place


def test_the_thumbnail_plan_keeps_a_bundle_within_its_budget():
    from carscope.export.thumbs import thumb_plan

    both = ("exterior", "interior")
    assert thumb_plan(24, 3, 20_000) == (3, both)  # the demo: three of each view
    assert thumb_plan(2_100, 3, 20_000) == (3, both)
    assert thumb_plan(5_000, 3, 20_000) == (2, both)  # 20,000 of them
    assert thumb_plan(9_000, 3, 20_000) == (1, both)
    assert thumb_plan(19_200, 3, 20_000) == (1, ("exterior",))  # the seed's scale: one exterior photo each
    assert thumb_plan(10, 0, 20_000) == (0, ())


def test_spatial_means_become_global_pools_with_the_same_values():
    """ReduceMean over H and W of a 4-D tensor, keepdims=1 -> GlobalAveragePool; any other mean is left alone."""
    import numpy as np
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    from carscope.export.quantize import spatial_means_to_global_pool

    axes = {"hw": [2, 3], "neg": [-1, -2], "c": [1]}
    nodes = [helper.make_node("ReduceMean", ["x", "axes_hw"], ["hw"], name="hw"),
             helper.make_node("ReduceMean", ["x", "axes_neg"], ["neg"], name="neg"),
             helper.make_node("ReduceMean", ["x", "axes_hw"], ["flat"], name="flat", keepdims=0),
             helper.make_node("ReduceMean", ["x", "axes_c"], ["c"], name="c")]
    outputs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in ("hw", "neg", "flat", "c")]
    graph = helper.make_graph(nodes, "means", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3, 5, 7])],
                              outputs, [numpy_helper.from_array(np.array(v, np.int64), f"axes_{k}")
                                        for k, v in axes.items()])
    model = onnx.shape_inference.infer_shapes(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=9))
    x = np.random.default_rng(0).random((2, 3, 5, 7), dtype=np.float32)

    def run(m):
        return ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})

    before = run(model)
    assert spatial_means_to_global_pool(model) == 2
    assert [n.op_type for n in model.graph.node] == ["GlobalAveragePool"] * 2 + ["ReduceMean"] * 2
    assert {i.name for i in model.graph.initializer} == {"axes_hw", "axes_c"}  # axes_neg is no longer used
    for got, want in zip(run(model), before, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)


def test_one_top1_disagreement_with_zero_error_fails_export(tiny, tmp_path, capsys, monkeypatch):
    """The gate's top-1 clause on its own: a comparison that finds no numeric error but one photo whose top-1
    differs must still fail the export (exit 1) and leave no bundle."""
    from carscope.export import parity

    real = parity.compare

    def one_disagreement(*a, **k):
        out = real(*a, **k)
        n = max(1, int(out.get("photos") or 1))
        return {**out, "top1_agreement": 1.0 - 1.0 / n, "max_rel_error": 0.0, "max_abs_logit_diff": 0.0}

    monkeypatch.setattr(parity, "compare", one_disagreement)
    data, view_run, model_run = tiny
    out = tmp_path / "b"
    code, err = _cli(capsys, "--view-run", view_run, "--model-run", model_run, "--data", data, "--out", out,
                     "--exporter", "torchscript")
    assert code == 1, err
    assert "does not match PyTorch" in err
    assert not out.exists() and not _leftovers(tmp_path)
