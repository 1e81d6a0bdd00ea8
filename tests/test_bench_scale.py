"""`carscope bench scale`: the sizes it plans, the growth it reports, and a real run of its first stages that a
second run does not repeat."""

from __future__ import annotations

import json

import pytest

from carscope.benchmarks.scale import plan
from carscope.benchmarks.scale_report import growth, markdown, stage_growth
from carscope.commands.cli import main


def test_the_largest_default_size_is_the_seeds():
    """19,000 model-years plan a showroom of at least 19,000 model-years and 200,000 photos, within its limits."""
    p = plan(19000)
    assert p["model_years"] >= 19000 and p["photos_total"] >= 200_000
    assert p["makes"] <= 60 and p["models_per_make"] <= 40
    assert p["model_years"] == p["makes"] * p["models_per_make"] * 10
    small = plan(200)
    assert 200 <= small["model_years"] < 250 and small["photos_total"] == small["model_years"] * 11


def test_a_size_beyond_the_showroom_is_one_line(capsys, tmp_path):
    assert main(["bench", "scale", "--sizes", "30000", "--work", str(tmp_path), "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "more than the showroom holds" in err and len(err.strip().splitlines()) == 1
    assert main(["bench", "scale", "--sizes", "20", "--stages", "crawl,paint", "--out", str(tmp_path)]) == 2
    assert "(not paint)" in capsys.readouterr().err


def _result(times: dict[str, list[float]]) -> dict:
    sizes = [(20, 2_200), (200, 22_000), (2_000, 220_000)]
    return {"stages": list(times), "arch": "tinynet", "img_size": 32, "render_jobs": 2, "requests": 10,
            "sizes": [{"plan": {"model_years": my, "photos_total": n},
                       "stages": {s: {"seconds": t[i], "peak_rss_mib": 100.0 * (i + 1)} for s, t in times.items()}}
                      for i, (my, n) in enumerate(sizes)]}


def test_growth_flags_only_a_stage_that_grows_faster_than_linearly():
    assert growth(10.0, 100.0, 2_000, 20_000) == pytest.approx(1.0)
    assert growth(1.0, 100.0, 10, 100) == pytest.approx(2.0)
    r = _result({"linear": [1.0, 10.0, 100.0], "quadratic": [1.0, 100.0, 10_000.0],
                 "start-up": [0.2, 1.0, 3.0], "fixed": [4.0, 4.0, 4.1]})
    g = stage_growth(r)
    assert g["linear"]["time_exponents"] == [1.0, 1.0] and not g["linear"]["superlinear"]
    assert g["quadratic"]["superlinear"] and g["quadratic"]["time_exponents"] == [2.0, 2.0]
    assert not g["start-up"]["superlinear"]  # grows fast, but in seconds too short to tell from start-up costs
    assert not g["fixed"]["superlinear"]
    capped = _result({"predict": [1.0, 10.0, 10.0]})  # the same 20,000 photos at the two larger sizes
    for i, photos in enumerate((2_200, 20_000, 20_000)):
        capped["sizes"][i]["stages"]["predict"]["photos"] = photos
    assert not stage_growth(capped)["predict"]["superlinear"]
    assert stage_growth(capped)["predict"]["time_exponents"][0] == pytest.approx(1.04, abs=0.01)
    md = markdown(r)
    row = next(line for line in md.splitlines() if line.startswith("| quadratic"))
    assert "**superlinear**" in row and "10,000 s" in row
    assert "**superlinear**" not in next(line for line in md.splitlines() if line.startswith("| linear"))


@pytest.mark.slow
def test_a_small_run_measures_each_stage_and_a_second_run_keeps_them(tmp_path, capsys):
    work, out = tmp_path / "work", tmp_path / "out"
    argv = ["bench", "scale", "--sizes", "20", "--stages", "render,crawl,resume,merge", "--work", str(work),
            "--out", str(out)]
    assert main(argv) == 0
    r = json.loads((out / "scale.json").read_text())
    (size,) = r["sizes"]
    stages = size["stages"]
    assert list(stages) == ["render", "crawl", "resume", "merge"]
    assert all(s["seconds"] > 0 and s["peak_rss_mib"] > 20 for s in stages.values())
    assert stages["render"]["files"] == 2 * size["plan"]["photos_total"]
    assert stages["crawl"]["images"] == size["plan"]["photos_total"] and stages["crawl"]["failures"] == 0
    assert stages["resume"]["images_added"] == 0
    assert stages["merge"]["images"] == size["plan"]["photos_total"]
    assert not (work / "my-20" / "merged").exists()  # a copy, measured and removed
    log = work / "my-20" / "crawl.log"
    mtime = log.stat().st_mtime_ns
    capsys.readouterr()
    assert main(argv) == 0
    assert "crawl: done before" in capsys.readouterr().err and log.stat().st_mtime_ns == mtime
    assert json.loads((out / "scale.json").read_text())["sizes"][0]["stages"] == stages
