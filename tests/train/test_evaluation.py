"""Metrics and calibration on known logits."""

from __future__ import annotations

import torch

from carscope.train.evaluation import classification_report, expected_calibration_error, fit_temperature


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


def test_many_classes_keep_confused_pairs_not_a_dense_matrix():
    """Above DENSE_CONFUSION_MAX classes report.json holds the confused pairs, most frequent first, and the
    per-class figures equal the dense matrix's (19,000 classes would make a 2.9 GB matrix and a 4,000-inch plot)."""
    from carscope.train.evaluation import DENSE_CONFUSION_MAX, confusion_matrix
    from carscope.train.report import confusion_view

    g = torch.Generator().manual_seed(1)
    n = DENSE_CONFUSION_MAX + 50
    targets = torch.randint(0, n, (3000,), generator=g)
    preds = torch.where(torch.rand(3000, generator=g) < 0.6, targets, torch.randint(0, n, (3000,), generator=g))
    preds[:40] = 7  # one class that steals from many: the top pairs name it
    targets[:40] = 3
    logits = torch.nn.functional.one_hot(preds, n).float() * 5
    labels = [f"c{i}" for i in range(n)]
    r = classification_report(logits, targets, labels)
    assert "confusion" not in r
    cm = confusion_matrix(preds, targets, n)
    off = cm - torch.diag(torch.diag(cm))
    assert r["confusion_pairs"][0] == [3, 7, int(off[3, 7])]
    assert r["confusion_pairs_total"] == int((off > 0).sum())
    assert sum(c for _, _, c in r["confusion_pairs"]) == int(off.sum())
    for i in (0, 3, 7, n - 1):
        assert r["per_class"][f"c{i}"]["support"] == int(cm[i].sum())
        assert abs(r["per_class"][f"c{i}"]["recall"] - float(cm[i, i]) / max(int(cm[i].sum()), 1)) < 1e-9
    matrix, shown, note = confusion_view(r, labels, k=20)
    assert len(shown) == 20 and {"c3", "c7"} <= set(shown) and "of 250 classes" in note
    i3, i7 = shown.index("c3"), shown.index("c7")
    assert matrix[i3][i7] == int(off[3, 7]) and matrix[i3][i3] == int(cm[3, 3])


# -- calibration at its edges, for `make mutate` of carscope/train/evaluation.py -------------------------------------------
def _ece_by_hand(conf, correct, n_bins):
    """ECE from its definition, in plain Python: bins (lo, hi], weighted by their share of the photos."""
    total = 0.0
    for b in range(n_bins):
        lo, hi = b / n_bins, (b + 1) / n_bins
        inside = [i for i, c in enumerate(conf) if lo < c <= hi]
        if inside:
            acc = sum(correct[i] for i in inside) / len(inside)
            mean_conf = sum(conf[i] for i in inside) / len(inside)
            total += len(inside) / len(conf) * abs(acc - mean_conf)
    return total


def test_ece_equals_its_definition():
    # confidences chosen away from the bin edges (float32 linspace edges are not exact)
    probs = torch.tensor([[0.95, 0.05], [0.93, 0.07], [0.62, 0.38], [0.55, 0.45], [0.3, 0.7], [0.12, 0.88],
                          [0.81, 0.19]])
    targets = torch.tensor([0, 1, 0, 1, 1, 0, 0])
    conf, pred = probs.max(1)
    correct = (pred == targets).tolist()
    for n_bins in (1, 2, 4, 10, 15):
        want = _ece_by_hand(conf.tolist(), correct, n_bins)
        assert abs(expected_calibration_error(probs, targets, n_bins=n_bins) - want) < 1e-6, n_bins
    assert abs(expected_calibration_error(probs, targets) - _ece_by_hand(conf.tolist(), correct, 15)) < 1e-6


def test_ece_of_perfect_and_of_useless_confidence():
    sure_right = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    assert expected_calibration_error(sure_right, torch.tensor([0, 1])) == 0.0
    assert expected_calibration_error(sure_right, torch.tensor([1, 0])) == 1.0  # sure and always wrong
    # a confidence of exactly 1.0 is in the last bin (lo, 1], not lost past the edge
    assert expected_calibration_error(torch.tensor([[1.0, 0.0]]), torch.tensor([1]), n_bins=3) == 1.0
    assert expected_calibration_error(torch.zeros(0, 3), torch.zeros(0, dtype=torch.long)) != \
        expected_calibration_error(torch.zeros(0, 3), torch.zeros(0, dtype=torch.long))  # NaN: nothing measured


def _nll(logits, targets, t):
    return float(torch.nn.functional.cross_entropy(logits / t, targets))


def test_fit_temperature_finds_the_nll_minimum():
    g = torch.Generator().manual_seed(1)
    n, k = 600, 4
    targets = torch.randint(0, k, (n,), generator=g)
    grid = [0.05 * 1.005 ** i for i in range(1200)]  # 0.05 .. 20, steps of 0.5%
    for scale, margin in ((4.0, 1.0), (0.3, 2.0)):  # overconfident (T > 1) and underconfident (T < 1)
        logits = torch.randn(n, k, generator=g)
        logits[torch.arange(n), targets] += margin
        logits *= scale
        t = fit_temperature(logits, targets)
        best = min(grid, key=lambda x: _nll(logits, targets, x))
        assert abs(t - best) <= 0.01 * best, (scale, t, best)
        assert _nll(logits, targets, t) <= _nll(logits, targets, best) + 1e-6
        assert (t > 1.0) == (scale > 1.0)


class _FixedOptimum:
    """Stands in for LBFGS: "converges" to a given T, to hold the clamp and the NaN/inf guard at their edges."""

    value = 1.0

    def __init__(self, params, **kw):
        self.params = params

    def step(self, closure):
        closure()
        with torch.no_grad():
            self.params[0].fill_(float(torch.log(torch.tensor(self.value, dtype=torch.float64))))

    def zero_grad(self):
        pass


def test_fit_temperature_is_clamped_and_never_nan(monkeypatch):
    monkeypatch.setattr(torch.optim, "LBFGS", _FixedOptimum)
    logits, targets = torch.randn(10, 3), torch.arange(10) % 3
    for found, kept in ((0.01, 0.05), (0.05, 0.05), (0.0501, 0.0501), (3.0, 3.0), (19.99, 19.99), (20.0, 20.0),
                        (25.0, 20.0), (float("inf"), 1.0), (float("nan"), 1.0)):
        _FixedOptimum.value = found
        assert abs(fit_temperature(logits, targets) - kept) < 1e-4, (found, kept)


def test_fit_temperature_edges():
    assert fit_temperature(torch.randn(1, 3), torch.tensor([0])) == 1.0  # one photo: nothing to fit
    assert fit_temperature(torch.randn(0, 3), torch.zeros(0, dtype=torch.long)) == 1.0
    # perfectly separated: sharper is always better; the fit sharpens (T < 1) until the NLL is flat
    logits = torch.tensor([[3.0, 0.0], [0.0, 3.0]] * 10)
    targets = torch.tensor([0, 1] * 10)
    assert 0.05 <= fit_temperature(logits, targets) < 0.5
    # always wrong: flatter is always better, T goes to the upper clamp
    assert fit_temperature(logits, 1 - targets) == 20.0
    # two photos are enough to fit: one right, one wrong at the same logits, so flatter is better
    two = torch.tensor([[2.0, 0.0], [2.0, 0.0]])
    t = fit_temperature(two, torch.tensor([0, 1]))
    assert t > 1.0 and _nll(two, torch.tensor([0, 1]), t) < _nll(two, torch.tensor([0, 1]), 1.0)


def test_fit_temperature_of_a_diverged_model_is_the_identity():
    targets = torch.tensor([0, 1, 0])
    for bad in (float("nan"), float("inf"), -float("inf")):
        logits = torch.tensor([[1.0, bad], [0.0, 1.0], [1.0, 0.0]])
        assert fit_temperature(logits, targets) == 1.0, bad  # not NaN, and no crash in the line search


def test_topk_accuracy_edges():
    logits = torch.tensor([[0.1, 0.5, 0.4], [0.9, 0.05, 0.05], [0.2, 0.3, 0.5]])
    targets = torch.tensor([2, 0, 0])
    from carscope.train.evaluation import topk_accuracy

    assert topk_accuracy(logits, targets, 1) == 1 / 3
    assert topk_accuracy(logits, targets, 2) == 2 / 3
    assert topk_accuracy(logits, targets, 3) == 1.0
    assert topk_accuracy(logits, targets, 5) == 1.0  # k larger than the classes: all of them
    assert topk_accuracy(torch.zeros(0, 3), torch.zeros(0, dtype=torch.long), 1) != \
        topk_accuracy(torch.zeros(0, 3), torch.zeros(0, dtype=torch.long), 1)


def test_one_photo_is_measured_and_edges_belong_to_the_bin_below():
    from carscope.train.evaluation import topk_accuracy

    one = torch.tensor([[0.2, 0.8]])
    assert topk_accuracy(one, torch.tensor([1]), 1) == 1.0 and topk_accuracy(one, torch.tensor([0]), 1) == 0.0
    assert abs(expected_calibration_error(one, torch.tensor([1]), n_bins=4) - 0.2) < 1e-6
    # confidences exactly on bin edges (0.5 and 0.75 are exact in float32): each counts once, in (lo, hi]
    probs = torch.tensor([[0.5, 0.5], [0.75, 0.25], [0.25, 0.75], [1.0, 0.0]])
    targets = torch.tensor([0, 1, 1, 0])
    conf, pred = probs.max(1)
    correct = (pred == targets).tolist()
    for n_bins in (2, 4):
        want = _ece_by_hand(conf.tolist(), correct, n_bins)
        assert abs(expected_calibration_error(probs, targets, n_bins=n_bins) - want) < 1e-6, n_bins


def test_a_line_search_that_overflows_keeps_the_identity(monkeypatch):
    class Overflowing(_FixedOptimum):
        def step(self, closure):
            raise RuntimeError("value cannot be converted to type float without overflow")

    monkeypatch.setattr(torch.optim, "LBFGS", Overflowing)
    assert fit_temperature(torch.randn(10, 3), torch.arange(10) % 3) == 1.0


def test_large_logits_are_calibrated_on_a_sample_and_scored_in_chunks(monkeypatch):
    """Past FIT_CELLS_MAX photos x classes the temperature is fitted on evenly spaced rows (the same T within a few
    percent), and the ECE comes from chunked confidences equal to the whole softmax's."""
    import carscope.train.evaluation as ev

    g = torch.Generator().manual_seed(2)
    n, k = 12_000, 5
    targets = torch.randint(0, k, (n,), generator=g)
    logits = torch.randn(n, k, generator=g)
    logits[torch.arange(n), targets] += 1.5
    logits *= 4
    whole = fit_temperature(logits, targets)
    seen = []
    real_ce = torch.nn.functional.cross_entropy
    monkeypatch.setattr(torch.nn.functional, "cross_entropy", lambda x, y, *a, **kw: (seen.append(len(y)),
                                                                                      real_ce(x, y, *a, **kw))[1])
    sampled = fit_temperature(logits, targets, cells_max=2000 * k)
    assert set(seen) == {2000} and abs(sampled - whole) / whole < 0.05
    monkeypatch.setattr(torch.nn.functional, "cross_entropy", real_ce)
    monkeypatch.setattr(ev, "CHUNK_CELLS", 7 * k)  # chunks of 7 rows
    rows_softmaxed = []
    real_softmax = torch.softmax
    monkeypatch.setattr(torch, "softmax", lambda x, *a, **kw: (rows_softmaxed.append(len(x)),
                                                                real_softmax(x, *a, **kw))[1])
    r = classification_report(logits, targets, list("abcde"), temperature=whole)
    monkeypatch.setattr(torch, "softmax", real_softmax)
    assert rows_softmaxed and max(rows_softmaxed) == 7  # never the whole photos x classes array at once
    assert abs(r["ece_after"] - expected_calibration_error(torch.softmax(logits / whole, 1), targets)) < 1e-6
    assert abs(r["ece_before"] - expected_calibration_error(torch.softmax(logits, 1), targets)) < 1e-6
