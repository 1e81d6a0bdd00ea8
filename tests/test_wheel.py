"""The wheel is the product: built from the checkout, installed into a fresh virtual environment outside it, it
serves the upload page with its templates and static files, importing nothing from the checkout."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import urllib.request
import zipfile
from pathlib import Path

import pytest

from tests.serve.tinybundle import make_tiny_bundle

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def test_wheel_installs_and_serves_outside_the_checkout(tmp_path):
    from carscope.common.servers import ServerProcess

    wheels = tmp_path / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(REPO), "--no-deps", "-q", "-w", str(wheels)],
                   check=True, capture_output=True, timeout=300)
    wheel = next(wheels.glob("carscope-*.whl"))
    with zipfile.ZipFile(wheel) as zf:  # one top-level name: no `train`, `serve`, ... to shadow a user's own
        top = {name.split("/")[0] for name in zf.namelist() if not name.split("/")[0].endswith(".dist-info")}
        top_level = next(n for n in zf.namelist() if n.endswith(".dist-info/top_level.txt"))
        assert top == {"carscope"} and zf.read(top_level).decode().split() == ["carscope"], top
        assert "carscope/crawler/sites/showroom.toml" in zf.namelist()
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    py = venv / "bin" / "python"
    subprocess.run([str(py), "-m", "pip", "install", "--no-deps", "-q", str(wheel)], check=True, capture_output=True,
                   timeout=300)
    # the dependencies (torch, onnxruntime, flask...) from this test's environment, by path: a plain path line in
    # a .pth adds the folder alone, without running the .pth files in it (so not our editable install's)
    site = Path(subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    (site / "zz-deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    work = tmp_path / "elsewhere"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    where = subprocess.run([str(py), "-c", "import carscope.serve, carscope.crawler.extract; print(carscope.serve.__file__)"],
                           cwd=work, env=env, capture_output=True, text=True, check=True).stdout.strip()
    assert Path(where).is_relative_to(venv) and not Path(where).is_relative_to(REPO)

    bundle = make_tiny_bundle(tmp_path / "bundle")
    # the installed `carscope serve` says "listening on URL" and its /readyz answers once its models are loaded
    with ServerProcess([str(venv / "bin" / "carscope"), "serve", "--bundle", str(bundle), "--port", "0",
                        "--providers", "cpu"], "serve from the wheel", ready_path="/readyz", timeout=60,
                       cwd=work, env=env) as server:
        base = server.url
        page = urllib.request.urlopen(base + "/", timeout=10).read().decode()
        assert "<form" in page and 'type="file"' in page  # the template, from the wheel
        css = urllib.request.urlopen(base + "/static/style.css", timeout=10)
        assert css.status == 200 and len(css.read()) > 1000
        assert urllib.request.urlopen(base + "/static/app.js", timeout=10).status == 200
