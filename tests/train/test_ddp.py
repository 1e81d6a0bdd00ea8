"""DDP: two CPU processes under torchrun with gloo train one run; rank 0 alone writes; metrics cover both ranks."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import pandas as pd

from train import checkpoint


def test_two_process_ddp_run(tiny_data, tmp_path):
    out = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
           "-m", "carscope", "train", "view", "--data", str(tiny_data), "--out", str(out), "--arch", "tinynet",
           "--img-size", "32", "--epochs", "2", "--batch-size", "32", "--workers", "0", "--no-progress"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=240, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    config = json.loads((out / "config.json").read_text())
    assert config["world_size"] == 2
    history = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [h["epoch"] for h in history] == [0, 1]  # one line per epoch: only rank 0 writes
    n_train = int((pd.read_parquet(out / "splits.parquet")["split"] == "train").sum())
    # each rank sees half (DistributedSampler pads to an even count); the logged count is the all-reduced sum
    assert all(h["train_images"] == 2 * math.ceil(n_train / 2) for h in history)
    state = checkpoint.load_run(out, task="view")
    assert state["labels"] == ["exterior", "interior"] and "test_top1" in state["metrics"]
    assert proc.stderr.count("done: best epoch") == 1
