"""The whole pipeline at a tiny scale: showroom -> crawl -> train -> export -> serve -> one checked prediction."""

import json
import socket
import subprocess
import sys

import pytest


@pytest.mark.slow
def test_demo_tiny_end_to_end(tmp_path):
    work = tmp_path / "work"
    cmd = [sys.executable, "-m", "carscope", "demo", "--scale", "tiny", "--workdir", str(work), "--check",
           "--port", "0", "--browser", "never"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "check:" in proc.stdout and ": right" in proc.stdout
    # the demo-sized pipeline refuses what is not a car photo, by its view classifier's `other` class
    assert "check: not car photos: blank not_a_car, noise not_a_car, drawn logo not_a_car: right" in proc.stdout
    for artifact in ("dataset/images.parquet", "runs/view/best.pt", "runs/model/best.pt", "bundle/bundle.json"):
        assert (work / artifact).exists(), artifact
    model = json.loads((work / "bundle" / "bundle.json").read_text())["models"]["model"]
    # the demo exports with --int8: the variant is either in the bundle or refused with its numbers
    assert "int8" in model.get("variants", {}) or "int8" in model.get("refused", {})
    # a second run reuses every finished stage
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr[-2000:]
    assert again.stdout.count("done before, reusing") == 4


def test_demo_busy_port_is_one_line_exit_2(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        proc = subprocess.run([sys.executable, "-m", "carscope", "demo", "--workdir", str(tmp_path / "w"),
                               "--port", str(port)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert len(proc.stderr.strip().splitlines()) == 1 and "busy" in proc.stderr
    assert not (tmp_path / "w").exists()  # refused before it touched anything
