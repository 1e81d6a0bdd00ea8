"""`carscope showroom`: bad input is one line and exit 2; a real start prints the URL and stops on Ctrl-C."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from carscope.commands.cli import main


@pytest.mark.parametrize("argv, message", [
    (["--faults", "5xx=0.5,boom=1"], "unknown fault 'boom'"),
    (["--faults", "5xx=2"], "outside [0, 1]"),
    (["--years", "2024-2020"], "runs backwards"),
    (["--years", "soon"], "bad --years"),
    (["--makes", "0"], "--makes"),
    (["--others", "21"], "--others must be in 0..20"),
    (["--others", "-1"], "--others must be in 0..20"),
    (["--port", "70000"], "--port"),
    (["--layout", "grid"], "--layout must be one of classic, dl, jsonld, spa"),
    (["--render-only"], "--render-only needs --cache-dir"),
    (["--render-jobs", "0"], "--render-jobs must be at least 1"),
])
def test_bad_input_is_one_line_exit_2(argv, message, capsys):
    assert main(["showroom", *argv]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and message in err and "Traceback" not in err


def test_busy_port_is_one_line_exit_2(capsys):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        assert main(["showroom", "--makes", "1", "--port", str(port)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and f"cannot listen on 127.0.0.1:{port}" in err


def test_dump_truth_writes_the_ground_truth(tmp_path, capsys):
    out = tmp_path / "truth.json"
    assert main(["showroom", "--makes", "1", "--models-per-make", "1", "--years", "2023", "--photos", "2",
                 "--dump-truth", str(out)]) == 0
    truth = json.loads(out.read_text())
    # 2 exterior + 1 interior car photos, and the default 2 non-car images (--others)
    assert len(truth["model_years"]) == 1 and len(truth["photos"]) == 3 + 2
    assert sum(p["car"] for p in truth["photos"]) == 3
    assert all(len(p["sha256"]) == 64 for p in truth["photos"])
    assert main(["showroom", "--dump-truth", str(tmp_path / "no" / "such" / "dir.json")]) == 2
    assert truth["site_layout"] == "classic"
    assert main(["showroom", "--makes", "1", "--models-per-make", "1", "--years", "2023", "--photos", "2",
                 "--layout", "dl", "--dump-truth", str(out)]) == 0
    dl = json.loads(out.read_text())
    assert dl["site_layout"] == "dl" and dl["model_years"][0]["pages"]["specs"].startswith("/vehicle/")
    assert [p["sha256"] for p in dl["photos"]] == [p["sha256"] for p in truth["photos"]]
    assert dl["photos"][0]["url"] == f"/media/{dl['photos'][0]['id']}/full.jpg"


def test_serves_prints_its_url_and_stops_cleanly_on_ctrl_c():
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen([sys.executable, "-m", "carscope", "showroom", "--port", "0", "--makes", "1",
                             "--models-per-make", "1", "--photos", "2", "--faults", "5xx=0.1", "--prerender"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        url, lines = None, []
        deadline = time.time() + 30
        while url is None and time.time() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            if "http://" in line:
                url = line.split()[1].rstrip("/")
        assert url, lines
        assert any("1 makes" in ln for ln in lines) and any("5xx=0.1" in ln for ln in lines)
        assert any("prerendered 10 photos" in ln for ln in lines)  # 2 years x (2 + 1 car photos + 2 others)
        assert b"make-link" in urllib.request.urlopen(url + "/", timeout=10).read()
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=15)
        assert proc.returncode == 0, err
        assert "stopped" in out and "Traceback" not in err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_prerender_without_a_disk_cache_refuses_a_catalog_the_memory_cache_cannot_hold(capsys):
    from carscope.showroom.cli import prerender_bytes
    from carscope.showroom.config import ShowroomConfig

    small, big = ShowroomConfig(makes=1, models_per_make=1, photos=3), ShowroomConfig(makes=2, models_per_make=2,
                                                                                      photos=6)
    need_small, need_big = prerender_bytes(small), prerender_bytes(big)
    assert 0 < need_small < need_big
    code = main(["showroom", "--makes", "2", "--models-per-make", "2", "--photos", "6", "--prerender",
                 "--cache-mb", str(max(1, need_big // (1 << 20) // 2)), "--port", "0"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1, err
    assert "--cache-dir DIR" in err and "--cache-mb" in err


def test_render_only_draws_every_photo_into_the_cache_with_processes(tmp_path, capsys, monkeypatch):
    """--render-only --render-jobs 2: every photo of the catalog in the disk cache, byte for byte what the server
    would draw, in spawned processes (this one cannot draw: its renderer is broken here); a second run draws only
    what the cache lacks."""
    import carscope.showroom.photo_store as photo_store
    from carscope.showroom.catalog import build_catalog
    from carscope.showroom.config import ShowroomConfig
    from carscope.showroom.render import render_photo_bytes

    def no_drawing_here(*a, **kw):
        raise AssertionError("drawn in the parent process, not in the --render-jobs processes")

    monkeypatch.setattr(photo_store, "render_photo_bytes", no_drawing_here)

    argv = ["showroom", "--makes", "1", "--models-per-make", "2", "--years", "2023-2023", "--photos", "3",
            "--others", "1", "--cache-dir", str(tmp_path), "--render-only", "--render-jobs", "2"]
    assert main(argv) == 0
    config = ShowroomConfig(makes=1, models_per_make=2, years=(2023, 2023), photos=3, others=1)
    catalog = build_catalog(config)
    folder = tmp_path / config.catalog_key()
    assert len(list(folder.glob("*.jpg"))) == 2 * len(catalog.photos)
    pid, photo = next(iter(catalog.photos.items()))
    assert (folder / f"{pid}-640.jpg").read_bytes() == render_photo_bytes(catalog, photo)[640]
    (folder / f"{pid}-320.jpg").unlink()  # half a photo: drawn again, the rest kept
    stamp = {f.name: f.stat().st_mtime_ns for f in folder.glob("*.jpg")}
    assert main(argv) == 0
    assert (folder / f"{pid}-320.jpg").is_file()
    assert all(f.stat().st_mtime_ns == stamp[f.name] for f in folder.glob("*.jpg") if f.name in stamp
               and not f.name.startswith(pid))
