"""Mixture Outlier Exposure from the training photos (carscope/train/outliers.py): cross-make CutMix rows with a
target that is uniform in proportion to the pasted area, the loss over kept and mixed rows, and a run with it.

    .venv/bin/python -m pytest -q tests/train/test_outliers.py
"""

from __future__ import annotations

import pytest
import torch

from carscope.common.errors import CarscopeError
from carscope.train.outliers import MixOutliers, mixed_loss
from tests.train.conftest import TINY


def _batch(n=8, size=16):
    """Photo i is the flat value 10 * (i + 1): a pasted box says whose pixels it holds."""
    x = torch.stack([torch.full((3, size, size), 10 * (i + 1), dtype=torch.uint8) for i in range(n)])
    y = torch.tensor([0, 1, 2, 3, 0, 1, 2, 3])
    return x, y


def test_mixed_rows_paste_another_make_and_spread_the_target():
    make_of = [0, 0, 1, 1]  # classes 0 and 1: make 0; 2 and 3: make 1
    x, y = _batch()
    out, soft, mixed = MixOutliers(make_of, 1.0, seed=3)(x, y)
    assert mixed.sum() >= 6  # every row is asked for; a box rounding to nothing leaves a row as it was
    for i in range(len(y)):
        values = out[i].unique().tolist()
        assert torch.isclose(soft[i].sum(), torch.tensor(1.0))
        if not mixed[i]:
            assert values == [10 * (i + 1)] and soft[i, y[i]] == 1
            continue
        own = 10 * (i + 1)
        other = [v for v in values if v != own]
        assert len(other) == 1  # one partner's box...
        j = other[0] // 10 - 1
        assert make_of[y[j]] != make_of[y[i]]  # ...of another make
        kept = (out[i, 0] == own).float().mean()
        uniform = (1 - kept) / 4
        assert soft[i, y[i]] == pytest.approx(float(kept + uniform), abs=1e-6)
        assert soft[i][torch.arange(4) != y[i]].tolist() == pytest.approx([float(uniform)] * 3, abs=1e-6)
    assert torch.equal(x, _batch()[0])  # the loader's batch itself is not changed


def test_nothing_is_mixed_at_share_zero_or_with_one_make():
    x, y = _batch()
    for mix in (MixOutliers([0, 0, 1, 1], 0.0, 0), MixOutliers([0, 0, 0, 0], 1.0, 0)):
        out, soft, mixed = mix(x, y)
        assert torch.equal(out, x) and mixed.sum() == 0 and torch.equal(soft.argmax(1), y)


def test_mixed_loss_is_cross_entropy_for_kept_rows_and_soft_for_mixed_ones():
    torch.manual_seed(0)
    logits, y = torch.randn(4, 3), torch.tensor([0, 1, 2, 0])
    soft = torch.nn.functional.one_hot(y, 3).float()
    soft[1] = torch.tensor([0.2, 0.6, 0.2])
    mixed = torch.tensor([0.0, 1.0, 0.0, 0.0])
    ce = torch.nn.functional.cross_entropy(logits, y, reduction="none", label_smoothing=0.1)
    expected = (ce[0] + ce[2] + ce[3] - (soft[1] * torch.log_softmax(logits[1], 0)).sum()) / 4
    assert mixed_loss(logits, y, soft, mixed, 0.1) == pytest.approx(float(expected), abs=1e-6)


def test_a_run_trains_with_mixed_outliers_and_the_view_task_refuses_them(tiny_data, tmp_path):
    from carscope.train import train

    summary = train({"task": "model", "data": str(tiny_data), "out": str(tmp_path / "m"), "epochs": 2,
                     "mix_outliers": 0.5, **TINY})
    assert summary["best_epoch"] is not None and (tmp_path / "m" / "best.pt").is_file()
    with pytest.raises(CarscopeError, match="--mix-outliers is for the model task"):
        train({"task": "view", "data": str(tiny_data), "out": str(tmp_path / "v"), "epochs": 1, "mix_outliers": 0.5,
               **TINY})
