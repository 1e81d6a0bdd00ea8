"""carscope/export/parity.py on known answers: the numbers the parity and int8 gates decide on (fast; also what `make
mutate` runs against this module)."""

from __future__ import annotations

import numpy as np
import pytest

from carscope.export.parity import compare, softmax, summary


def test_identical_logits_agree_completely():
    x = np.array([[1.0, 2.0, 3.0], [3.0, 1.0, 0.0]])
    p = compare(x, x.copy())
    assert p == {"photos": 2, "max_abs_logit_diff": 0.0, "mean_abs_logit_diff": 0.0, "max_rel_error": 0.0,
                 "max_abs_prob_diff": 0.0, "top1_agreement": 1.0, "top1_disagreements": 0}


def test_one_flipped_top1_in_four():
    ref = np.array([[2.0, 0.0], [2.0, 0.0], [0.0, 2.0], [0.0, 2.0]])
    cand = ref.copy()
    cand[1] = [0.0, 2.0]
    p = compare(ref, cand)
    assert p["top1_agreement"] == 0.75 and p["top1_disagreements"] == 1
    assert p["max_abs_logit_diff"] == 2.0 and p["mean_abs_logit_diff"] == pytest.approx(4.0 / 8)
    assert p["max_rel_error"] == pytest.approx(1.0)  # |Δ|∞ 2 over |reference|∞ 2 on the flipped photo


def test_relative_error_is_per_photo_then_worst():
    ref = np.array([[10.0, 0.0], [1.0, 0.0]])
    cand = np.array([[10.0, 1.0], [1.0, 0.5]])
    p = compare(ref, cand)
    assert p["max_rel_error"] == pytest.approx(0.5)  # photo 2: 0.5 / 1 (photo 1: 1 / 10)
    assert p["max_abs_logit_diff"] == 1.0 and p["mean_abs_logit_diff"] == pytest.approx(1.5 / 4)


def test_an_all_zero_reference_row_does_not_divide_by_zero():
    p = compare(np.zeros((1, 3)), np.full((1, 3), 1e-13))
    assert p["max_rel_error"] == pytest.approx(0.1)  # the scale's floor is 1e-12


def test_probabilities_use_the_temperature():
    ref, cand = np.array([[2.0, 0.0]]), np.array([[1.0, 0.0]])
    want = abs(1 / (1 + np.exp(-2.0 / 2)) - 1 / (1 + np.exp(-1.0 / 2)))
    assert compare(ref, cand, temperature=2.0)["max_abs_prob_diff"] == pytest.approx(want)
    assert compare(ref, cand)["max_abs_prob_diff"] == pytest.approx(
        abs(1 / (1 + np.exp(-2.0)) - 1 / (1 + np.exp(-1.0))))


def test_accuracies_against_targets():
    ref = np.array([[2.0, 0.0], [0.0, 2.0], [2.0, 0.0]])
    cand = np.array([[2.0, 0.0], [2.0, 0.0], [2.0, 0.0]])
    p = compare(ref, cand, targets=np.array([0, 1, 1]))
    assert p["top1_reference"] == pytest.approx(2 / 3) and p["top1_candidate"] == pytest.approx(1 / 3)
    assert "top1_reference" not in compare(ref, cand)


def test_empty_and_mismatched_inputs():
    p = compare(np.zeros((0, 3)), np.zeros((0, 3)), targets=np.zeros(0))
    assert p["photos"] == 0 and p["top1_agreement"] == 1.0 and p["max_rel_error"] == 0.0
    assert p["max_abs_logit_diff"] == p["mean_abs_logit_diff"] == p["max_abs_prob_diff"] == 0.0
    assert "top1_reference" not in p
    with pytest.raises(ValueError, match="logit shapes differ"):
        compare(np.zeros((2, 3)), np.zeros((2, 4)))


def test_softmax_is_stable_and_sums_to_one():
    z = np.array([[1000.0, 1000.0, 0.0], [0.0, 1.0, 2.0]])
    p = softmax(z)
    assert np.allclose(p.sum(axis=1), 1.0) and np.all(np.isfinite(p))
    assert p[0, 0] == pytest.approx(0.5) and p[0, 2] < 1e-300 + 1e-12
    e = np.exp([0.0, 1.0, 2.0])
    assert np.allclose(p[1], e / e.sum())
    assert np.allclose(softmax(z[1:], temperature=2.0)[0], np.exp([0, 0.5, 1]) / np.exp([0, 0.5, 1]).sum())


def test_summary_line():
    ref = np.array([[2.0, 0.0], [0.0, 2.0]])
    s = summary(compare(ref, ref[::-1].copy(), targets=np.array([0, 1])))
    assert s.startswith("2 photos, top-1 agreement 0.00% (2 differ)")
    assert "max |Δlogit| 2.00e+00" in s and "max rel. error 1.00e+00" in s and "top-1 100.00% -> 0.00%" in s
    assert "->" not in summary(compare(ref, ref))


def test_the_fp32_gate():
    from carscope.export.parity import fp32_passes

    ok = {"top1_agreement": 1.0, "max_rel_error": 1e-4}
    assert fp32_passes(ok)
    assert fp32_passes({**ok, "max_rel_error": 1e-3})  # the limit itself passes
    assert not fp32_passes({**ok, "max_rel_error": 2e-3})
    assert not fp32_passes({**ok, "top1_agreement": 0.999})
    assert not fp32_passes({**ok, "max_rel_error": 0.5}) and not fp32_passes({**ok, "max_rel_error": 1.0005})
    assert fp32_passes({**ok, "max_rel_error": 0.05}, max_rel_error=0.1)


def test_int8_accuracy_gate_at_its_limit(monkeypatch):
    from carscope.export import parity

    assert parity.INT8_MAX_DROP_POINTS == 1.0
    assert parity.int8_failures(1.0) == [] and parity.int8_failures(0.0) == [] and parity.int8_failures(-2.0) == []
    assert parity.int8_failures(1.01) == ["top-1 drops 1.01 points > 1"]
    monkeypatch.setattr(parity, "INT8_MAX_DROP_POINTS", 0.5)  # read at call time
    assert parity.int8_failures(0.6) == ["top-1 drops 0.60 points > 0.5"]


def test_int8_ood_gate_at_its_limits():
    from carscope.export import parity

    assert (parity.INT8_OOD_MAX_TPR_DROP, parity.INT8_OOD_MAX_AUROC_DROP) == (0.03, 0.02)
    assert parity.int8_ood_failures(0.98, 0.95, 0.99, 0.97) == []  # both drops exactly at their limits
    assert parity.int8_ood_failures(0.98, 0.99, 0.90, 0.95) == []  # int8 better on both
    assert parity.int8_ood_failures(0.98, 0.9499, 0.99, 0.97) == ["OOD in-distribution rate drops 98.0% -> 95.0%"]
    assert parity.int8_ood_failures(0.98, 0.95, 0.99, 0.9699) == ["OOD AUROC drops 0.990 -> 0.970"]
    assert len(parity.int8_ood_failures(0.98, 0.5, 0.99, 0.5)) == 2


def test_fp16_gate_at_its_limit():
    from carscope.export import parity

    assert parity.FP16_MIN_AGREEMENT == 0.99
    assert parity.fp16_passes(0.99) and parity.fp16_passes(1.0) and not parity.fp16_passes(0.9899)


def test_feature_parity_numbers():
    from carscope.export.parity import compare_features

    ref = np.array([[1.0, -4.0, 2.0], [0.5, 0.25, 0.0]])
    cand = ref + np.array([[0.0, 0.02, -0.01], [0.005, 0.0, 0.0]])
    f = compare_features(ref, cand)
    assert f == {"photos": 2, "dim": 3, "max_abs_diff": pytest.approx(0.02), "max_rel_error": pytest.approx(0.01)}
    # per photo: |diff|inf / |ref|inf (0.02 / 4 = 0.005 and 0.005 / 0.5 = 0.01), then the worst photo
    assert compare_features(ref, ref.astype(np.float32)) == {"photos": 2, "dim": 3, "max_abs_diff": 0.0,
                                                             "max_rel_error": 0.0}
    zero = compare_features(np.zeros((1, 2)), np.array([[0.0, 1e-13]]))  # an all-zero row: no division by zero
    assert zero["max_rel_error"] == pytest.approx(0.1) and np.isfinite(zero["max_rel_error"])
    assert compare_features(np.zeros((0, 5)), np.zeros((0, 5))) == {"photos": 0, "dim": 5, "max_abs_diff": 0.0,
                                                                    "max_rel_error": 0.0}
    assert compare_features(np.zeros(0), np.zeros(0))["dim"] == 0
    with pytest.raises(ValueError, match=r"feature shapes differ: \(2, 3\) vs \(2, 2\)"):
        compare_features(ref, ref[:, :2])


def test_the_fp32_gate_holds_the_features_too():
    from carscope.export.parity import fp32_passes

    ok = {"top1_agreement": 1.0, "max_rel_error": 1e-4}
    assert fp32_passes({**ok, "features": {"max_rel_error": 1e-3}})  # the limit itself passes
    assert not fp32_passes({**ok, "features": {"max_rel_error": 1.1e-3}})
    assert fp32_passes({**ok, "features": {"max_rel_error": 0.05}}, max_rel_error=0.1)
    assert not fp32_passes({**ok, "features": {"max_rel_error": 0.2}}, max_rel_error=0.1)


def test_gates_at_exactly_their_limit_plus_the_float_slack():
    from carscope.export import parity

    slack = parity._SLACK
    assert slack <= 1e-9  # float noise only: a real drop of a millionth of a point is still a drop
    assert parity.int8_failures(1.0 + slack) == [] and parity.int8_failures(1.0 + 3 * slack) != []
    assert parity.int8_ood_failures(0.03 + slack, 0.0, 0.5, 0.5) == []
    assert parity.int8_ood_failures(0.03 + 3 * slack, 0.0, 0.5, 0.5) != []
    assert parity.int8_ood_failures(0.5, 0.5, 0.02 + slack, 0.0) == []
    assert parity.int8_ood_failures(0.5, 0.5, 0.02 + 3 * slack, 0.0) != []
    assert parity.fp16_passes(0.99 - slack) and not parity.fp16_passes(0.99 - 3 * slack)


def test_summary_line_word_for_word():
    ref = np.array([[2.0, 0.0], [0.0, 2.0]])
    p = compare(ref, ref[::-1].copy(), targets=np.array([0, 1]))
    assert summary(p) == ("2 photos, top-1 agreement 0.00% (2 differ), max |Δlogit| 2.00e+00, max rel. error "
                          "1.00e+00, top-1 100.00% -> 0.00%")
    p["features"] = {"max_rel_error": 0.002}
    assert summary(p).endswith("top-1 100.00% -> 0.00%; features max rel. error 2.00e-03")
