"""Training stopped by a signal: Ctrl-C (SIGINT) mid-run exits 130 with one line and no traceback, leaves the last
finished epoch's checkpoint intact, and `--resume` finishes the run from there."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from carscope.train import checkpoint


@pytest.mark.slow
def test_sigint_then_resume_finishes_the_run(tiny_data, tmp_path):
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "carscope", "train", "view", "--data", str(tiny_data), "--out", str(out),
           "--arch", "tinynet", "--img-size", "32", "--epochs", "40", "--batch-size", "4", "--workers", "0",
           "--threads", "1", "--no-progress"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.monotonic() + 120
    while not (out / "last.pt").exists():  # the first epoch has been checkpointed
        assert proc.poll() is None, proc.communicate()[1][-2000:]
        assert time.monotonic() < deadline, "no epoch finished"
        time.sleep(0.1)
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err[-2000:]
    assert "Traceback" not in err and err.strip().splitlines()[-1] == "carscope train: interrupted"
    state = checkpoint.load(out / "last.pt")  # whole and loadable: written atomically at an epoch's end
    stopped_at = int(state["epoch"])
    assert stopped_at < 39 and not state.get("finished")
    resumed = subprocess.run([*cmd, "--resume"], capture_output=True, text=True, env=env, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert f"resuming {out} at epoch {stopped_at + 2}/40" in resumed.stderr
    epochs = [json.loads(line)["epoch"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert epochs == list(range(40))  # every epoch once: none lost, none repeated
    assert checkpoint.load(out / "last.pt")["finished"]
