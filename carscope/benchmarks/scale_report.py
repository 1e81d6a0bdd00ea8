"""The report of `carscope bench scale` (benchmarks/scale.py): a table of each stage's time and peak RSS at each size,
the growth exponents between sizes, and a log-log plot.

    from carscope.benchmarks.scale_report import growth
    growth(10.0, 100.0, 2_000, 20_000)   # 1.0: ten times the photos, ten times the seconds: linear

A growth exponent is log(cost ratio) / log(size ratio) between two sizes: 1 is linear, 2 quadratic, below 1 a
fixed cost still showing. A stage is flagged when its time grows with an exponent above SUPERLINEAR between two
sizes where it takes at least MIN_SECONDS (below that, start-up costs decide the ratio).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

SUPERLINEAR = 1.15
MIN_SECONDS = 5.0


def growth(a: float, b: float, n_a: float, n_b: float) -> float | None:
    if a <= 0 or b <= 0 or n_a <= 0 or n_b <= 0 or n_a == n_b:
        return None
    return math.log(b / a) / math.log(n_b / n_a)


def stage_growth(result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Per stage: time and RSS exponents between consecutive sizes, and whether time grew faster than linearly."""
    sizes = result["sizes"]
    out: dict[str, dict[str, Any]] = {}
    for stage in result["stages"]:
        # a stage that reads a capped number of photos (predict) grows against the photos it read
        rows = [(s["stages"][stage].get("photos", s["plan"]["photos_total"]), s["stages"][stage])
                for s in sizes if s["stages"].get(stage)]
        t_exp, m_exp, flagged = [], [], False
        for (n_a, a), (n_b, b) in zip(rows, rows[1:], strict=False):
            g = growth(a["seconds"], b["seconds"], n_a, n_b)
            t_exp.append(None if g is None else round(g, 2))
            m_exp.append(None if (g := growth(a["peak_rss_mib"], b["peak_rss_mib"], n_a, n_b)) is None
                         else round(g, 2))
            if t_exp[-1] is not None and t_exp[-1] > SUPERLINEAR and b["seconds"] >= MIN_SECONDS:
                flagged = True
        out[stage] = {"time_exponents": t_exp, "rss_exponents": m_exp, "superlinear": flagged}
    return out


def _fmt_s(x: float) -> str:
    return f"{x:,.0f}" if x >= 100 else f"{x:.1f}"


def markdown(result: dict[str, Any]) -> str:
    sizes = result["sizes"]
    g = stage_growth(result)
    result["growth"] = g
    heads = [f"{s['plan']['model_years']:,} model-years, {s['plan']['photos_total']:,} photos" for s in sizes]
    lines = [f"## scale ({result['arch']} at {result['img_size']} px, {result['render_jobs']} render processes)", "",
             "Seconds and peak RSS (MiB, the command's process tree) of each stage at each size; the growth exponent "
             "is log(time ratio) / log(photo ratio) between consecutive sizes (1: linear; predict's is against the "
             "photos it read, at most --predict-photos).", "",
             "| stage | " + " | ".join(heads) + " | time growth | RSS growth |",
             "|---|" + "---|" * (len(sizes) + 2)]
    for stage in result["stages"]:
        cells = []
        for s in sizes:
            r = s["stages"].get(stage)
            cells.append(f"{_fmt_s(r['seconds'])} s, {r['peak_rss_mib']:,.0f} MiB" if r else "—")
        te = ", ".join("—" if x is None else f"{x:.2f}" for x in g[stage]["time_exponents"]) or "—"
        me = ", ".join("—" if x is None else f"{x:.2f}" for x in g[stage]["rss_exponents"]) or "—"
        flag = " **superlinear**" if g[stage]["superlinear"] else ""
        lines.append(f"| {stage} | " + " | ".join(cells) + f" | {te}{flag} | {me} |")
    total = [sum(r["seconds"] for r in s["stages"].values()) for s in sizes]
    lines.append("| **all stages** | " + " | ".join(f"{_fmt_s(t)} s" for t in total) + " | | |")
    lines += ["", "What each stage made:", ""]
    for s in sizes:
        notes = [f"{k}: {r['note']}" for k, r in s["stages"].items() if r.get("note")]
        lines.append(f"- {s['plan']['model_years']:,} model-years: " + "; ".join(notes))
    top = sizes[-1]["stages"] if sizes else {}
    if "serve" in top:
        sv = top["serve"]
        lines += ["", f"Serve at the largest size: ready in {sv['ready_s']:.1f} s, RSS {sv['rss_ready_mib']:.0f} MiB "
                      f"ready and {sv['rss_after_mib']:.0f} MiB after {result['requests']} requests, "
                      f"{sv['rps']:.0f} req/s at 4 clients (p50 {sv['p50_ms']:.1f} ms); /api/v1/models "
                      f"{sv['models_bytes'] / 1e6:.2f} MB in {sv['models_ms']:.0f} ms, a page of 50 "
                      f"{sv['models_page_bytes'] / 1e3:.1f} kB in {sv['models_page_ms']:.1f} ms."]
    if "render" in top and total and total[-1]:
        share = top["render"]["seconds"] / total[-1]
        lines += ["", f"Drawing the showroom's photos takes {share:.0%} of the largest size's time "
                      f"({top['render']['ms_per_photo']:.1f} ms per photo over {result['render_jobs']} processes)."]
    return "\n".join(lines) + "\n"


def plot(result: dict[str, Any], out_dir: Path) -> Path | None:
    sizes = result["sizes"]
    if len(sizes) < 2:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_t, ax_m) = plt.subplots(1, 2, figsize=(12, 5))
    n = [s["plan"]["photos_total"] for s in sizes]
    for stage in result["stages"]:
        pts = [(x, s["stages"][stage]) for x, s in zip(n, sizes, strict=True) if stage in s["stages"]]
        if len(pts) < 2:
            continue
        ax_t.plot([x for x, _ in pts], [r["seconds"] for _, r in pts], marker="o", label=stage)
        ax_m.plot([x for x, _ in pts], [r["peak_rss_mib"] for _, r in pts], marker="o", label=stage)
    lo, hi = n[0], n[-1]
    for ax, what in ((ax_t, "seconds"), (ax_m, "peak RSS, MiB")):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("photos in the catalog")
        ax.set_ylabel(what)
        ax.grid(True, which="both", alpha=0.3)
    ymin = min(r["seconds"] for s in sizes for r in s["stages"].values() if r["seconds"] > 0)
    ax_t.plot([lo, hi], [ymin, ymin * hi / lo], "k--", lw=1, label="linear")
    ax_t.legend(fontsize=8)
    ax_t.set_title("time per stage")
    ax_m.set_title("peak RSS per stage")
    fig.tight_layout()
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "scale.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
