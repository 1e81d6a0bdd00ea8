"""`carscope bench ood` on the tiny export: every set answered through serve's Predictor, every figure present and
consistent, the plot written."""

from __future__ import annotations

import argparse
import json

import pytest


def test_bench_ood_small(bundle, tmp_path):
    from carscope.benchmarks import ood
    from carscope.benchmarks.common import write_result

    out, _ = bundle
    args = argparse.Namespace(bundle=str(out), synthetic=14, showroom_negatives=8, unknown_cars=6, latency_rounds=5)
    result, md = ood.run(args, tmp_path)
    write_result(tmp_path, "ood", result, md)
    sets = result["sets"]
    assert sets["synthetic"] == 14 and sets["showroom_negatives"] == 8 and sets["id_test"] > 0
    assert sets["unknown_cars"] == 6 and "seed" in result["notes"]["unknown_cars"]
    # served is the level rule after the unknown-model check: every reason it gives is one serve documents
    assert set(result["reasons"]["unknown_cars"]) <= {"sure", "not_a_car", "unfamiliar", "interior", "unknown_model",
                                                      "low_confidence"}
    if "real_photos" in sets:  # scikit-image is a dev dependency; without it the set is left out, and said so
        assert sets["real_photos"] >= 10
    else:
        assert "scikit-image is not installed" in result["notes"]["real_photos"]
    for policy in ood.POLICIES:
        for name, n in sets.items():
            row = result["rules"][policy][name]
            assert row["photos"] == n and 0 <= row["sure"] <= n
    # "both" is at least as strict as either check alone, and "before" the loosest
    for name in sets:
        both = result["rules"]["both"][name]["sure"]
        assert both <= result["rules"]["other_only"][name]["sure"] <= result["rules"]["before"][name]["sure"]
        assert both <= result["rules"]["score_only"][name]["sure"] <= result["rules"]["before"][name]["sure"]
    assert sum(result["reasons"]["synthetic"].values()) == 14
    for kinds in result["scores"].values():
        assert {"max_softmax", "mahalanobis", "knn", "view_p_other", "served"} <= set(kinds)
        assert all(0 <= v["auroc"] <= 1 for v in kinds.values())
    scale = result["scale"]
    assert scale["mahalanobis"]["bytes"] < 100e6 and scale["knn_uncapped_arithmetic"]["bytes"] == 200_000 * 2048 * 2
    assert result["latency"]["with_ood"]["p50_ms"] > 0 and result["latency"]["without_ood"]["p50_ms"] > 0
    assert (tmp_path / "ood_scores.png").stat().st_size > 1000
    assert "## Answered `sure`, by rule" in md and json.loads((tmp_path / "ood.json").read_text())["benchmark"] == "ood"


def test_bench_ood_refuses_a_bundle_without_the_check(tiny, tmp_path):
    from carscope.benchmarks import ood
    from carscope.common.errors import CarscopeError
    from carscope.export.pipeline import export_bundle

    data, view, model = tiny
    export_bundle(view, model, data, tmp_path / "b", ood_method="none", log=lambda m: None)
    args = argparse.Namespace(bundle=str(tmp_path / "b"), synthetic=2, showroom_negatives=0, latency_rounds=1)
    with pytest.raises(CarscopeError, match="no OOD check"):
        ood.run(args, tmp_path / "out")
