"""The answer levels (carscope/common/levels.py): the hierarchy, the confusable groups found from held-out
probabilities, the rule that picks the level, and the level metrics.

    .venv/bin/python -m pytest -q tests/common/test_levels.py
"""

from __future__ import annotations

import numpy as np
import pytest

from carscope.common.levels import Hierarchy, answered, confusable_groups, decide, ece, level_metrics

# Acme Roadster 2021-2023, Acme Van 2023, Bolt Sedan 2022-2023, Zen Coupe 2023
ROWS = [("r21", "Acme", "Roadster", 2021), ("r22", "Acme", "Roadster", 2022), ("r23", "Acme", "Roadster", 2023),
        ("v23", "Acme", "Van", 2023), ("s22", "Bolt", "Sedan", 2022), ("s23", "Bolt", "Sedan", 2023),
        ("z23", "Zen", "Coupe", 2023)]


def probs(**mass):
    p = np.zeros(len(ROWS))
    for label, v in mass.items():
        p[[r[0] for r in ROWS].index(label)] = v
    rest = 1 - p.sum()
    p[p == 0] = rest / max(1, (p == 0).sum())
    return p


def test_hierarchy_codes_models_and_makes():
    h = Hierarchy.from_rows(ROWS)
    assert h.makes == ["Acme", "Bolt", "Zen"]
    assert h.models == [("Acme", "Roadster"), ("Acme", "Van"), ("Bolt", "Sedan"), ("Zen", "Coupe")]
    assert h.model_of.tolist() == [0, 0, 0, 1, 2, 2, 3] and h.make_of.tolist() == [0, 0, 0, 0, 1, 1, 2]
    m = h.masses(probs(r21=0.2, r22=0.2, s23=0.1, z23=0.3, v23=0.1, r23=0.05))
    assert m["make"][0].tolist() == pytest.approx([0.55, 0.15, 0.3]) and m["model"][0, 0] == pytest.approx(0.45)
    assert h.year_range([0, 2]) == (2021, 2023)


def test_a_class_without_specs_is_its_own_model_and_make():
    h = Hierarchy.from_rows([("a", None, None, None), ("b", None, None, None)])
    assert len(h.makes) == 2 and len(h.models) == 2 and h.year_range([0, 1]) is None


def test_confusable_groups_join_model_years_that_trade_probability():
    h = Hierarchy.from_rows(ROWS)
    t = np.array([0, 0, 1, 1, 2, 2, 3, 4, 5])
    p = np.array([probs(r21=0.5, r22=0.4), probs(r21=0.6, r22=0.3),  # 2021 and 2022 look alike
                  probs(r22=0.5, r21=0.4), probs(r22=0.55, r21=0.35),
                  probs(r23=0.95), probs(r23=0.9),  # 2023 stands apart
                  probs(v23=0.9), probs(s22=0.9, s23=0.05), probs(s23=0.9, s22=0.05)])
    groups, found = confusable_groups(p, t, h, join=0.25)
    assert groups == [["r21", "r22"]]
    assert [(x["a"], x["b"]) for x in found["pairs"]] == [("r21", "r22")]
    # across models, however alike, nothing joins: a group is a range of one model's years
    p2 = p.copy()
    p2[6] = probs(v23=0.5, r23=0.45)
    assert confusable_groups(p2, t, h, join=0.25)[0] == [["r21", "r22"]]
    # a stricter join keeps them apart
    assert confusable_groups(p, t, h, join=0.95)[0] == []


def _groups_by_dense_means(p, t, h, join):
    """The definition, with the whole photos x classes array: mean probability per (class, class) of one model."""
    pairs = set()
    for m in range(len(h.models)):
        mem = [c for c in np.flatnonzero(h.model_of == m) if (t == c).any()]
        for i, a in enumerate(mem):
            for b in mem[i + 1:]:
                if p[t == a][:, b].mean() + p[t == b][:, a].mean() >= join:
                    pairs.add((h.labels[a], h.labels[b]))
    return pairs


def test_confusable_groups_from_logit_blocks_equal_the_whole_array():
    """Blocks of logits softmaxed as they come (export's val split at 19,000 classes) find the pairs the whole
    array does, with the same trade, whatever the block size."""
    from carscope.common.levels import confusable_groups_chunked

    rng = np.random.default_rng(3)
    rows = [(f"m{m}y{y}", f"make{m % 3}", f"model{m}", 2010 + y) for m in range(12) for y in range(4)]
    h = Hierarchy.from_rows(rows)
    n = len(rows)
    t = rng.integers(0, n - 4, 600)  # the last model's years have no held-out photo
    logits = rng.normal(size=(600, n)) * 2
    for k in range(600):  # a photo leans to its class; in the first six models, as much to a sibling year
        logits[k, t[k]] += 4
        if t[k] < 24 and k % 2 == 0:
            logits[k, t[k] + (1 if t[k] % 4 < 3 else -1)] += 4
    z = np.exp(logits / 1.3 - (logits / 1.3).max(axis=1, keepdims=True))
    p = z / z.sum(axis=1, keepdims=True)
    want = _groups_by_dense_means(p, t, h, 0.25)
    assert want  # the data has pairs to find
    whole = confusable_groups(p, t, h, 0.25)
    for size in (1, 7, 600):
        blocks = ((logits[i:i + size], t[i:i + size]) for i in range(0, 600, size))
        groups, found = confusable_groups_chunked(blocks, h, 0.25, temperature=1.3)
        assert {(x["a"], x["b"]) for x in found["pairs"]} == want
        assert (groups, found) == whole
    assert found["classes_with_photos"] == len(set(t.tolist()))


def test_decide_answers_at_the_finest_level_the_probabilities_support():
    h = Hierarchy.from_rows(ROWS, groups=[["r21", "r22"]])
    d = decide(probs(r23=0.8), h, 0.5)
    assert (d.level, d.classes) == ("model_year", [2])
    # a grouped model-year is never answered alone, however confident: its group is
    d = decide(probs(r22=0.9), h, 0.5)
    assert d.level == "model" and d.classes == [0, 1] and d.confidence == pytest.approx(0.9 + 0.1 / 6)
    # no year sure, the model is: all its years
    d = decide(probs(r21=0.2, r23=0.35, r22=0.1, z23=0.2), h, 0.5)
    assert d.level == "model" and d.classes == [0, 1, 2] and h.models[d.model] == ("Acme", "Roadster")
    # two models of one make: the make
    d = decide(probs(r23=0.3, v23=0.3, z23=0.3), h, 0.5)
    assert d.level == "make" and h.makes[d.make] == "Acme" and d.classes == [0, 1, 2, 3]
    # nothing reaches it
    d = decide(probs(r23=0.3, s23=0.3, z23=0.35), h, 0.5)
    assert d.level is None and d.confidence < 0.5


def test_level_metrics_and_ece():
    h = Hierarchy.from_rows(ROWS)
    t = np.array([0, 4])
    p = np.array([probs(r22=0.7), probs(s23=0.7)])  # wrong year, right model and make
    m = level_metrics(p, t, h)
    assert m["model_year"]["top1"] == 0 and m["model"]["top1"] == 1 and m["make"]["top1"] == 1
    assert ece(np.array([0.9, 0.9]), np.array([1, 0])) == pytest.approx(0.4)
    assert ece(np.array([0.5, 0.5]), np.array([1, 0])) == pytest.approx(0.0)


def test_answered_counts_right_at_the_answer_level():
    h = Hierarchy.from_rows(ROWS, groups=[["r21", "r22"]])
    t = np.array([0, 2, 4, 5])
    p = np.array([probs(r22=0.9),  # group {21, 22}: right at the model level
                  probs(r23=0.9),  # right model-year
                  probs(s23=0.9),  # wrong model-year, sure
                  probs(r23=0.3, s23=0.3, z23=0.35)])  # not sure
    a = answered(p, t, h, 0.5)
    assert a["sure"] == 0.75 and a["sure_and_right"] == 0.5 and a["wrong_when_sure"] == pytest.approx(1 / 3)
    assert a["levels"]["model"]["share"] == 0.25 and a["levels"]["model"]["right"] == 1.0
    refused = answered(p, t, h, 0.5, refused=np.array([False, False, True, False]))
    assert refused["sure"] == 0.5 and refused["wrong_when_sure"] == 0


def test_level_metrics_of_logit_blocks_equal_the_whole_softmax(monkeypatch):
    """level_metrics reads logits a block of rows at a time and softmaxes them there: the same top-1 and ECE at every
    level as the whole array's probabilities (at 19,000 classes the whole float64 copy was 2.9 GB)."""
    import carscope.common.levels as levels

    rng = np.random.default_rng(4)
    rows = [(f"m{m}y{y}", f"make{m % 3}", f"model{m}", 2010 + y) for m in range(9) for y in range(3)]
    h = Hierarchy.from_rows(rows)
    logits = rng.normal(size=(500, len(rows))) * 3
    t = rng.integers(0, len(rows), 500)
    logits[np.arange(500), t] += rng.random(500) * 4
    z = np.exp(logits / 1.7 - (logits / 1.7).max(axis=1, keepdims=True))
    whole = level_metrics(z / z.sum(axis=1, keepdims=True), t, h)
    monkeypatch.setattr(levels, "BLOCK_CELLS", 11 * len(rows))  # blocks of 11 rows
    blocks = level_metrics(logits.astype(np.float32), t, h, temperature=1.7)
    for lvl in ("model_year", "model", "make"):
        assert blocks[lvl]["top1"] == whole[lvl]["top1"]
        assert blocks[lvl]["ece"] == pytest.approx(whole[lvl]["ece"], abs=1e-6)
