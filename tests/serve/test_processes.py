"""`carscope serve --processes N`: one port, N serving processes under a supervisor that restarts, stops and
reports them (carscope/serve/processes.py)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request

import psutil
import pytest

from tests.serve.http import Client
from tests.serve.tinybundle import EXPECTED, photo

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="the supervisor's tests use Linux process tools")


def _start(bundle_dir, *extra: str) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen([sys.executable, "-m", "carscope", "serve", "--bundle", str(bundle_dir), "--port", "0",
                             "--providers", "cpu", "--threads", "4", "--processes", "2", "--log-level", "warning",
                             *extra], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    assert line.startswith("listening on http://127.0.0.1:"), (line, proc.stderr.read() if proc.poll() else "")
    return proc, line.split()[-1]


def _children(proc: subprocess.Popen, n: int = 2, timeout: float = 30.0) -> list[int]:
    deadline = time.monotonic() + timeout
    while True:
        kids = [c.pid for c in psutil.Process(proc.pid).children() if c.is_running() and c.status() != "zombie"]
        if len(kids) == n or time.monotonic() > deadline:
            return kids
        time.sleep(0.1)


def _ready_count(url: str, want: int, timeout: float = 30.0) -> float:
    """carscope_ready summed over the processes, once it reaches `want` (or the timeout)."""
    deadline = time.monotonic() + timeout
    while True:
        text = urllib.request.urlopen(url + "/metrics", timeout=10).read().decode()
        value = float(next(line.split()[-1] for line in text.splitlines() if line.startswith("carscope_ready ")))
        if value >= want or time.monotonic() > deadline:
            return value
        time.sleep(0.1)


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.kill()
        proc.wait()
    proc.stdout.close()
    proc.stderr.close()


def test_two_processes_answer_restart_and_stop(bundle_dir):
    proc, url = _start(bundle_dir)
    try:
        kids = _children(proc)
        assert len(kids) == 2
        assert _ready_count(url, 2) == 2  # /metrics adds up both processes
        client = Client(url)
        for colour in EXPECTED:  # every answer right, whichever process took it
            status, body = client.predict(photo(colour))
            assert status == 200 and body["model"]["prediction"]["label"] == EXPECTED[colour]
        client.close()
        text = urllib.request.urlopen(url + "/metrics", timeout=10).read().decode()
        served = [line for line in text.splitlines() if line.startswith("carscope_http_requests_total{")
                  and 'route="/api/v1/predict"' in line and 'status="200"' in line]
        assert served and float(served[0].split()[-1]) == len(EXPECTED)
        readyz = json.loads(urllib.request.urlopen(url + "/readyz", timeout=10).read())
        assert readyz["intra_op_threads"] == max(1, len(os.sched_getaffinity(0)) // 2)

        os.kill(kids[0], signal.SIGKILL)  # a crash: the supervisor starts another
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            now = _children(proc, timeout=1)
            if len(now) == 2 and kids[0] not in now:
                break
        assert len(now) == 2 and kids[0] not in now and kids[1] in now
        status, _ = Client(url).predict(photo("red"))
        assert status == 200

        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
        assert "stopped" in proc.stderr.read()
        assert not any(psutil.pid_exists(p) and psutil.Process(p).status() != "zombie" for p in now)
    finally:
        _stop(proc)


def test_children_leave_when_the_supervisor_is_killed(bundle_dir):
    proc, url = _start(bundle_dir)
    try:
        kids = _children(proc)
        assert len(kids) == 2
        proc.kill()
        proc.wait()
        deadline = time.monotonic() + 20
        alive = kids
        while alive and time.monotonic() < deadline:
            alive = [p for p in kids if psutil.pid_exists(p) and psutil.Process(p).status() != "zombie"]
            time.sleep(0.1)
        assert not alive
    finally:
        _stop(proc)


def test_start_up_failures_are_one_line(bundle_dir, tmp_path):
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    cases = [(["--bundle", str(tmp_path / "nope")], "not a carscope bundle"),
             (["--bundle", str(bundle_dir), "--processes", "0"], "--processes")]
    if not os.path.exists("/dev/nvidia0"):  # fails in the children, while their sessions load
        cases.append((["--bundle", str(bundle_dir), "--providers", "cuda"], "--providers cuda"))
    for args, needle in cases:
        proc = subprocess.run([sys.executable, "-m", "carscope", "serve", "--port", "0", "--processes", "2", *args],
                              capture_output=True, text=True, timeout=60, env=env)
        lines = proc.stderr.strip().splitlines()
        assert proc.returncode == 2 and len(lines) == 1 and needle in lines[0], (args, proc.stderr)


def test_busy_port_and_bad_host_are_one_line(bundle_dir):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        for args, needle in ((["--port", port], "already in use"), (["--host", "no.such.host.invalid"], "cannot listen")):
            proc = subprocess.run([sys.executable, "-m", "carscope", "serve", "--bundle", str(bundle_dir),
                                   "--processes", "2", *args], capture_output=True, text=True, timeout=60)
            lines = proc.stderr.strip().splitlines()
            assert proc.returncode == 2 and len(lines) == 1 and needle in lines[0], (args, proc.stderr)
