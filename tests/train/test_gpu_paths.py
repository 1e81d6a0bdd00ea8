"""The CUDA paths of training, pinned on the CPU: precision by compute capability, resume across a precision
change, no host synchronisation in the training step, no CUDA reseeding per photo, true fp32 evaluation, an EMA
without syncs, and torchrun ranks that survive a slow rank-0 preparation and end at once on its errors."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
import torch

import carscope.train
from carscope.train import engine, hardware, recipe
from carscope.train.data import TrainImages
from carscope.train.models import create_model

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TRAIN_DIR = os.path.dirname(os.path.abspath(carscope.train.__file__)) + os.sep  # where our training code is


# ------------------------------------------------------------------------------------------- precision
@pytest.mark.parametrize("capability, emulated, expected", [
    ((7, 5), True, (torch.float16, True)),  # T4: bf16 only emulated -> fp16 with a GradScaler
    ((7, 0), True, (torch.float16, True)),  # V100
    ((8, 0), False, (torch.bfloat16, False)),  # A100
    ((9, 0), False, (torch.bfloat16, False)),  # H100
])
def test_precision_follows_native_bf16(monkeypatch, capability, emulated, expected):
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported",
                        lambda including_emulation=True: capability[0] >= 8 or (including_emulation and emulated))
    assert hardware.resolve_amp("auto", torch.device("cuda", 0)) == expected


def test_resume_across_a_precision_change():
    fresh = torch.amp.GradScaler("cpu", enabled=True)
    with pytest.raises(RuntimeError):  # what a plain load does with a CPU run's (empty) scaler state
        fresh.load_state_dict(torch.amp.GradScaler("cpu", enabled=False).state_dict())
    recipe.load_scaler_state(fresh, torch.amp.GradScaler("cpu", enabled=False).state_dict())
    assert fresh.get_scale() == 65536.0  # starts afresh
    saved = torch.amp.GradScaler("cpu", enabled=True, init_scale=1024.0)
    recipe.load_scaler_state(fresh, saved.state_dict())
    assert fresh.get_scale() == 1024.0
    off = torch.amp.GradScaler("cpu", enabled=False)
    recipe.load_scaler_state(off, saved.state_dict())  # fp16 run resumed in bf16: the state is dropped
    assert not off.is_enabled()


# ------------------------------------------------------------------------------------------ the step
class _Counter:
    """Counts the calls that make the host wait for the device (.item(), .tolist(), bool(tensor), .cpu(), and
    tensors made from host values with torch.tensor) made by our training code or by an EMA (torch's
    AveragedModel tests its counter tensor). The optimizers' own step counters are CPU tensors by design
    (capturable=False) and are not counted."""

    def __init__(self, monkeypatch):
        self.n = 0
        for name in ("item", "tolist", "__bool__", "cpu"):
            original = getattr(torch.Tensor, name)
            monkeypatch.setattr(torch.Tensor, name, self._wrap(original))
        monkeypatch.setattr(torch, "tensor", self._wrap(torch.tensor))

    def _wrap(self, fn):
        def counted(*a, **k):
            caller = sys._getframe(1).f_code.co_filename
            if caller.startswith(TRAIN_DIR) or caller.endswith("swa_utils.py"):
                self.n += 1
            return fn(*a, **k)

        return counted


def _epoch(monkeypatch, steps: int, *, ema: bool) -> int:
    torch.manual_seed(0)
    model = create_model("tinynet", 3, dropout=0.0)
    ctx = hardware.Context(device=torch.device("cpu"))
    args = argparse.Namespace(clip_grad_norm=2.0, no_progress=True, arch="tinynet")
    loader = [(torch.rand(4, 3, 32, 32), torch.randint(0, 3, (4,))) for _ in range(steps)]
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 1.0)
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    average = recipe.EMA(model, 0.9) if ema else None
    with monkeypatch.context() as m:
        counter = _Counter(m)
        out = engine.train_one_epoch(ctx, model, model, loader, torch.nn.CrossEntropyLoss(), optimizer, scheduler,
                                     scaler, average, lambda x: x, args, 0, frozen=False, desc="t")
    assert out["train_images"] == 4 * steps
    return counter.n


def test_no_host_synchronisation_inside_the_training_step(monkeypatch):
    for ema in (False, True):
        assert _epoch(monkeypatch, 3, ema=ema) == _epoch(monkeypatch, 9, ema=ema), \
            f"host syncs grow with the number of steps (ema={ema})"


def test_ema_matches_torch_averaged_model_and_loads_its_checkpoints():
    from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

    torch.manual_seed(0)
    model = create_model("tinynet", 3, dropout=0.0)
    ours = recipe.EMA(model, 0.9)
    theirs = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(0.9), use_buffers=True)
    for _ in range(3):
        with torch.no_grad():
            for p in model.parameters():
                p.add_(torch.randn_like(p) * 0.1)
        model.train()(torch.rand(2, 3, 32, 32))  # moves the BatchNorm statistics too
        ours.update(model)
        theirs.update_parameters(model)
    for (k, a), b in zip(ours.state_dict().items(), theirs.state_dict().values(), strict=True):
        if torch.is_floating_point(a):
            assert torch.allclose(a, b, atol=1e-6), k
        else:  # counters (n_averaged, num_batches_tracked): ours copies the model's; torch "averages" integers
            assert a.shape == b.shape, k
    tracked = {k: v for k, v in model.state_dict().items() if k.endswith("num_batches_tracked")}
    assert all(torch.equal(ours.module.state_dict()[k], v) for k, v in tracked.items())
    again = recipe.EMA(model, 0.9)
    again.load_state_dict(theirs.state_dict())
    assert again.n == 3


def test_workers_0_never_reseeds_the_cuda_generators(monkeypatch):
    calls = []
    monkeypatch.setattr(torch.cuda, "manual_seed_all", lambda seed: calls.append(seed))

    class Cache:
        rows = np.arange(4)

        def open(self):
            return np.zeros((4, 8, 8, 3), dtype=np.uint8)

    images = TrainImages(Cache(), np.zeros(4, dtype=np.int64), lambda img: img.float() + torch.rand(1), seed=0)
    first = [images[(i, 0)][0] for i in range(4)]
    again = [images[(i, 0)][0] for i in range(4)]
    assert calls == []
    assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True))  # still a function of (index, epoch)


def test_evaluation_runs_in_true_fp32():
    seen = []

    class Probe(torch.nn.Module):
        def forward(self, x):
            seen.append((torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32))
            return torch.zeros(len(x), 2)

    class Cache:
        rows = np.arange(3)

        def open(self):
            return np.zeros((3, 8, 8, 3), dtype=np.uint8)

    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True  # what setup() does on CUDA
    try:
        engine.evaluate(hardware.Context(device=torch.device("cpu")), Probe(), Cache(), np.zeros(3, dtype=np.int64),
                        lambda x: x.float(), 2, 2)
        assert seen == [(False, False)]
        assert torch.backends.cuda.matmul.allow_tf32 and torch.backends.cudnn.allow_tf32  # restored afterwards
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


# ----------------------------------------------------------------------------------------- torchrun
WRAPPER = textwrap.dedent("""
    import os, sys, time
    sys.path.insert(0, {repo!r})
    import carscope.train.loaders as loaders
    original = loaders.prepare
    def slow(*a, **k):
        if os.environ.get("CARSCOPE_TEST_BOOM"):
            raise RuntimeError("boom from the test's rank-0 preparation")
        time.sleep(float(os.environ.get("CARSCOPE_TEST_PREP_DELAY", "0")))
        return original(*a, **k)
    loaders.prepare = slow
    from carscope.commands.cli import main
    sys.exit(main(sys.argv[1:]))
""")


def _torchrun(tmp_path, tiny_data, env_extra: dict, timeout: float):
    script = tmp_path / "wrapper.py"
    script.write_text(WRAPPER.format(repo=REPO))
    env = {**os.environ, "OMP_NUM_THREADS": "1", **env_extra}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", str(script),
           "train", "view", "--data", str(tiny_data), "--out", str(tmp_path / "run"), "--arch", "tinynet",
           "--img-size", "32", "--epochs", "1", "--batch-size", "32", "--workers", "0", "--no-progress",
           "--negatives", "0"]
    t0 = time.monotonic()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    return proc, time.monotonic() - t0


@pytest.mark.slow
def test_ranks_outwait_a_rank0_preparation_longer_than_the_collective_timeout(tiny_data, tmp_path):
    proc, _ = _torchrun(tmp_path, tiny_data, {hardware.DIST_TIMEOUT_ENV: "3", "CARSCOPE_TEST_PREP_DELAY": "8"}, 240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stderr.count("done: best epoch") == 1


@pytest.mark.slow
def test_an_error_on_rank0_ends_every_rank_at_once_with_its_message(tiny_data, tmp_path):
    proc, seconds = _torchrun(tmp_path, tiny_data, {"CARSCOPE_TEST_BOOM": "1"}, 240)
    assert proc.returncode != 0
    assert "boom from the test's rank-0 preparation" in proc.stderr
    assert "rank 0 failed: RuntimeError" in proc.stderr  # what the waiting rank says
    assert seconds < 60, f"the ranks took {seconds:.0f} s to end"


def test_bench_train_loops_run_on_torchs_default_flags():
    from carscope.benchmarks.train import torch_defaults

    saved = (torch.backends.cudnn.benchmark, torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    torch.backends.cudnn.benchmark, torch.backends.cuda.matmul.allow_tf32 = True, True  # hardware.setup() on CUDA
    try:
        with torch_defaults():
            assert (torch.backends.cudnn.benchmark, torch.backends.cuda.matmul.allow_tf32,
                    torch.backends.cudnn.allow_tf32) == (False, False, True)
            torch.backends.cudnn.benchmark = True  # what carscope's loop sets inside
        assert torch.backends.cudnn.benchmark and torch.backends.cuda.matmul.allow_tf32  # as before the block
    finally:
        torch.backends.cudnn.benchmark, torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved
