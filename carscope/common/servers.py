"""A server in a child process, started the one way: it announces its URL on stdout, then (optionally) an HTTP
path says it is ready, and it is always stopped (carscope/common/subprocs.py) when the `with` block ends.

    from carscope.common.servers import ServerProcess
    with ServerProcess([sys.executable, "-m", "carscope", "serve", "--bundle", "b", "--port", "0"],
                       "carscope serve", ready_path="/readyz") as server:
        urllib.request.urlopen(server.url + "/healthz")

Every carscope server prints one line that names its URL, so `--port 0` works: `carscope serve` prints
"listening on URL" once it is bound (its /readyz answers 200 once the models are loaded and warmed), and
`carscope showroom` prints "showroom: URL/  (truth: ...)" once it is bound and, with --prerender, has drawn
every photo. The benchmarks' own helper servers print "listening on URL" too. The demo, every benchmark and the
tests that need a real server process start theirs through `ServerProcess`.

The child's stdout is read to the end by a thread (and echoed with `echo=True`), and its stderr goes to a file
by default, never to an unread pipe: a server that logs every request would fill a pipe's 64 KiB and block
mid-request. The ground floor: this module imports no stage.
"""

from __future__ import annotations

import collections
import os
import re
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request

from carscope.common.errors import CarscopeError
from carscope.common.subprocs import stop_process

# "listening on URL" (carscope serve, the benchmarks' helper servers) or "showroom: URL/ ..." (carscope showroom)
READY_LINE = re.compile(r"^(?:listening on |showroom: )(https?://\S+?)/?(?:\s|$)")


class ServerProcess:
    """Start `argv`, wait for the line announcing its URL (`url`), then for `ready_path` to answer 200 when one is
    given. On any failure the process is stopped and a one-line CarscopeError names `what` and why.

    stderr: "file" (kept in a temporary file, its last line quoted in errors), "stdout" (merged into stdout) or
    "inherit" (this process's own stderr, e.g. for the demo, whose user sees the server's log)."""

    def __init__(self, argv: list[str], what: str = "the server", *, ready_path: str | None = None,
                 timeout: float = 300.0, ready_timeout: float | None = None, echo: bool = False,
                 stderr: str = "file", cwd=None, env: dict[str, str] | None = None, grace_s: float = 10.0,
                 poll_s: float = 0.2):
        self.what, self.grace_s, self.echo = what, grace_s, echo
        self.url: str | None = None
        self.head: list[str] = []  # stdout lines up to and including the one announcing the URL
        self.tail: collections.deque[str] = collections.deque(maxlen=50)  # the last lines of stdout
        self._announced = threading.Event()
        self._stderr = tempfile.TemporaryFile(mode="w+") if stderr == "file" else None
        err = {"file": self._stderr, "stdout": subprocess.STDOUT, "inherit": None}[stderr]
        env = {**(os.environ if env is None else env), "PYTHONUNBUFFERED": "1"}  # the URL line comes at once
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=err, text=True, bufsize=1, cwd=cwd,
                                     env=env)
        self._reader = threading.Thread(target=self._read, name="server-stdout", daemon=True)
        self._reader.start()
        try:
            self._wait_announced(timeout, poll_s)
            if ready_path is not None:
                self.wait_http(ready_path, timeout if ready_timeout is None else ready_timeout, poll_s=poll_s)
        except BaseException:
            self.stop()
            raise

    @property
    def pid(self) -> int:
        return self.proc.pid

    def _read(self) -> None:
        for line in self.proc.stdout:  # to the end, so the pipe never fills
            if self.echo:
                print(line, end="", flush=True)
            self.tail.append(line.rstrip("\n"))
            if not self._announced.is_set():
                self.head.append(line.rstrip("\n"))
                m = READY_LINE.match(line)
                if m:
                    self.url = m.group(1)
                    self._announced.set()

    def _last_words(self) -> str:
        """The last line the server wrote (stderr first), for an error message."""
        text = ""
        if self._stderr is not None:
            try:
                self._stderr.seek(0)
                text = self._stderr.read()
            except (OSError, ValueError):
                pass
        lines = text.strip().splitlines() or [ln for ln in self.tail if ln.strip()]
        return lines[-1].strip() if lines else "no output"

    def _wait_announced(self, timeout: float, poll_s: float) -> None:
        deadline = time.monotonic() + timeout
        while not self._announced.wait(poll_s):
            if self.proc.poll() is not None:
                self._reader.join(5)  # its last lines may still be in the pipe
                if self._announced.is_set():
                    return
                raise CarscopeError(f"{self.what} exited with status {self.proc.returncode} before it listened: "
                                    f"{self._last_words()}")
            if time.monotonic() > deadline:
                raise CarscopeError(f"{self.what} did not announce its URL within {timeout:.0f} s")

    def wait_http(self, path: str, timeout: float, *, poll_s: float = 0.2, request_timeout: float = 5.0) -> None:
        """Until GET url+path answers 200 (a 503 while loading, or a refused connection, means: not yet)."""
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise CarscopeError(f"{self.what} exited with status {self.proc.returncode} before it was ready: "
                                    f"{self._last_words()}")
            try:
                with urllib.request.urlopen(self.url + path, timeout=request_timeout) as resp:
                    if resp.status == 200:
                        return
            except (urllib.error.URLError, OSError):  # HTTPError (503) is both
                pass
            if time.monotonic() > deadline:
                raise CarscopeError(f"{self.what} was not ready within {timeout:.0f} s")
            time.sleep(poll_s)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after `grace_s`; always reaped. Safe to call twice."""
        stop_process(self.proc, grace_s=self.grace_s)
        self._reader.join(5)
        for stream in (self.proc.stdout, self._stderr):
            if stream is not None:
                try:
                    stream.close()
                except (OSError, ValueError):
                    pass

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
