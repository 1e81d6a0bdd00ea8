"""`carscope bench refresh` at a tiny size: JSON and Markdown written, a refresh of the unchanged showroom
downloads far less than the crawl and asks for no photo (plain) or gets a 304 for each (revalidate)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_bench_refresh_tiny(tmp_path):
    out = tmp_path / "results"
    proc = subprocess.run([sys.executable, "-m", "carscope", "bench", "refresh", "--makes", "1", "--models-per-make",
                           "1", "--years", "2023", "--photos", "3", "--rounds", "1", "--out", str(out)],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    [path] = list(out.rglob("*refresh*.json"))
    result = json.loads(path.read_text())
    plain, reval = result["modes"]["plain"], result["modes"]["revalidate"]
    assert plain["refresh"]["photo_requests"] == 0 and plain["crawl"]["photo_requests"] > 0
    assert reval["refresh"]["photo_requests"] == reval["rounds"][0]["refresh"]["refresh"]["photos"]["not_modified"]
    for r in (plain, reval):
        assert r["rounds"][0]["refresh"]["status"] == "complete"
        assert r["bytes_ratio"] < 0.2 and r["refresh"]["bytes_downloaded"] < r["crawl"]["bytes_downloaded"]
    assert "Refresh against a fresh crawl" in proc.stdout and list(out.rglob("*refresh*.md"))


def test_bench_refresh_bad_input_is_one_line(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "carscope", "bench", "refresh", "--modes", "nope", "--out",
                           str(tmp_path)], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and proc.stderr.strip().count("\n") == 0 and "--modes" in proc.stderr
