"""The levels of an answer: a model-year, a model over a range of years, a make. The one definition that training
reports, export, serve and the benchmarks share (numpy only: serve imports it).

    python -c "from carscope.common.levels import Hierarchy; h = Hierarchy.from_rows([('a', 'Acme', 'Roadster', 2022), \
('b', 'Acme', 'Roadster', 2023), ('c', 'Acme', 'Van', 2023)]); print(h.models, h.makes)"

A model classifier's classes are model-years. Some model-years cannot be told apart from a photo: a generation runs
for years with one look. Export finds those from held-out photos (`confusable_groups`, never from a catalog's
truth) and records them in the bundle; an answer then claims only what the photo supports (`decide`):

1. the model-year, when its class is not in a confusable group and its probability reaches the threshold;
2. else the model over a range of years: the confusable group with the most probability (when it has more than
   one model-year), then all of one model's years, when that mass reaches the threshold;
3. else the make, when the make's mass reaches it;
4. else nothing: not sure.

Masses are sums of calibrated class probabilities, so each level's confidence is a probability of its own and can
be scored (`level_metrics`: top-1 and ECE at each level).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

LEVELS = ("model_year", "model", "make")
DEFAULT_JOIN = 0.25  # two model-years of a model join when their held-out photos trade this much probability


@dataclass
class Hierarchy:
    """Class index -> its model and make, as integer codes (`model_of`, `make_of`), with names and years."""

    labels: list[str]
    makes: list[str]
    models: list[tuple[str, str]]  # (make, model)
    years: list[int | None]  # per class
    model_of: np.ndarray  # class -> index into models
    make_of: np.ndarray  # class -> index into makes
    groups: list[list[int]] = field(default_factory=list)  # confusable groups (each of 2+ classes of one model)
    group_of: np.ndarray | None = None  # class -> index into groups, -1 when alone
    grouped: np.ndarray | None = None  # the classes in a group (decide sums their masses with one bincount)

    @classmethod
    def from_rows(cls, rows, groups: list[list[str]] | None = None) -> Hierarchy:
        """`rows`: (label, make, model, year) per class, in class order. A class with no make or model (no specs
        row) is a model and a make of its own, so it never merges with others."""
        labels, years, model_of, make_of = [], [], [], []
        makes: dict[str, int] = {}  # name -> code, in first-seen order
        models: dict[tuple[str, str], int] = {}
        for label, make, model, year in rows:
            make = str(make) if not _missing(make) else f"?{label}"
            model = str(model) if not _missing(model) else f"?{label}"
            labels.append(str(label))
            make_of.append(makes.setdefault(make, len(makes)))
            model_of.append(models.setdefault((make, model), len(models)))
            years.append(None if _missing(year) else int(year))
        h = cls(labels, list(makes), list(models), years, np.array(model_of, np.int64), np.array(make_of, np.int64))
        h.set_groups(groups or [])
        return h

    @classmethod
    def from_specs(cls, labels: list[str], specs: dict[str, dict[str, Any]],
                   groups: list[list[str]] | None = None) -> Hierarchy:
        """From a specs table as {model_id: row with make, model, year}."""
        return cls.from_rows([(lab, specs.get(lab, {}).get("make"), specs.get(lab, {}).get("model"),
                               specs.get(lab, {}).get("year")) for lab in labels], groups)

    @classmethod
    def from_table(cls, labels: list[str], table, groups: list[list[str]] | None = None) -> Hierarchy:
        """From a dataset's specs table (a DataFrame with model_id, make, model, year); a table without make and
        model makes every class its own model and make."""
        cols = [c for c in ("model_id", "make", "model", "year") if c in table.columns]
        rows = {str(r["model_id"]): r for r in table[cols].to_dict(orient="records")} if "model_id" in cols else {}
        return cls.from_specs(labels, rows, groups)

    def set_groups(self, groups: list[list[str]]) -> None:
        index = {lab: i for i, lab in enumerate(self.labels)}
        self.groups = [sorted(index[lab] for lab in g if lab in index) for g in groups]
        self.groups = [g for g in self.groups if len(g) > 1]
        self.group_of = np.full(len(self.labels), -1, np.int64)
        for gi, g in enumerate(self.groups):
            self.group_of[g] = gi
        self.grouped = np.flatnonzero(self.group_of >= 0)

    def group_labels(self) -> list[list[str]]:
        return [[self.labels[i] for i in g] for g in self.groups]

    def year_range(self, classes) -> tuple[int, int] | None:
        ys = [self.years[i] for i in classes if self.years[i] is not None]
        return (min(ys), max(ys)) if ys else None

    def model_name(self, classes) -> str:
        """"Acme Roadster, 2021–2023" (", 2023" for one year, no years when unknown) of one model's classes."""
        make, model = self.models[int(self.model_of[classes[0]])]
        years = self.year_range(classes)
        span = "" if not years else f", {years[0]}" if years[0] == years[1] else f", {years[0]}–{years[1]}"
        return f"{make} {model}{span}"

    def masses(self, probs: np.ndarray) -> dict[str, np.ndarray]:
        """Per photo (rows of `probs`): the probability of each model and each make."""
        p = np.atleast_2d(np.asarray(probs, np.float64))
        return {"model": _sum_by(p, self.model_of, len(self.models)), "make": _sum_by(p, self.make_of, len(self.makes))}


def _missing(v) -> bool:
    """None, "", NaN or pandas' NA."""
    if v is None or (isinstance(v, str) and v == ""):
        return True
    try:
        return bool(v != v)  # NaN; pandas.NA raises TypeError here
    except TypeError:
        return True


def _sum_by(p: np.ndarray, codes: np.ndarray, n: int) -> np.ndarray:
    """Row by row, the sum of `p` per code: O(classes) a photo, at 19,000 classes as at 24."""
    return np.stack([np.bincount(codes, weights=row, minlength=n) for row in p]) if len(p) else np.zeros((0, n))


def confusable_groups(probs: np.ndarray, targets: np.ndarray, h: Hierarchy, join: float = DEFAULT_JOIN
                      ) -> tuple[list[list[str]], dict[str, Any]]:
    """Model-years of one model that held-out photos cannot tell apart, joined transitively.

    For two classes i and j of the same model, `trade` is the mean probability class-i photos give j plus the mean
    class-j photos give i. A pair joins when trade reaches `join`. Only classes with held-out photos can join.
    Returns the groups (labels, each group sorted) and what was measured per joined pair. `probs` may be read a
    block of rows at a time: confusable_groups_chunked takes the blocks (and logits) without a whole array."""
    p = np.asarray(probs)
    return confusable_groups_chunked(((p[i:i + 4096], np.asarray(targets)[i:i + 4096]) for i in range(0, len(p), 4096)),
                                     h, join)


def confusable_groups_chunked(blocks, h: Hierarchy, join: float = DEFAULT_JOIN, temperature: float | None = None
                              ) -> tuple[list[list[str]], dict[str, Any]]:
    """confusable_groups over (rows, targets) blocks: probabilities, or logits softmaxed here at `temperature` when
    it is given. Memory is a model's block of sums (its years x its years), never photos x classes: at 19,000
    classes the val split's probabilities in float64 were 2.9 GB."""
    n = len(h.labels)
    by_model = np.argsort(h.model_of, kind="stable")  # classes grouped by model: each model's block in one pass
    bounds = np.searchsorted(h.model_of[by_model], np.arange(len(h.models) + 1))
    members = [by_model[bounds[m]:bounds[m + 1]] for m in range(len(h.models))]
    slot = np.zeros(n, dtype=np.intp)  # a class's place among its model's members
    for mem in members:
        slot[mem] = np.arange(len(mem))
    sums: dict[int, np.ndarray] = {}  # model -> [i, j]: summed probability class-members[i] photos give members[j]
    counts = np.zeros(n, dtype=np.int64)
    for rows, t in blocks:
        rows, t = np.asarray(rows, np.float64), np.asarray(t)
        if temperature is not None:
            z = rows / temperature
            z -= z.max(axis=1, keepdims=True)
            rows = np.exp(z)
            rows /= rows.sum(axis=1, keepdims=True)
        counts += np.bincount(t, minlength=n)[:n]
        mt = h.model_of[t]
        for m in np.unique(mt):
            mem = members[m]
            if len(mem) < 2:
                continue
            r = np.flatnonzero(mt == m)
            acc = sums.setdefault(int(m), np.zeros((len(mem), len(mem))))
            np.add.at(acc, slot[t[r]], rows[np.ix_(r, mem)])
    seen = counts > 0
    parent = list(range(n))

    def root(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    pairs = []
    for m, acc in sorted(sums.items()):
        mem = members[m]
        mean = acc / np.maximum(counts[mem], 1)[:, None]
        have = [i for i, c in enumerate(mem) if seen[c]]
        for x, a_i in enumerate(have):
            for b_i in have[x + 1:]:
                a, b = int(mem[a_i]), int(mem[b_i])
                trade = float(mean[a_i, b_i] + mean[b_i, a_i])
                if trade >= join:
                    parent[root(a)] = root(b)
                    pairs.append({"a": h.labels[a], "b": h.labels[b], "trade": round(trade, 4)})
    comps: dict[int, list[int]] = {}
    for c in range(n):
        comps.setdefault(root(c), []).append(c)
    groups = sorted([sorted(h.labels[c] for c in g) for g in comps.values() if len(g) > 1])
    return groups, {"join": join, "pairs": pairs, "classes_with_photos": int(seen.sum())}


@dataclass
class Decision:
    level: str | None  # one of LEVELS, or None: not sure at any level
    confidence: float  # the probability mass of what is answered (of the best make when nothing is)
    classes: list[int]  # the model-years the answer covers (one for a model-year)
    model: int | None = None  # index into Hierarchy.models
    make: int | None = None  # index into Hierarchy.makes


def decide(probs: np.ndarray, h: Hierarchy, threshold: float) -> Decision:
    """The answer to one photo's calibrated class probabilities at the level they support (the module's rule)."""
    p = np.asarray(probs, np.float64).ravel()
    c = int(np.argmax(p))
    if h.group_of is None or h.group_of[c] < 0:
        if p[c] >= threshold:
            return Decision("model_year", float(p[c]), [c], int(h.model_of[c]), int(h.make_of[c]))
    if h.groups:
        gm = np.bincount(h.group_of[h.grouped], weights=p[h.grouped], minlength=len(h.groups))
        g = int(np.argmax(gm))
        if gm[g] >= threshold:
            cls = h.groups[g]
            return Decision("model", float(gm[g]), list(cls), int(h.model_of[cls[0]]), int(h.make_of[cls[0]]))
    masses = h.masses(p)
    m = int(np.argmax(masses["model"][0]))
    if masses["model"][0, m] >= threshold:
        cls = [int(i) for i in np.flatnonzero(h.model_of == m)]
        return Decision("model", float(masses["model"][0, m]), cls, m, int(h.make_of[cls[0]]))
    k = int(np.argmax(masses["make"][0]))
    cls = [int(i) for i in np.flatnonzero(h.make_of == k)]
    if masses["make"][0, k] >= threshold:
        return Decision("make", float(masses["make"][0, k]), cls, None, k)
    return Decision(None, float(masses["make"][0, k]), cls, None, k)


def ece(confidence: np.ndarray, correct: np.ndarray, bins: int = 15) -> float:
    """Expected calibration error over equal-width confidence bins (the training report's definition)."""
    conf, ok = np.asarray(confidence, np.float64), np.asarray(correct, np.float64)
    if not len(conf):
        return float("nan")
    edges = np.linspace(0, 1, bins + 1)
    total = 0.0
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        inside = (conf > lo) & (conf <= hi)
        if inside.any():
            total += inside.mean() * abs(conf[inside].mean() - ok[inside].mean())
    return float(total)


BLOCK_CELLS = 10_000_000  # photos x classes converted to float64 at once (80 MB)


def level_metrics(probs: np.ndarray, targets: np.ndarray, h: Hierarchy, temperature: float | None = None
                  ) -> dict[str, Any]:
    """Top-1 and ECE at the model-year, model (any of its years) and make level: the argmax of each level's
    masses against the true class's model and make. With `temperature`, `probs` are logits, softmaxed here. Rows
    are read a block at a time: 19,000 photos x 19,000 classes are never copied whole."""
    p = np.atleast_2d(np.asarray(probs))
    t = np.asarray(targets, np.int64)
    if not len(t):
        return {lvl: {"top1": float("nan"), "ece": float("nan")} for lvl in LEVELS} | {"n": 0}
    conf = {lvl: [] for lvl in LEVELS}
    ok = {lvl: [] for lvl in LEVELS}
    rows = max(1, BLOCK_CELLS // max(1, p.shape[1]))
    for i in range(0, len(t), rows):
        block, tb = np.asarray(p[i:i + rows], np.float64), t[i:i + rows]
        if temperature is not None:
            block = block / temperature
            block = np.exp(block - block.max(axis=1, keepdims=True))
            block /= block.sum(axis=1, keepdims=True)
        masses = h.masses(block)
        for lvl, mass, truth in (("model_year", block, tb), ("model", masses["model"], h.model_of[tb]),
                                 ("make", masses["make"], h.make_of[tb])):
            ok[lvl].append(mass.argmax(axis=1) == truth)
            conf[lvl].append(mass.max(axis=1))
    out: dict[str, Any] = {"n": int(len(t))}
    for lvl in LEVELS:
        right = np.concatenate(ok[lvl])
        out[lvl] = {"top1": float(right.mean()), "ece": ece(np.concatenate(conf[lvl]), right)}
    return out


def answered(probs: np.ndarray, targets: np.ndarray, h: Hierarchy, threshold: float,
             refused: np.ndarray | None = None) -> dict[str, Any]:
    """What `decide` makes of held-out photos: the share answered at each level, and right at it (the true
    class among the classes it covers); `refused` marks photos another check (unknown model, OOD) refuses."""
    p = np.atleast_2d(np.asarray(probs, np.float64))
    t = np.asarray(targets, np.int64)
    counts = {lvl: 0 for lvl in LEVELS}
    right = {lvl: 0 for lvl in LEVELS}
    for i in range(len(t)):
        if refused is not None and refused[i]:
            continue
        d = decide(p[i], h, threshold)
        if d.level is None:
            continue
        counts[d.level] += 1
        right[d.level] += int(t[i] in d.classes)
    n = max(1, len(t))
    sure = sum(counts.values())
    return {"n": int(len(t)), "sure": sure / n, "sure_and_right": sum(right.values()) / n,
            "wrong_when_sure": (sure - sum(right.values())) / max(1, sure),
            "levels": {lvl: {"share": counts[lvl] / n, "right": right[lvl] / max(1, counts[lvl])} for lvl in LEVELS}}
