"""`carscope train --compile`: training runs through torch.compile's module, learns exactly what the eager model
learns, and saves a checkpoint without torch.compile's `_orig_mod.` key prefix (so export and --resume load it).

torch.compile's default backend (inductor) spends about a minute generating C++ for even the tiny model on 2
cores; the test gives torch.compile the "eager" backend instead: the same Dynamo capture, the same compiled
module wrapped around the model, the same state-dict keys, without the code generation."""

from __future__ import annotations

import json

import torch

from tests.datasets import make_tiny_dataset
from tests.train.conftest import TINY


def _losses(run_dir):
    return [json.loads(line)["train_loss"] for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_compile_trains_through_the_compiled_module_and_saves_plain_weights(tmp_path, monkeypatch):
    from carscope.train import train
    from carscope.train.checkpoint import load_run
    from carscope.train.models import model_from_checkpoint

    real = torch.compile
    compiled, captured = [], []

    def counting_backend(gm, example_inputs):
        captured.append(len(example_inputs))  # Dynamo hands over a graph only when the compiled module runs
        return gm.forward

    def eager_compile(model, **kw):
        compiled.append(model)
        return real(model, backend=counting_backend, **kw)

    monkeypatch.setattr(torch, "compile", eager_compile)
    data = make_tiny_dataset(tmp_path / "data", n_classes=3, per_class=6, interior_per_class=2)
    args = {"task": "view", "data": str(data), "epochs": 2, "negatives": 0, "seed": 3, **TINY}
    train({**args, "out": str(tmp_path / "compiled"), "compile": True})
    assert len(compiled) == 1 and captured, "the compiled module was built but never run"
    train({**args, "out": str(tmp_path / "eager")})
    assert len(compiled) == 1  # without --compile nothing is compiled

    # the same seed, the same numbers: compiling must not change what is learnt
    assert _losses(tmp_path / "compiled") == _losses(tmp_path / "eager")
    ck = torch.load(tmp_path / "compiled" / "best.pt", map_location="cpu", weights_only=False)
    assert not [k for k in ck["model"] if "_orig_mod" in k]
    eager = torch.load(tmp_path / "eager" / "best.pt", map_location="cpu", weights_only=False)
    assert ck["model"].keys() == eager["model"].keys()
    assert all(torch.equal(ck["model"][k], eager["model"][k]) for k in ck["model"])
    model_from_checkpoint(load_run(tmp_path / "compiled"))  # and it builds the model as export does
