"""The whole pipeline at a tiny scale: showroom -> crawl -> train -> export -> serve -> one checked prediction."""

import json
import socket
import subprocess
import sys

import pytest


def _interrupt_during_the_crawl(cmd, work) -> tuple[int, str, str, int]:
    """Start the demo in its own process group and press Ctrl-C (SIGINT to the group, as a terminal does) once its
    crawl has stored a few photos. (exit status, stdout, stderr, photos stored at the interrupt)"""
    import os
    import signal
    import sqlite3
    import time

    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    db, stored, deadline = work / "dataset" / "crawl.sqlite", 0, time.monotonic() + 120
    try:
        while stored < 8 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
            try:
                with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1) as con:
                    stored = con.execute("SELECT COUNT(*) FROM images").fetchone()[0]
            except sqlite3.Error:  # not created yet
                continue
        os.killpg(proc.pid, signal.SIGINT)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
    return proc.returncode, out, err, stored


@pytest.mark.slow
def test_demo_tiny_end_to_end(tmp_path):
    """Ctrl-C during the crawl, then the same command again: the crawl resumes, the rest runs, the answer is right;
    a third run reuses every stage."""
    import re

    import pandas as pd

    work = tmp_path / "work"
    cmd = [sys.executable, "-m", "carscope", "demo", "--scale", "tiny", "--workdir", str(work), "--check",
           "--port", "0", "--browser", "never"]
    code, out, err, stored = _interrupt_during_the_crawl(cmd, work)
    assert code == 130 and stored >= 8, (code, stored, out[-2000:], err[-2000:])
    assert err.strip().splitlines()[-1] == "carscope demo: interrupted" and "Traceback" not in err
    showroom = re.search(r"showroom serving .* at (http://127\.0\.0\.1:\d+)", out).group(1)
    host, port = showroom.removeprefix("http://").split(":")
    with pytest.raises(ConnectionRefusedError):  # the demo stopped the showroom it started
        socket.create_connection((host, int(port)), timeout=5).close()

    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    resumed = re.search(r"crawl: resuming: \d+ pages and (\d+) images", proc.stderr)
    assert resumed and int(resumed.group(1)) >= stored, proc.stderr[-3000:]  # what was stored is kept, not redone
    images = pd.read_parquet(work / "dataset" / "images.parquet")
    assert images["sha256"].is_unique and images["source_url"].is_unique  # nothing stored twice...
    from carscope.showroom.config import ShowroomConfig
    from carscope.showroom.testing import fetch_truth, serve_in_thread
    from tests.crawler.helpers import good_photos

    tiny = ShowroomConfig(makes=2, models_per_make=2, years=(2023, 2023), photos=20, seed=0)  # the demo's tiny
    with serve_in_thread(tiny) as base:
        assert set(images["sha256"]) == set(good_photos(fetch_truth(base)))  # ...and every photo there, none lost
    assert "check:" in proc.stdout and ": right" in proc.stdout
    # the demo-sized pipeline refuses what is not a car photo: its view classifier's `other` class, or the OOD check
    # (the tiny scale's weak view classifier has left a blank frame to it, 1 run in several under load)
    refused = "(not_a_car|unfamiliar)"
    assert re.search(f"check: not car photos: blank {refused}, noise {refused}, drawn logo {refused}: right",
                     proc.stdout), proc.stdout[-2000:]
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
