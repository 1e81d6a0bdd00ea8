"""`carscope bench serve` end to end at a tiny scale: every part runs and the report holds its figures."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import pytest


@pytest.mark.slow
def test_bench_serve_small(bundle_dir, tmp_path):
    from carscope.benchmarks import serve as bench

    parser = argparse.ArgumentParser()
    bench.add_arguments(parser)
    args = parser.parse_args(["--bundle", str(bundle_dir), "--requests", "40", "--concurrency", "1,4",
                              "--photos", "5", "--threads", "4", "--max-batch", "4", "--bare-seconds", "0.1",
                              "--overload", "8", "--overload-requests", "24"])
    result, md = bench.run(args, tmp_path)
    json.dumps(result)  # JSON-serialisable, as carscope/benchmarks/cli.py writes it
    for c in ("1", "4"):
        level = result["serve"][c]
        assert level["ok"] == 40 and level["rps"] > 0 and level["p99_ms"] >= level["p50_ms"] > 0
        assert level["same_answer_as_alone"] == 1.0  # batching never changes an answer
        assert level["server_cpu_ms_per_request"] > 0
    assert result["serve_unbatched"]["1"]["ok"] == 40 and result["serve_unbatched"]["4"]["batch_size_max"] == 1
    assert result["bare"]["best_img_per_s"] > 0 and result["bare"]["batch1"]["p50_ms"] > 0
    assert result["rss"]["requests"] == 40 and result["rss"]["before_mb"] > 0
    assert "skipped" in result["seed"]  # the tiny bundle's arch is not a torch model train can build
    assert set(result["targets"]) >= {"vs_bare", "p99_c1", "rss", "batching_gain", "batching_cost_c1"}
    rounds = len(result["serve"]["4"]["rps_by_round"])
    won = sum(a > b for a, b in zip(result["serve"]["4"]["rps_by_round"],
                                    result["serve_unbatched"]["4"]["rps_by_round"], strict=True))
    assert rounds == 3 and result["targets"]["batching_gain"]["rounds_won"] == won  # counted from the rounds
    p99 = result["targets"]["p99_c1"]
    assert p99["bare_p99_ms"] == result["bare"]["interleaved_batch1"]["p99_ms"] and "own p99" in p99["text"]
    gain = result["targets"]["batching_gain"]
    assert gain["bare_batching_gain"] == pytest.approx(
        result["bare"]["best_img_per_s"] / result["bare"]["batches"]["1"]["img_per_s"])
    assert "what batching buys the models themselves" in gain["text"]
    configs = result["bare"]["configs"]
    if (os.cpu_count() or 1) > 1:  # serve's parallel lone-batch plan is a batch-1 candidate of the reference
        assert configs["models_in_parallel"]["best_img_per_s"] is None
    fastest = min(configs, key=lambda k: configs[k]["batch1_p50_ms"])
    assert result["bare"]["batch1_config"] == fastest and f"fastest batch 1 ({fastest})" in md
    resolved = result["server"]["resolved"]
    if resolved.get("alone_threads"):  # a lone batch has a plan, chosen at warm-up from the two candidates
        assert resolved["alone_plan"] in ("sequential", "parallel")
    else:
        assert resolved["alone_plan"] is None
    assert "| serve | 4 |" in md and "Targets:" in md
    # the FastAPI peer, the same levels in the same rounds, and the RSS of both after the load
    for c in ("1", "4"):
        assert result["peer"][c]["ok"] == 40 and result["peer"][c]["accuracy"] == 1.0
        assert result["serve"][c]["rss_mb"] > 0 and result["peer"][c]["rss_mb"] > 0
    assert result["rss_after_load"]["serve"] > 0 and result["rss_after_load"]["peer"] > 0
    over = result["overload"]["8"]
    for name in ("serve", "peer"):
        row = over[name]
        assert row["requests"] == 24 and row["answered"] + row["shed_503"] == 24 and row["goodput_rps"] > 0
        assert row["answered_p99_ms"] >= row["answered_p50_ms"] > 0
        assert row["fairness"]["clients"] == 8 * 3 and row["fairness"]["max_over_median"] >= 1.0
    assert set(result["targets"]) >= {"rss_vs_peer", "rps_vs_peer_c1", "overload_goodput", "overload_p99_vs_peer"}
    assert "| 8 | peer |" in md and "FastAPI + uvicorn + onnxruntime peer" in md
    assert (tmp_path / "serve_throughput.png").stat().st_size > 1000


def test_load_photos_reads_a_dataset_with_its_own_split_column(bundle_dir, tmp_path):
    """images.parquet has a `split` column (a published split, from `dataset import`; empty in a crawl): the test
    split of the bundle's run still comes first (the merge once failed with KeyError 'split')."""
    import pandas as pd

    from carscope.benchmarks.serve import load_photos
    from carscope.crawler import dataset as dsmod
    from carscope.export.bundle import load
    from tests.serve.tinybundle import LABELS, photo

    data = tmp_path / "data"
    rows = []
    for i, label in enumerate(LABELS):
        blob = photo(["red", "green", "blue", "yellow", "magenta"][i])
        sha = f"{i:064x}"
        (data / dsmod.image_relpath(sha)).parent.mkdir(parents=True, exist_ok=True)
        (data / dsmod.image_relpath(sha)).write_bytes(blob)
        rows.append({"sha256": sha, "path": dsmod.image_relpath(sha), "model_id": label, "view_hint": "exterior",
                     "split": "train" if i else None})
    dsmod.write_table(pd.DataFrame(rows), data / "images.parquet", dsmod.IMAGES_COLUMNS)
    dsmod.write_table(pd.DataFrame({"model_id": LABELS}), data / "specs.parquet", dsmod.SPECS_COLUMNS)
    splits = tmp_path / "splits.parquet"
    pd.DataFrame({"sha256": [r["sha256"] for r in rows], "label": LABELS,
                  "split": ["train"] * (len(rows) - 1) + ["test"]}).to_parquet(splits)
    bundle = load(bundle_dir)
    bundle.models["model"].meta.setdefault("source", {})["splits"] = str(splits)
    photos, source = load_photos(bundle, str(data), 3)
    assert len(photos) == 3 and str(data) in source
    assert photos[0][1] == LABELS[-1]  # the run's one test photo first


@pytest.mark.slow
def test_bench_serve_baseline_ref_serves_the_same_bundle_with_other_code(bundle_dir, tmp_path):
    """--baseline-ref: a second `carscope serve`, run from a worktree of the ref, measured at every level in rounds
    interleaved with the current code's; the worktree is gone afterwards."""
    import subprocess

    from carscope.benchmarks import serve as bench
    from carscope.benchmarks.common import REPO

    def worktrees() -> str:
        return subprocess.run(["git", "-C", str(REPO), "worktree", "list", "--porcelain"], capture_output=True,
                              text=True, check=True).stdout

    before = worktrees()
    parser = argparse.ArgumentParser()
    bench.add_arguments(parser)
    args = parser.parse_args(["--bundle", str(bundle_dir), "--requests", "12", "--concurrency", "1,2", "--rounds", "2",
                              "--photos", "3", "--threads", "4", "--max-batch", "4", "--bare-seconds", "0.1",
                              "--no-seed", "--no-unbatched", "--baseline-ref", "HEAD", "--no-peer",
                              "--overload", ""])
    result, md = bench.run(args, tmp_path)
    json.dumps(result)
    ref = result["baseline_ref"]
    head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True).stdout
    assert ref["commit"] == head.strip() and worktrees() == before
    # the baseline server ran in the worktree (so imported its code), not in this checkout
    assert ref["served_from"].endswith("/src") and not Path(ref["served_from"]).is_relative_to(REPO)
    for c in ("1", "2"):
        assert ref["serve"][c]["ok"] == 12 and len(ref["serve"][c]["rps_by_round"]) == 2
        assert ref["rps_ratio"][c] == pytest.approx(result["serve"][c]["rps"] / ref["serve"][c]["rps"])
    assert ref["rss_mb"]["baseline"] > 0 and "current / baseline" in md
    with pytest.raises(Exception, match="not a commit"):
        bench.run(parser.parse_args(["--bundle", str(bundle_dir), "--baseline-ref", "no-such-ref-anywhere"]), tmp_path)
