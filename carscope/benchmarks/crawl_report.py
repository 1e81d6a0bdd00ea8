"""`bench crawl`'s report: the Markdown table and notes, and the memory plot, from its JSON result.

    from carscope.benchmarks.crawl_report import markdown, plots
"""

from __future__ import annotations

from pathlib import Path


def plots(result: dict, out: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:  # pragma: no cover
        return
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for c in result["crawls"].values():
        xs = [t for t, _ in c["rss_samples_mib"]]
        ys = [r for _, r in c["rss_samples_mib"]]
        axes[0].plot(xs, ys, label=f"{c['images_stored']} images")
    axes[0].set_xlabel("seconds")
    axes[0].set_ylabel("crawler RSS (MiB)")
    axes[0].set_title("crawler memory during the crawl")
    axes[0].legend()
    b = result.get("browser") or {}
    if b.get("pss_mib_every_25_pages"):
        axes[1].plot([p for p, _ in b["pss_mib_every_25_pages"]], [m for _, m in b["pss_mib_every_25_pages"]],
                     marker="o")
        axes[1].set_xlabel("gallery pages rendered")
        axes[1].set_ylabel("browser + driver PSS (MiB)")
        axes[1].set_title(f"Chromium memory (contexts recycled every {b['recycle_after']} pages)")
    fig.tight_layout()
    fig.savefig(out / "crawl_memory.png", dpi=110)
    plt.close(fig)


def markdown(r: dict) -> str:
    load = r.get("loadavg_at_start", [0])[0], r.get("loadavg_at_end", [0])[0]
    lines = [f"## crawl ({r['scale']}, concurrency = per-host = {r['concurrency']}, {r['cpu_count']} cores, "
             f"1-min load average {load[0]:.1f} at the start, {load[1]:.1f} at the end)", "",
             "| crawl | pages | images stored | seconds | pages/s | images/s | MB/s | peak RSS MiB "
             "| showroom CPU s | crawler CPU s | showroom share | crawler share | both |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for size, c in r["crawls"].items():
        lines.append(f"| ~{size} images | {c['pages']} | {c['images_stored']} | {c['seconds']:.1f} | "
                     f"{c['pages_per_s']:.1f} | {c['images_per_s']:.1f} | {c['mb_per_s']:.1f} | {c['peak_rss_mib']:.0f} | "
                     f"{c['showroom_cpu_s']:.1f} | {c['crawler_cpu_s']:.1f} | {c['showroom_cpu_share']:.0%} | "
                     f"{c['crawler_cpu_share']:.0%} | {c['machine_cpu_share']:.0%} |")
    big = list(r["crawls"].values())[-1]
    lines += ["", "CPU columns: user + system seconds of the showroom process and of the crawler child over exactly "
                  "the crawl's interval; a share is CPU s / (wall s x the machine's cores), *both* is the two "
                  "together. When *both* is near 100%, the crawl rate is bounded by the machine (the test site "
                  "takes its share of the cores), not by the crawler, so the ceiling fraction below must be read "
                  f"with the showroom's share next to it ({big['showroom_cpu_share']:.0%} in the large crawl)."]
    if "comparison" in r:
        lines += _markdown_comparison(r)
    ce = r["ceiling"]
    frac = r["ceiling_fraction"]
    adj = r.get("ceiling_fraction_cpu_adjusted")
    lines += ["", f"- ceiling (decode + validate + hash + write, no network, {ce['workers']} threads): "
                  f"{ce['images_per_s']:.0f} images/s over {ce['images']} images; the large crawl of this run "
                  f"reaches **{frac:.0%}** of it (target >= {r['target_ceiling_fraction']:.0%}: "
                  f"{'met' if frac >= r['target_ceiling_fraction'] else 'NOT met'}) while the showroom used "
                  f"{big['showroom_cpu_share']:.0%} of the machine",
              "- ceiling fraction, CPU-adjusted: " + (f"**{adj:.0%}**" if adj is not None else "n/a") +
              " = crawl images/s / (ceiling images/s x (1 - the showroom's CPU share)): the ceiling had the whole "
              "machine, the crawler at most what the showroom left it",
              f"- peak RSS {r['rss_growth']['peak_rss_mib'][0]:.0f} MiB at {r['rss_growth']['images'][0]} images vs "
              f"{r['rss_growth']['peak_rss_mib'][1]:.0f} MiB at {r['rss_growth']['images'][1]} images "
              f"(x{r['rss_growth']['ratio']:.2f} for x{r['rss_growth']['images'][1] / max(1, r['rss_growth']['images'][0]):.0f} the images)"]
    b = r.get("browser")
    if b and "skipped" not in b:
        lines.append(f"- Playwright: {b['pages_per_s']:.1f} gallery pages/s over {b['pages']} pages "
                     f"({b['browser_pages']} pages at once, {b['errors']} errors); driver + browser memory (PSS) "
                     f"{b['pss_first_mib']:.0f} MiB after 25 pages, {b['pss_last_mib']:.0f} MiB at the end, "
                     f"max {b['pss_max_mib']:.0f} MiB ({b['contexts']} contexts, recycled every {b['recycle_after']} pages)")
    elif b:
        lines.append(f"- Playwright: skipped ({b['skipped']})")
    if "baseline" in r:
        bl = r["baseline"]
        lines.append(f"- seed's approach (sequential, 0.4-0.8 s sleep): {bl['images_per_s']:.2f} images/s "
                     f"({bl['note']}): {bl['extrapolated_s_for_large'] / 60:.0f} min for the large crawl's images; "
                     f"the crawler is **x{r['speedup_vs_seed']:.0f}** faster")
    return "\n".join(lines) + "\n"


def _markdown_comparison(r: dict) -> list[str]:
    ref = r["baseline_ref"]
    cur = ref["current"]
    current = f"HEAD {cur['head'][:12]}" + (" + uncommitted changes" if cur["uncommitted_changes"] else "")
    lines = ["", f"### current ({current}) vs baseline `{ref['ref']}` ({ref['commit'][:12]}), "
                 f"{ref['rounds']} rounds per size in one run, against the same showroom", "",
             "| crawl | baseline images/s (median) | current images/s (median) | current / baseline "
             "| per round: baseline | per round: current | order |",
             "|---|---|---|---|---|---|---|"]
    for size, cmp in r["comparison"].items():
        per = [" / ".join(f"{x:.1f}" for x in cmp[side]["images_per_s"]) for side in ("baseline", "current")]
        order = ", ".join("".join("B" if s == "baseline" else "C" for s in o) for o in cmp["order"])
        ratio = f"{cmp['ratio']:.2f}" if cmp["ratio"] is not None else "n/a"
        lines.append(f"| ~{size} images | {cmp['baseline']['median_images_per_s']:.1f} | "
                     f"{cmp['current']['median_images_per_s']:.1f} | {ratio} | {per[0]} | {per[1]} | {order} |")
    lines.append("")
    for size, cmp in r["comparison"].items():
        note = "" if cmp["same_images_stored"] else (" (the crawls did not all store the same number of images: "
                                                     f"{sorted(set(cmp['baseline']['images_stored'] + cmp['current']['images_stored']))})")
        if cmp["ratio"] is None:
            lines.append(f"- ~{size} images: the baseline stored no images, so there is no ratio{note}")
            continue
        lines.append(f"- ~{size} images: **current is {cmp['ratio']:.2f}× the baseline** (median of {cmp['rounds']} "
                     f"rounds, in one run){note}")
    lines.append("- the table above and the ceiling use the current code's crawl with the median images/s")
    return lines
