"""DDP: two CPU processes under torchrun with gloo train one run; rank 0 alone writes; metrics cover both ranks."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd

from carscope.train import checkpoint


def test_two_process_ddp_run(tiny_data, tmp_path):
    out = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
           "-m", "carscope", "train", "view", "--data", str(tiny_data), "--out", str(out), "--arch", "tinynet",
           "--img-size", "32", "--epochs", "2", "--batch-size", "32", "--workers", "0", "--no-progress",
           "--negatives", "0"]  # DDP's mechanics on the crawl's photos (a batch per rank, no partial batch dropped)
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


WRAPPER = """
import os, sys
sys.path.insert(0, {repo!r})
import torch
import carscope.train.engine as engine
original = engine.train_one_epoch
def recorded(ctx, model, *a, **k):
    out = original(ctx, model, *a, **k)
    torch.save({{n: t.detach().cpu().clone() for n, t in model.state_dict().items()}},
               os.path.join({dump!r}, f"rank{{ctx.rank}}-{{k['desc'].replace(' ', '-').replace('/', 'of')}}.pt"))
    return out
engine.train_one_epoch = recorded
from carscope.commands.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_ddp_ranks_end_with_the_same_weights(tiny_data, tmp_path):
    """Gradients are shared: after every epoch each rank holds the same weights, although each trained on its own
    half of the photos (with DistributedDataParallel replaced by the model itself, they drift apart)."""
    import torch

    dump = tmp_path / "weights"
    dump.mkdir()
    script = tmp_path / "wrapper.py"
    script.write_text(WRAPPER.format(repo=str(Path(__file__).resolve().parents[2]), dump=str(dump)))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", str(script),
           "train", "model", "--data", str(tiny_data), "--out", str(tmp_path / "run"), "--arch", "tinynet",
           "--img-size", "32", "--epochs", "2", "--batch-size", "4", "--workers", "0", "--no-progress"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=240, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    files = sorted(p.name for p in dump.glob("*.pt"))
    assert len(files) == 4, files  # 2 ranks x 2 epochs
    for epoch_file in [f for f in files if f.startswith("rank0-")]:
        a = torch.load(dump / epoch_file)
        b = torch.load(dump / epoch_file.replace("rank0-", "rank1-"))
        params = [n for n in a if not n.endswith(("running_mean", "running_var", "num_batches_tracked"))]
        assert params and all(torch.equal(a[n], b[n]) for n in params), epoch_file
