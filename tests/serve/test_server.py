"""waitress on loopback: the app under concurrent load, the CLI, start-up failures and clean shutdown."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

import pytest

from carscope.common.errors import CarscopeError
from carscope.serve.server import make_server, serve_in_thread
from tests.serve.http import Client
from tests.serve.tinybundle import EXPECTED, photo

COLOURS = sorted(EXPECTED)


@pytest.fixture(scope="module")
def server(bundle_dir):
    with serve_in_thread(bundle_dir, {"providers": "cpu", "max_upload_mb": 1}, threads=16) as handle:
        yield handle


def test_sixteen_threads_by_fifty_requests_all_correct(server):
    photos = {c: photo(c, (160, 120), seed=i) for i, c in enumerate(COLOURS)}
    failures, answers = [], []
    lock = threading.Lock()

    def worker(k: int):
        client = Client(server.url)
        try:
            for i in range(50):
                colour = COLOURS[(k + i) % len(COLOURS)]
                status, body = client.predict(photos[colour])
                ok = status == 200 and body["model"]["prediction"]["label"] == EXPECTED[colour]
                with lock:
                    answers.append(body.get("batch_size", 0) if status == 200 else 0)
                    if not ok:
                        failures.append((k, i, status, str(body)[:200]))
        finally:
            client.close()

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(16)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    elapsed = time.perf_counter() - t0
    assert not failures, failures[:3]
    assert len(answers) == 800
    assert max(answers) > 1, "16 concurrent clients never shared a batch"
    print(f"800 requests in {elapsed:.1f} s, largest batch {max(answers)}")


def test_error_answers_over_http(server):
    c = Client(server.url)
    try:
        status, body = c.predict(b"definitely not an image")
        assert status == 415 and body["error"]["code"] == "not_an_image"
        status, body = c.predict(photo("red") + b"\0" * (1024 * 1024 + 100_000))
        assert status == 413 and body["error"]["code"] == "too_large"
        # the connection is still usable after an error
        status, body = c.predict(photo("blue"))
        assert status == 200 and body["model"]["prediction"]["label"] == EXPECTED["blue"]
        status, headers, data = c.request("GET", "/metrics")
        assert status == 200 and b"carscope_http_requests_total" in data
    finally:
        c.close()


def test_serve_in_thread_always_stops(bundle_dir):
    with serve_in_thread(bundle_dir, {"providers": "cpu"}, threads=2) as handle:
        url, port = handle.url, handle.port
        assert urllib.request.urlopen(url + "/readyz", timeout=5).status == 200
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    assert not handle.predictor.batcher.running


def test_busy_port_is_a_one_line_error(app):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        with pytest.raises(CarscopeError, match="already in use"):
            make_server(app, port=port)
        proc = subprocess.run([sys.executable, "-m", "carscope", "serve", "--bundle", str(app.extensions["carscope"]
                               .bundle.root), "--port", str(port), "--providers", "cpu"],
                              capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "already in use" in lines[0]


def _wait_ready(url: str, timeout: float = 30.0) -> bytes:
    """/readyz is 503 while the sessions load in the background; poll it like a load balancer would."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return urllib.request.urlopen(url + "/readyz", timeout=5).read()
        except urllib.error.HTTPError as exc:
            assert exc.code == 503 and json.loads(exc.read())["error"]["code"] == "not_ready"
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def test_cli_serves_and_stops_on_sigterm(bundle_dir):
    proc = subprocess.Popen([sys.executable, "-m", "carscope", "serve", "--bundle", str(bundle_dir), "--port", "0",
                             "--providers", "cpu", "--threads", "4", "--max-batch", "4", "--log-level", "warning"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert line.startswith("listening on http://127.0.0.1:"), (line, proc.stderr.read() if proc.poll() else "")
        url = line.split()[-1]
        assert json.loads(_wait_ready(url))["max_batch"] == 4
        c = Client(url)
        status, body = c.predict(photo("green"))
        c.close()
        assert status == 200 and body["model"]["prediction"]["label"] == EXPECTED["green"]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        proc.stderr.close()


def test_cli_rejects_bad_options(bundle_dir, tmp_path):
    cases = [
        (["--bundle", str(tmp_path / "nope")], "not a carscope bundle"),
        (["--bundle", str(bundle_dir), "--max-batch", "0"], "--max-batch"),
        (["--bundle", str(bundle_dir), "--min-confidence", "1.5"], "--min-confidence"),
        (["--bundle", str(bundle_dir), "--providers", "cpu", "--variant", "fp16"], "fp16"),
        (["--bundle", str(bundle_dir), "--providers", "cpu", "--port", "70000"], "--port"),
    ]
    if not os.path.exists("/dev/nvidia0"):  # fails while the sessions load, after the port is bound
        cases.append((["--bundle", str(bundle_dir), "--providers", "cuda", "--port", "0"], "--providers cuda"))
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    for args, needle in cases:
        proc = subprocess.run([sys.executable, "-m", "carscope", "serve", *args], capture_output=True, text=True,
                              timeout=60, env=env)
        lines = proc.stderr.strip().splitlines()
        assert proc.returncode == 2 and len(lines) == 1 and needle in lines[0], (args, proc.stderr)


# -- stopping: the requests in flight are answered ---------------------------------------------------------------
def _start_cli(bundle_dir, *extra):
    proc = subprocess.Popen([sys.executable, "-m", "carscope", "serve", "--bundle", str(bundle_dir), "--port", "0",
                             "--providers", "cpu", "--threads", "4", *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    assert line.startswith("listening on http://127.0.0.1:"), (line, proc.stderr.read() if proc.poll() else "")
    url = line.split()[-1]
    _wait_ready(url)
    return proc, url


def _half_sent_upload(url: str, colour: str):
    """A keep-alive connection that has sent its headers and half of a photo: a request still arriving."""
    from tests.serve.http import multipart

    body, ctype = multipart("image", photo(colour))
    host, port = url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=20)
    head = (f"POST /api/v1/predict HTTP/1.1\r\nHost: {host}\r\nContent-Type: {ctype}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode()
    sock.sendall(head + body[: len(body) // 2])
    return sock, body[len(body) // 2:]


def _after_the_half_upload(url: str, processes: int = 1) -> None:
    """Wait until the server has read the half-sent upload, by an event rather than a guess: a request on a new
    connection, answered. The server accepts connections in order and reads a connection's bytes in the loop pass
    after its accept, so once the later request is answered the half upload has been read. With several processes
    the later connection may go to another process, so those also get a wait sized far past a loopback read."""
    # Read to the end of the connection, not just to the end of the answer: the answer reaches the client a moment
    # before the worker thread lets go of its request, and a stop in that moment would count this finished
    # request as one still in flight. Once the server has closed the connection, it is done with it.
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(f"GET /healthz HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
        status, _, _ = _answer(sock)
    assert status == 200
    if processes > 1:
        time.sleep(1.0)


def _answer(sock) -> tuple[int, dict, str]:
    """Read to the end of the connection: the server must close it after the answer. (status, JSON, head)"""
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body), head.decode()


def _refused(url: str) -> bool:
    host, port = url.removeprefix("http://").split(":")
    try:
        socket.create_connection((host, int(port)), timeout=5).close()
    except ConnectionRefusedError:
        return True
    return False


def _stop(proc) -> None:
    if proc.poll() is None:
        proc.kill()
        proc.wait()
    proc.stdout.close()
    proc.stderr.close()


@pytest.mark.parametrize("processes", [1, 2])
def test_sigterm_answers_the_requests_in_flight(bundle_dir, processes):
    proc, url = _start_cli(bundle_dir, "--processes", str(processes))
    try:
        uploading, rest = _half_sent_upload(url, "blue")
        keepalive = Client(url)  # answered, then idle on its kept-alive connection: it must not hold the stop up
        assert keepalive.predict(photo("green"))[0] == 200
        _after_the_half_upload(url, processes)
        proc.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        assert proc.poll() is None  # still draining: waiting for the rest of the upload...
        uploading.sendall(rest)
        status, body, head = _answer(uploading)  # ...which is read, and answered, and the connection closed
        assert status == 200 and body["model"]["prediction"]["label"] == EXPECTED["blue"]
        assert "Connection: close" in head  # so that the client does not send its next request on it
        assert proc.wait(10) == 0 and _refused(url)
        assert keepalive.conn.sock is None or keepalive.conn.sock.recv(1) == b""  # closed by the server
        if processes == 1:
            assert "answering 1 request(s) in flight first" in proc.stderr.read()
    finally:
        _stop(proc)


def test_a_stalled_upload_is_cut_at_the_grace_deadline(bundle_dir):
    proc, url = _start_cli(bundle_dir, "--grace", "1")
    try:
        stalled, _ = _half_sent_upload(url, "red")
        _after_the_half_upload(url)
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0 and time.monotonic() - t0 < 5
        assert stalled.recv(1) == b""
        assert "1 connection(s) still busy after 1 s were cut" in proc.stderr.read()
    finally:
        _stop(proc)


def test_a_second_signal_stops_at_once(bundle_dir):
    proc, url = _start_cli(bundle_dir, "--grace", "60")
    try:
        stalled, _ = _half_sent_upload(url, "red")  # kept open: the server waits for the rest of it
        _after_the_half_upload(url)
        proc.send_signal(signal.SIGINT)
        time.sleep(0.5)
        assert proc.poll() is None  # draining: the upload has a minute to finish
        t0 = time.monotonic()
        proc.send_signal(signal.SIGINT)
        assert proc.wait(10) == 130 and time.monotonic() - t0 < 5
        assert proc.stderr.read().strip().endswith("interrupted") and stalled.recv(1) == b""
    finally:
        _stop(proc)
