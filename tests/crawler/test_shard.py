"""`carscope crawl --shard K/N`: shards split a site by model-year, fetch nothing of each other's, and merge back
into the whole crawl (`carscope dataset merge`)."""

from __future__ import annotations

import json
import re
from collections import Counter

import pytest

from carscope.commands.cli import main
from carscope.common.errors import CarscopeError
from carscope.crawler import crawl
from carscope.crawler.dataset import load
from carscope.crawler.shard import parse_shard, shard_of
from tests.crawler.helpers import assert_files_intact, config, good_photos, specs_by_model, truth_specs

N = 3
MODEL_YEAR_PATH = re.compile(r"^/(?P<make>[^/]+)/(?P<model>[^/]+)/(?P<year>\d{4})/")


def test_parse_shard():
    assert parse_shard("1/3") == (1, 3)
    assert parse_shard(" 3/3 ") == (3, 3)
    for bad in ("0/3", "4/3", "1/0", "3", "a/b", "1/3/5", "", "-1/3"):
        with pytest.raises(CarscopeError):
            parse_shard(bad)


def test_shard_of_is_stable_and_even():
    # Pinned: a resumed shard, or one on another machine, must compute the same owner for ever.
    assert shard_of("2022_galind_motors_delta_sport", 3) == 1
    assert shard_of("2023_astux_auto_yukon", 3) == 1
    counts = Counter(shard_of(f"{2000 + i % 25}_make_{i % 97}_model_{i}", 4) for i in range(4000))
    assert set(counts) == {1, 2, 3, 4}
    assert all(900 <= c <= 1100 for c in counts.values()), counts


def _model_year_requests(by_path: dict) -> set[str]:
    out = set()
    for path in by_path:
        m = MODEL_YEAR_PATH.match(path)
        if m:
            out.add(f"{m['year']}_{m['make']}_{m['model']}".replace("-", "_"))
    return out


def test_shards_split_the_site_and_merge_back_to_the_whole(showroom_site, tmp_path, capsys):
    truth = showroom_site.truth
    everything = set(truth_specs(truth))
    roots = []
    for k in range(1, N + 1):
        root = tmp_path / f"shard-{k}"
        showroom_site.reset_stats()
        stats = crawl(config(showroom_site.base_url, root, shard=(k, N), per_host=3))
        assert stats["status"] == "complete" and stats["shard"] == f"{k}/{N}"
        mine = {m for m in everything if shard_of(m, N) == k}
        assert mine, "the tiny showroom gives every shard at least one model-year"
        ds = load(root)
        assert set(ds.specs["model_id"]) == mine
        assert set(ds.images["model_id"]) == mine
        # It never fetched another shard's model-year pages (or their photos: those are only linked from them).
        requested = _model_year_requests(showroom_site.stats()["by_path"])
        assert requested == mine
        roots.append(root)

    partial = tmp_path / "partial"
    assert main(["dataset", "merge", str(roots[0]), str(roots[2]), "--out", str(partial), "--quiet"]) == 0
    assert "warning: shard(s) 2/3 of this crawl are not in the merge" in capsys.readouterr().out
    assert json.loads((partial / "stats.json").read_text())["shards_missing"] == ["2/3"]

    out = tmp_path / "merged"
    assert main(["dataset", "merge", *map(str, roots), "--out", str(out), "--quiet"]) == 0
    said = capsys.readouterr().out
    assert "dataset merge: 3 datasets" in said and "warning" not in said
    assert json.loads((out / "stats.json").read_text())["shards_missing"] == []
    merged = load(out)
    assert specs_by_model(merged) == truth_specs(truth)  # every model-year, every raw row, exactly once
    good = good_photos(truth)
    assert sorted(merged.images["sha256"]) == sorted(good)  # every unique photo once, nothing else
    for row in merged.images.itertuples():
        assert row.model_id == good[row.sha256]["model_id"]
    assert_files_intact(out, merged.images)


def test_a_shard_resumes_only_as_itself(showroom_site, tmp_path, capsys):
    root = tmp_path / "ds"
    stats = crawl(config(showroom_site.base_url, root, shard=(1, 2), max_pages=3))
    assert stats["status"] == "limit_reached"
    for argv, said in ((["--shard", "2/2"], "as shard 1/2; resume it with --shard 1/2"),
                       ([], "as shard 1/2; resume it with --shard 1/2")):
        code = main(["crawl", "--start-url", showroom_site.base_url + "/", "--out", str(root), "--resume",
                     "--browser", "never", "--quiet", *argv])
        err = capsys.readouterr().err
        assert code == 2 and said in err and len(err.strip().splitlines()) == 1, err
    stats = crawl(config(showroom_site.base_url, root, shard=(1, 2), resume=True))
    assert stats["status"] == "complete"
    assert set(load(root).specs["model_id"]) == {m for m in truth_specs(showroom_site.truth) if shard_of(m, 2) == 1}

    whole = tmp_path / "whole"
    crawl(config(showroom_site.base_url, whole, max_pages=3))
    code = main(["crawl", "--start-url", showroom_site.base_url + "/", "--out", str(whole), "--resume",
                 "--browser", "never", "--quiet", "--shard", "1/2"])
    err = capsys.readouterr().err
    assert code == 2 and "without --shard; resume it with no --shard" in err


def test_shard_needs_an_adapter_that_names_model_years(showroom_site, tmp_path, capsys):
    site = tmp_path / "flat.toml"
    site.write_text("[site]\nname = 'flat'\n\n[pages.home]\nmatch = '^/$'\nlinks = ['a']\n")
    out = tmp_path / "ds"
    code = main(["crawl", "--start-url", showroom_site.base_url + "/", "--out", str(out), "--site", str(site),
                 "--shard", "1/2", "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and "--shard needs an adapter" in err and len(err.strip().splitlines()) == 1
    assert not out.exists()
