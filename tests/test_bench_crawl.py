"""`carscope bench crawl` at the smoke size: the CPU shares of each crawl, and --baseline-ref in one run."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from carscope.benchmarks.crawl import REPO
from carscope.commands.cli import main


def _worktrees() -> str:
    return subprocess.run(["git", "-C", str(REPO), "worktree", "list", "--porcelain"], capture_output=True,
                          text=True, check=True).stdout


needs_git = pytest.mark.skipif(
    shutil.which("git") is None
    or subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True).returncode != 0,
    reason="needs git and a git checkout")


@needs_git
def test_bench_crawl_baseline_ref_smoke(tmp_path, capsys):
    before = _worktrees()
    res = tmp_path / "res"
    code = main(["bench", "crawl", "--sizes", "50", "--baseline-ref", "HEAD", "--rounds", "1", "--skip-browser",
                 "--skip-baseline", "--concurrency", "8", "--cache-dir", str(tmp_path / "cache"), "--out", str(res)])
    assert code == 0
    assert _worktrees() == before  # the baseline's worktree is gone, and pruned
    r = json.loads((res / "crawl.json").read_text())

    cmp = r["comparison"]["50"]
    assert cmp["rounds"] == 1 and cmp["order"] == [["baseline", "current"]]
    for side in ("baseline", "current"):
        assert len(cmp[side]["images_per_s"]) == 1 and cmp[side]["median_images_per_s"] > 0
        assert cmp[side]["images_stored"][0] > 0
    assert cmp["ratio"] > 0
    # each side imported its own checkout's crawler, not the venv's editable install
    assert "baseline-src" in cmp["baseline"]["crawler_file"]
    assert cmp["current"]["crawler_file"].startswith(str(REPO))
    assert r["baseline_ref"]["commit"] == subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"],
                                                         capture_output=True, text=True).stdout.strip()

    c = r["crawls"]["50"]
    assert c["cpu_count"] >= 1 and c["wall_s"] > 0
    assert c["showroom_cpu_s"] >= 0 and c["crawler_cpu_s"] > 0
    for key in ("showroom_cpu_share", "crawler_cpu_share", "machine_cpu_share"):
        assert 0 <= c[key] <= 1, (key, c[key])
    assert c["machine_cpu_share"] == pytest.approx(c["showroom_cpu_share"] + c["crawler_cpu_share"])
    assert r["ceiling_fraction"] == pytest.approx(c["images_per_s"] / r["ceiling"]["images_per_s"])
    assert r["ceiling_fraction_cpu_adjusted"] == pytest.approx(
        r["ceiling_fraction"] / (1 - c["showroom_cpu_share"]))

    md = (res / "crawl.md").read_text()
    assert "showroom share" in md and "CPU-adjusted" in md
    assert f"current is {cmp['ratio']:.2f}× the baseline (median of 1 rounds, in one run)" in md.replace("**", "")


@needs_git
@pytest.mark.parametrize("argv, message", [
    (["--baseline-ref", "no-such-ref-for-carscope"], "is not a commit"),
    (["--baseline-ref", "HEAD", "--rounds", "0"], "--rounds"),
    (["--sizes", "50,123"], "--sizes"),
])
def test_bench_crawl_refuses_bad_options_in_one_line(tmp_path, capsys, argv, message):
    before = _worktrees()
    assert main(["bench", "crawl", *argv, "--out", str(tmp_path / "res")]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err
    assert _worktrees() == before
