"""`carscope bench import` at a smoke size: the URL list really downloaded, the ceiling measured in the same
run, img2dataset left out (and said so) where it is not installed, and bad settings refused in one line."""

from __future__ import annotations

import json

import pytest

from carscope.commands.cli import main


@pytest.mark.slow
def test_bench_import_smoke(tmp_path, capsys):
    res = tmp_path / "res"
    assert main(["bench", "import", "--sizes", "30,60", "--rounds", "1", "--concurrency", "8",
                 "--out", str(res)]) == 0
    r = json.loads((res / "import.json").read_text())
    for n in ("30", "60"):
        ours = r["runs"][n]["carscope"]
        assert ours["stored"] == [int(n)] and ours["images_per_s"] > 0 and ours["peak_rss_mib"] > 50
        assert 0 < ours["ceiling_fraction"]
    assert r["ceiling"]["images"] == 60 and r["rss_growth"]["sizes"] == [30, 60]
    md = (res / "import.md").read_text()
    if r["img2dataset"] is None:
        assert "img2dataset: not installed" in md
    assert (res / "import_throughput_rss.png").stat().st_size > 0


def test_bench_import_refuses_bad_settings(tmp_path, capsys):
    assert main(["bench", "import", "--sizes", "5", "--out", str(tmp_path)]) == 2
    assert "at least 10" in capsys.readouterr().err
    code = main(["bench", "import", "--img2dataset-python", "/nonexistent/python", "--out", str(tmp_path)])
    assert code == 2 and "cannot import img2dataset" in capsys.readouterr().err
