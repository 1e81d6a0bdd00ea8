"""`carscope predict --engine ray`: a local Ray (this machine's 2 CPUs) gives the same rows as `carscope predict`,
in the same order, the refused photos included; a bad bundle stops before Ray starts.

    .venv/bin/python -m pytest -q tests/serve/test_predict_ray.py
"""

from __future__ import annotations

import json

import pytest

from carscope.commands.cli import main
from tests.serve.tinybundle import make_tiny_bundle, photo


def _rows(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


@pytest.mark.slow
def test_ray_rows_equal_the_local_ones(tmp_path, capsys):
    bundle = make_tiny_bundle(tmp_path / "bundle")
    photos = tmp_path / "photos"
    photos.mkdir()
    for i, colour in enumerate(["red", "blue", "grey", "dark", "yellow", (140, 120, 100), "magenta"]):
        (photos / f"{i}.jpg").write_bytes(photo(colour))
    (photos / "7.jpg").write_bytes(b"not a photo")  # a refused photo is a row too
    local, ray = tmp_path / "local.jsonl", tmp_path / "ray.jsonl"
    assert main(["predict", "--bundle", str(bundle), str(photos), "--out", str(local), "--providers", "cpu"]) == 0
    assert main(["predict", "--bundle", str(bundle), str(photos), "--out", str(ray), "--providers", "cpu",
                 "--engine", "ray", "--actors", "2", "--actor-cpus", "0.5"]) == 0
    a, b = _rows(local.read_text()), _rows(ray.read_text())
    assert [r["path"] for r in a] == [r["path"] for r in b] and len(a) == 8
    for x, y in zip(a, b, strict=True):
        assert x.keys() == y.keys()
        for k in x:  # floats from other batch compositions agree to float rounding
            assert x[k] == (pytest.approx(y[k], rel=1e-5) if isinstance(x[k], float) else y[k]), (x["path"], k)
    assert b[-1]["ok"] is False and b[-1]["error_code"] == "not_an_image"
    assert "8 photos" in capsys.readouterr().err


def test_a_bad_bundle_stops_before_ray_starts(tmp_path, capsys):
    (tmp_path / "p.jpg").write_bytes(photo("red"))
    assert main(["predict", "--bundle", str(tmp_path / "nope"), str(tmp_path / "p.jpg"), "--engine", "ray"]) == 2
    assert "not a carscope bundle" in capsys.readouterr().err


@pytest.mark.slow
def test_bench_ray_reports_both_engines(tmp_path, capsys):
    bundle = make_tiny_bundle(tmp_path / "bundle")
    assert main(["bench", "ray", "--bundle", str(bundle), "--photos", "24", "--actors", "1", "--actor-cpus", "0.5",
                 "--out", str(tmp_path / "res")]) == 0
    r = json.loads((tmp_path / "res" / "ray.json").read_text())
    assert r["photos"] == 24 and r["rows_equal"] is True
    assert r["local"]["photos_per_s"] > 0 and r["ray_engine"]["photos_per_s"] > 0 and r["overhead_x"] > 0
    assert "| local (one process) |" in (tmp_path / "res" / "ray.md").read_text()
