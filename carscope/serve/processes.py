"""`carscope serve --processes N`: N serving processes on one listening socket, under a small supervisor.

    carscope serve --bundle demo-work/bundle --port 8080 --processes 2

One Python process answers at most what its GIL lets through: decoding, preprocessing, HTTP and JSON hold it
for a few milliseconds a request, so on a multi-core machine one process leaves cores idle while requests queue
(measured with `carscope bench serve`: about 1.4 of 2 cores busy). With --processes, this process binds the
port once and starts N children of `carscope serve` that inherit the socket (the kernel hands each new
connection to one of them). Each child loads and warms its own onnxruntime sessions before it accepts a
connection, so no request ever meets a child that is still loading; the onnxruntime threads are shared out
(cores / N each, unless --ort-threads says otherwise).

The supervisor prints "listening on URL" once, forwards SIGTERM and Ctrl-C to the children as one SIGTERM each
and waits while they answer their requests in flight (--grace, carscope/serve/server.py). It restarts a child that dies
(at most 5 times a minute, then it gives up and stops), and stops with the child's one-line error when a child
fails at start-up (a bad bundle, --providers cuda without a GPU). Children leave when the supervisor
disappears, even on SIGKILL. /metrics adds up all children (prometheus-client's
multiprocess mode, in a temporary directory removed at exit).

Stop the server through the supervisor. A child that drains sets the shared socket's listen backlog to zero, which
is what lets all of them finish together (without it, `carscope bench shutdown` lost 132 requests in 10 stops
with 2 processes, instead of none). A child stopped on its own therefore leaves its siblings a zero backlog until
its replacement starts listening, which restores it.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

from carscope.common.errors import CarscopeError
from carscope.serve.engine import PROCESSES_ENV, SLOT_ENV, cpu_count
from carscope.serve.server import listen_socket

log = logging.getLogger("carscope.serve")

MAX_RESTARTS = 5  # per RESTART_WINDOW_S; past that a child is crashing in a loop
RESTART_WINDOW_S = 60.0
STOP_GRACE_S = 5.0  # on top of --grace: a child drains its requests in flight first (carscope/serve/server.py)
METRICS_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"  # prometheus-client's multiprocess mode
STARTUP_ERROR = "startup-error: "  # a child's stdout line: why it could not start
SUPERVISOR_ENV = "CARSCOPE_SERVE_SUPERVISOR"  # the supervisor's pid, for its children


def child_argv(args, fd: int, ort_threads: int) -> list[str]:
    """The command line of one child: the same settings, the inherited socket instead of host and port."""
    return [sys.executable, "-m", "carscope", "serve", "--bundle", str(args.bundle), "--listen-fd", str(fd),
            "--threads", str(args.threads), "--providers", args.providers, "--variant", args.variant,
            "--max-batch", str(args.max_batch), "--max-wait-ms", str(args.max_wait_ms),
            "--min-confidence", str(args.min_confidence), "--max-upload-mb", str(args.max_upload_mb),
            "--workers", str(args.workers), "--alone", args.alone, "--ort-threads", str(ort_threads),
            "--log-level", args.log_level, "--grace", str(args.grace), "--max-queue-ms", str(args.max_queue_ms)] + (["--access-log"] if args.access_log else [])


def watch_parent() -> None:
    """In a child: exit (as on SIGTERM) once the supervisor that started us is gone, even if it was killed, even
    before this child got this far (the supervisor's pid comes in the environment, not from getppid())."""
    parent = int(os.environ.get(SUPERVISOR_ENV) or os.getppid())

    def loop():
        while os.getppid() == parent:
            time.sleep(0.5)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=loop, name="carscope-parent-watch", daemon=True).start()


class Supervisor:
    def __init__(self, args, processes: int):
        self.args = args
        self.n = processes
        self.children: dict[int, subprocess.Popen] = {}  # slot -> process
        self.restarts: list[float] = []
        self.stopping = False
        self.failure: str | None = None  # a child's start-up error
        self.readers: dict[int, threading.Thread] = {}  # pid -> the thread reading that child's stdout

    def run(self) -> int:
        from carscope.export.bundle import load as load_bundle

        load_bundle(self.args.bundle, verify=True)  # a bad bundle: one line and exit 2 before anything starts
        sock = listen_socket(self.args.host, self.args.port)
        ort_threads = self.args.ort_threads or max(1, cpu_count() // self.n)
        metrics_dir = tempfile.mkdtemp(prefix="carscope-metrics-")
        env = {**os.environ, METRICS_DIR_ENV: metrics_dir, SUPERVISOR_ENV: str(os.getpid())}
        argv = child_argv(self.args, sock.fileno(), ort_threads)
        host, port = sock.getsockname()[:2]
        previous = {s: signal.signal(s, self._on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
        try:
            for slot in range(self.n):
                self._start(slot, argv, env, sock)
            print(f"listening on http://{host}:{port}", flush=True)
            log.debug("%d serving processes (pids %s), %d onnxruntime thread(s) each", self.n,
                     " ".join(str(p.pid) for p in self.children.values()), ort_threads)
            return self._supervise(argv, env, sock, metrics_dir)
        finally:
            # Our copy of the listening socket first: once the draining children have closed theirs, a new
            # connection is refused (a balancer retries it elsewhere) instead of waiting in a backlog nobody reads.
            sock.close()
            self._stop_all()
            for s, handler in previous.items():
                signal.signal(s, handler)
            shutil.rmtree(metrics_dir, ignore_errors=True)

    def _start(self, slot: int, argv: list[str], env: dict, sock: socket.socket) -> None:
        proc = subprocess.Popen(argv, env={**env, SLOT_ENV: str(slot), PROCESSES_ENV: str(self.n)},
                                pass_fds=(sock.fileno(),),
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, text=True)
        self.children[slot] = proc
        reader = threading.Thread(target=self._read_child, args=(proc,), name=f"carscope-child-{proc.pid}", daemon=True)
        self.readers[proc.pid] = reader
        reader.start()

    def _read_child(self, proc: subprocess.Popen) -> None:
        """A child says on stdout why it could not start (STARTUP_ERROR); we report it once, as our own error,
        rather than N children printing the same line."""
        for line in proc.stdout:
            if line.startswith(STARTUP_ERROR) and self.failure is None:
                self.failure = line[len(STARTUP_ERROR):].strip()
                self.stopping = True
        proc.stdout.close()

    def _on_signal(self, signum, frame) -> None:
        self.stopping = True

    def _supervise(self, argv, env, sock, metrics_dir) -> int:
        while not self.stopping:
            time.sleep(0.2)
            for slot, proc in list(self.children.items()):
                code = proc.poll()
                if code is None or self.stopping:
                    continue
                _mark_dead(proc.pid, metrics_dir)
                if code == 2:  # a usage error at start-up (bad bundle, no GPU): the others fail alike
                    self.readers[proc.pid].join(5)  # it ends at the child's EOF, holding its message
                    raise CarscopeError(self.failure or f"a serving process failed to start (exit {code})")
                self.readers.pop(proc.pid, None)
                now = time.monotonic()
                self.restarts = [t for t in self.restarts if now - t < RESTART_WINDOW_S] + [now]
                if len(self.restarts) > MAX_RESTARTS:
                    log.error("serving processes keep dying (%d restarts in %.0f s); stopping", len(self.restarts),
                              RESTART_WINDOW_S)
                    return 1
                log.warning("serving process %d exited with status %d; starting another", proc.pid, code)
                self._start(slot, argv, env, sock)
        if self.failure:
            raise CarscopeError(self.failure)
        print("stopped", file=sys.stderr)
        return 0

    def _stop_all(self) -> None:
        procs = [p for p in self.children.values() if p.poll() is None]
        for p in procs:
            p.terminate()
        deadline = time.monotonic() + self.args.grace + STOP_GRACE_S
        for p in procs:
            try:
                p.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def _mark_dead(pid: int, metrics_dir: str) -> None:
    """Drop a dead child's live gauges from /metrics (its counters stay: they happened)."""
    try:
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid, metrics_dir)
    except Exception:  # metrics must never take the supervisor down
        log.debug("could not mark process %d dead in %s", pid, metrics_dir)
