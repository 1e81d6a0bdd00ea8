"""The latency and accuracy benchmarks run end to end on the tiny bundle (structure only: timings are not tested)."""

from __future__ import annotations

import json

import pytest

from carscope.commands.cli import main


def test_bench_accuracy_reports_every_cpu_variant(bundle, tiny, tmp_path, capsys):
    out, _ = bundle
    data, _, _ = tiny
    res = tmp_path / "res"
    _, _, model_run = tiny
    assert main(["bench", "accuracy", "--bundle", str(out), "--data", str(data), "--out", str(res),
                 "--model-run", str(model_run)]) == 0
    result = json.loads((res / "accuracy.json").read_text())
    meta = json.loads((out / "bundle.json").read_text())
    for key in ("model", "view"):
        variants = result["models"][key]["variants"]
        assert set(variants) == {"fp32", "int8", "fp16"}
        fp32 = variants["fp32"]
        assert fp32["photos"] == meta["models"][key]["parity"]["photos"]
        # the served preprocessing gives the accuracy the export measured through train's transform
        assert fp32["top1"] == pytest.approx(meta["models"][key]["parity"]["top1_candidate"], abs=1e-9)
        assert variants["int8"]["top1"] == pytest.approx(meta["models"][key]["variants"]["int8"]["metrics"]["top1_int8"])
        assert set(fp32["per_class"]) == set(meta["models"][key]["labels"])
        assert sum(c["support"] for c in fp32["per_class"].values()) == fp32["photos"]
        assert (res / fp32["confusion_png"]).stat().st_size > 1000
        assert "skipped" in variants["fp16"] or variants["fp16"]["provider"] == "CUDAExecutionProvider"
    # the model classifier at the three levels, the level export measured on the same test photos
    levels = result["models"]["model"]["variants"]["fp32"]["levels"]
    measured = meta["models"]["model"]["levels"]["figures"]["test"]
    for level in ("model_year", "model", "make"):
        assert levels[level]["top1"] == pytest.approx(measured[level]["top1"], abs=1e-9)
        assert 0 <= levels[level]["ece"] <= 1
    assert levels["model_year"]["top1"] == pytest.approx(result["models"]["model"]["variants"]["fp32"]["top1"])
    assert levels["groups"] == len(meta["models"]["model"]["levels"]["groups"])
    assert 0 <= levels["answered"]["sure_and_right"] <= levels["answered"]["sure"] <= 1
    out_text = capsys.readouterr().out
    assert "| model | fp32 |" in out_text and "model-year top-1 / ECE" in out_text


def test_bench_latency_measures_all_engines_and_targets(bundle, tmp_path):
    import torch

    out, _ = bundle
    res = tmp_path / "res"
    threads = torch.get_num_threads()
    try:
        code = main(["bench", "latency", "--bundle", str(out), "--out", str(res), "--runs", "5", "--batches", "2,4",
                     "--threads", "1", "--max-seconds", "2", "--peak-size", "256", "--peak-seconds", "0.1"])
    finally:
        torch.set_num_threads(threads)
    assert code == 0
    result = json.loads((res / "latency.json").read_text())
    assert result["peak_matmul"]["cpu_fp32"]["gflops"] > 0 and result["peak_matmul"]["cpu_int8"]["gflops"] > 0
    for key in ("view", "model"):
        m = result["models"][key]
        assert m["gflops_per_image"] > 0
        for engine in ("torch_eager", "ort_fp32", "ort_int8"):
            r = m["engines"][engine]
            assert r["batch1"]["n"] >= 5 and r["batch1"]["p50_ms"] <= r["batch1"]["p99_ms"]
            assert set(r["throughput"]) == {"2", "4"} and r["throughput"]["4"]["img_per_s"] > 0
            assert 0 < r["ceiling_fraction_b1"]
        assert m["engines"]["ort_int8"]["ceiling"] == "cpu_int8"
        assert set(m["targets"]) == {"ort_fp32", "ort_int8"}
        assert m["targets"]["ort_int8"]["agreement_vs_fp32"] == 1.0
        assert "ort_fp16_cuda_iobinding" in m["engines"]
        assert not any("_batch1_ms" in r for r in m["engines"].values())  # raw samples stay out of the JSON
        assert (res / m["histogram_png"]).stat().st_size > 1000
    md = (res / "latency.md").read_text()
    assert "Targets" in md and "](latency_model.png)" in md
