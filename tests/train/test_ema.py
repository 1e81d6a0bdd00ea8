"""`carscope train --ema`: the average is the textbook EMA of the weights step by step, and it is what a run
evaluates and saves (best.pt's weights), with the raw weights kept in last.pt for --resume."""

from __future__ import annotations

import torch

from tests.datasets import make_tiny_dataset
from tests.train.conftest import TINY


def test_ema_is_the_exponential_average_of_every_step():
    from carscope.train.recipe import EMA

    model = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.BatchNorm1d(2))
    ema = EMA(model, 0.75)
    by_hand = None
    for step in range(5):
        with torch.no_grad():
            for p in model.parameters():
                p.add_(torch.randn_like(p))
        model.train()(torch.randn(8, 3))  # BatchNorm's running stats (float buffers) and step count (an int)
        ema.update(model)
        now = {k: v.detach().clone() for k, v in model.state_dict().items()}
        if by_hand is None:
            by_hand = now  # the first update copies
        else:
            by_hand = {k: (0.75 * by_hand[k] + 0.25 * v if v.is_floating_point() else v) for k, v in now.items()}
        got = ema.module.state_dict()
        for k, v in by_hand.items():
            assert torch.allclose(got[k], v, atol=1e-6), (step, k)
    assert ema.n == 5 and int(ema.state_dict()["n_averaged"]) == 5
    assert not any(p.requires_grad for p in ema.module.parameters())
    assert not torch.equal(ema.module[0].weight, model[0].weight)  # an average, not a copy

    again = EMA(model, 0.75)
    again.load_state_dict(ema.state_dict())
    assert again.n == 5 and all(torch.equal(a, b) for a, b in zip(again.module.state_dict().values(),
                                                                  ema.module.state_dict().values(), strict=True))


def test_a_run_with_ema_saves_the_average(tmp_path):
    from carscope.train import train

    data = make_tiny_dataset(tmp_path / "data", n_classes=3, per_class=6, interior_per_class=2)
    train({"task": "view", "data": str(data), "out": str(tmp_path / "run"), "epochs": 2, "negatives": 0,
           "ema": True, "ema_decay": 0.5, **TINY})
    last = torch.load(tmp_path / "run" / "last.pt", map_location="cpu", weights_only=False)
    average = {k[len("module."):]: v for k, v in last["ema"].items() if k.startswith("module.")}
    assert int(last["ema"]["n_averaged"]) > 0
    assert last["model"].keys() == average.keys() == last["train_model"].keys()
    assert all(torch.equal(last["model"][k], average[k]) for k in average)  # what is saved is the average...
    assert any(not torch.equal(last["train_model"][k], average[k]) for k in average)  # ...not the raw weights
