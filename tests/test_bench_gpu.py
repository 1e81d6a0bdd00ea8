"""`carscope bench gpu --dry-run` on a machine without CUDA: every step's command parses and its CPU stand-in
really runs (train, torchrun over gloo, export, serve answering a photo, bench latency); what needs CUDA is
skipped, saying so, and nothing else is."""

from __future__ import annotations

import json

import pytest

from carscope.benchmarks.gpu import STEPS, cpu_argv
from carscope.commands.cli import main


def test_cpu_stand_in_swaps_only_the_cuda_settings():
    argv = ["train", "view", "--device", "cuda", "--amp", "auto", "--epochs", "1"]
    assert cpu_argv(argv) == ["train", "view", "--device", "cpu", "--amp", "off", "--epochs", "1"]
    assert cpu_argv(["export", "--fp16", "--int8"]) == ["export", "--int8"]
    assert cpu_argv(["serve", "--providers", "cuda", "--port", "0"]) == ["serve", "--providers", "cpu", "--port", "0"]


@pytest.mark.slow
def test_bench_gpu_dry_run_checks_every_step(tmp_path, capsys):
    import torch

    out = tmp_path / "gpu"
    assert main(["bench", "gpu", "--dry-run", "--view-arch", "tinynet", "--model-arch", "tinynet", "--img-size", "32",
                 "--makes", "2", "--out", str(out)]) == 0
    r = json.loads((out / "gpu.json").read_text())
    assert [s["name"] for s in r["steps"]] == list(STEPS)
    assert r["failed"] == []
    for s in r["steps"]:
        assert s["parsed"] and s["cpu_stand_in"]["status"] == "ok", s
        assert s["status"] == "skipped" and s["reason"], s
        if not torch.cuda.is_available():
            assert s["reason"].startswith("needs CUDA"), s
    ddp = next(s for s in r["steps"] if s["name"] == "torchrun-2gpu")
    assert ddp["cpu_stand_in"]["world_size"] == 2 and ddp["command"].startswith("torchrun ")
    assert "skipped" in (out / "gpu.md").read_text()
