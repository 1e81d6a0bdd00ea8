"""`carscope bench levels`' report: the Markdown tables and the figure (levels.md, levels_figures.png).

    python -c "import json; from carscope.benchmarks.levels_report import markdown; \
print(markdown(json.load(open('benchmarks/results/x/levels.json'))))"
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

NAMES = {"carscope": "carscope: Lite0 from ImageNet, carscope's recipe, calibrated",
         "seed": "seed: Lite0 from ImageNet, frozen backbone + linear head (centre crop, uncalibrated)",
         "scratch": "scratch: cpunet, carscope's recipe, no weights, calibrated",
         "colour": "colour histograms + logistic regression (the floor)"}
LEVEL_NAMES = (("model_year", "model-year"), ("model", "model"), ("make", "make"))
UNKNOWN_SETS = (("unknown_realistic", "realistic, other makes"), ("unknown_classic", "classic renderer, other makes"))
SLICE_ORDER = ("pose", "framing", "part", "condition")


def markdown(r: dict[str, Any]) -> str:
    rs = r["recipes"]
    known = r["showrooms"]["known"]
    cfg = known["config"]
    lines = ["# Recipes on a realistic showroom, at three levels, and on cars the catalog does not hold", "",
             f"Code at {(r['code'].get('head') or 'unknown')[:12]}"
             f"{' (with uncommitted changes)' if r['code'].get('uncommitted_changes') else ''}. Known catalog: "
             f"{cfg['makes']} makes x {cfg['models_per_make']} models x {cfg['years']} = {known['model_years']} "
             f"model-years ({known['looks']} distinct looks: generations of {cfg.get('generations')} years with a "
             f"facelift; {known['twins']} model-years of badge-engineered twins), {cfg['photos']} exterior photos "
             f"each (views {cfg.get('views')}, close-ups {cfg.get('closeups')}, conditions {cfg.get('conditions')}), "
             f"320 px. Every model-year is a class: {r['classes']} classes; train / val / test "
             f"{r['split'].get('train')} / {r['split'].get('val')} / {r['split'].get('test')} photos, the same split "
             f"for every recipe. {r['epochs']} epochs at {r['img_size']} px; {r['torch_threads']} torch threads.",
             "Unknown cars: " + "; ".join(f"{label}: {r['unknown_photos'][k]} exterior photos"
                                          for k, label in UNKNOWN_SETS) +
             f" (makes and models that took no part in training, groups or thresholds"
             f"{'; make names shared with the known catalog: ' + ', '.join(r['make_names_shared']) if r['make_names_shared'] else ''}).",
             "", "## Top-1 and ECE at each level (test split)", "",
             "| recipe | model-year | model | make | ECE model-year | ECE model | ECE make | wall s |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for key, rec in rs.items():
        t = rec["test"]
        lines.append(f"| {NAMES.get(key, key)} | " + " | ".join(f"{t[lv]['top1']:.1%}" for lv, _ in LEVEL_NAMES) +
                     " | " + " | ".join(f"{t[lv]['ece']:.3f}" for lv, _ in LEVEL_NAMES) + f" | {rec['wall_s']:.0f} |")
    lines += ["", "Model: any of the model's years; ECE: 15 bins of each level's calibrated mass (the seed and the "
              "floor uncalibrated, as they would serve).", "",
              f"## What serve's rule answers (test split, confidence {r['threshold']:.0%})", "",
              "Groups: model-years of one model whose val photos trade at least `join` probability "
              "(carscope/common/levels.py); checked against the truth's looks (model-years drawn identically).", "",
              "| recipe | groups (classes) | grouped pairs of one look | answered | right at its level | wrong when "
              "answered | without groups: answered / wrong when answered | model-year / model / make answers |",
              "|---|---:|---:|---:|---:|---:|---:|---|"]
    for key, rec in rs.items():
        g, a, u = rec["groups_found"], rec["answered_test"], rec["answered_test_without_groups"]
        shares = " / ".join(f"{a['levels'][lv]['share']:.0%}" for lv, _ in LEVEL_NAMES)
        lines.append(f"| {key} | {g['groups']} ({g['classes_grouped']}) | {g['grouped_pairs_same_look']} of "
                     f"{g['grouped_pairs']} (truth: {g['truth_same_look_pairs']} same-look pairs) | {a['sure']:.1%} | "
                     f"{a['sure_and_right']:.1%} | {a['wrong_when_sure']:.1%} | {u['sure']:.1%} / "
                     f"{u['wrong_when_sure']:.1%} | {shares} |")
    lines += ["", "## Cars the catalog does not hold", "",
              f"Each score's threshold keeps {r['unknown_tpr']:.0%} of the known val photos; a photo over it is "
              "`unknown_model`, the rest are answered by the level rule. Goal: at most 10% of unknown cars answered, "
              "at least 90% of known test photos answered and right at some level.", "",
              "| recipe | score | AUROC realistic | AUROC classic | unknown answered: realistic | classic | known "
              "answered and right |", "|---|---|---:|---:|---:|---:|---:|"]
    for key, rec in rs.items():
        base = rec["unknown_without_check"]
        lines.append(f"| {key} | (no check) | | | {base['unknown_realistic']:.1%} | {base['unknown_classic']:.1%} | "
                     f"{rec['answered_test']['sure_and_right']:.1%} |")
        for method, row in rec["unknown"].items():
            ur, uc = row["unknown_realistic"], row["unknown_classic"]
            lines.append(f"| {key} | {method} | {ur['auroc']:.3f} | {uc['auroc']:.3f} | {ur['sure']:.1%} | "
                         f"{uc['sure']:.1%} | {row['known_sure_and_right']:.1%} |")
    lines += ["", "Unknown cars still answered, by how many of a make's 7 signature elements (grille, lamps, badge, badge "
              "colour, stripe, arches, window trim) the most alike known make shares (both unknown sets; the "
              "showroom's vocabularies are small):", "",
              "| recipe | score | " + " | ".join(f"{k} shared" for k in next(iter(rs.values()))
                                                 ["unknown_by_shared_design"]["buckets"]) + " |",
              "|---|---|" + "---:|" * len(next(iter(rs.values()))["unknown_by_shared_design"]["buckets"])]
    for key, rec in rs.items():
        b = rec["unknown_by_shared_design"]
        lines.append(f"| {key} | {b['score']} | " + " | ".join(f"{v['sure']:.0%} of {v['photos']}"
                                                              for v in b["buckets"].values()) + " |")
    lines += ["", "## Top-1 per slice (test split): model-year / model / make", "",
              "| slice | n | " + " | ".join(rs) + " |", "|---|---:|" + "---|" * len(rs)]
    first = next(iter(rs.values()))["slices_test"]
    for name in sorted(first, key=lambda n: (SLICE_ORDER.index(n.split(":")[0]) if n.split(":")[0] in SLICE_ORDER
                                             else 9, n)):
        cells = []
        for rec in rs.values():
            s = rec["slices_test"].get(name)
            cells.append(f"{s['model_year']:.0%} / {s['model']:.0%} / {s['make']:.0%}" if s else "")
        lines.append(f"| {name} | {first[name]['n']} | " + " | ".join(cells) + " |")
    lines += ["", "![levels, answers and unknown cars per recipe](levels_figures.png)"]
    return "\n".join(lines) + "\n"


def plot(r: dict[str, Any], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rs = r["recipes"]
    keys = list(rs)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(13, 4.4))
    width = 0.8 / 3
    for j, (lv, label) in enumerate(LEVEL_NAMES):
        bars = ax1.bar([i + (j - 1) * width for i in range(len(keys))], [rs[k]["test"][lv]["top1"] for k in keys],
                       width, label=f"top-1 {label}")
        ax1.bar_label(bars, fmt="%.2f", fontsize=7)
    ax1.set_xticks(range(len(keys)), keys)
    ax1.set_ylim(0, 1.15)
    ax1.legend(fontsize=8, ncol=3, loc="upper center")
    ax1.set_title(f"{r['classes']} model-years: top-1 at each level (test)")
    for k in keys:
        pts = [(row["unknown_realistic"]["sure"], row["known_sure_and_right"], m) for m, row in rs[k]["unknown"].items()]
        ax2.scatter([p[0] for p in pts], [p[1] for p in pts], label=k)
        for x, y, m in pts:
            ax2.annotate(m, (x, y), fontsize=6)
    ax2.axvline(0.10, color="grey", lw=0.8, ls="--")
    ax2.axhline(0.90, color="grey", lw=0.8, ls="--")
    ax2.set_xlabel("unknown cars (realistic) answered")
    ax2.set_ylabel("known test photos answered and right")
    ax2.set_xlim(0, 1)
    ax2.set_ylim(0, 1)
    ax2.legend(fontsize=8)
    ax2.set_title(f"unknown-model scores at {r['unknown_tpr']:.0%} of val kept (goal: top left of the dashes)")
    fig.tight_layout()
    fig.savefig(Path(out) / "levels_figures.png", dpi=110)
    plt.close(fig)
