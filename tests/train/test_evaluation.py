"""Metrics and calibration on known logits."""

from __future__ import annotations

import torch

from train.evaluation import classification_report, expected_calibration_error, fit_temperature


def test_temperature_fixes_an_overconfident_model():
    g = torch.Generator().manual_seed(0)
    n, k = 2000, 5
    targets = torch.randint(0, k, (n,), generator=g)
    logits = torch.randn(n, k, generator=g)
    logits[torch.arange(n), targets] += 1.5  # right ~60% of the time...
    logits *= 4  # ...but nearly always "sure"
    t = fit_temperature(logits, targets)
    assert 2.5 < t < 6
    before = expected_calibration_error(torch.softmax(logits, 1), targets)
    after = expected_calibration_error(torch.softmax(logits / t, 1), targets)
    assert before > 0.2 and after < 0.05


def test_classification_report_by_hand():
    # true: 0 0 1 1 2; predicted: 0 1 1 1 0
    logits = torch.tensor([[5., 0, 0], [0, 5, 0], [0, 5, 0], [0, 5, 0], [5, 0, 0]])
    targets = torch.tensor([0, 0, 1, 1, 2])
    r = classification_report(logits, targets, ["a", "b", "c"])
    assert r["top1"] == 0.6 and r["top5"] == 1.0
    assert r["per_class"]["a"] == {"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2}
    assert abs(r["per_class"]["b"]["precision"] - 2 / 3) < 1e-9 and r["per_class"]["b"]["recall"] == 1.0
    assert r["per_class"]["c"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}
    assert r["confusion"] == [[1, 1, 0], [0, 2, 0], [1, 0, 0]]
