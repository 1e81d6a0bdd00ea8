"""Run the app under waitress: in the foreground (`carscope serve`) or in a thread for tests, the demo and benchmarks.

    python -c "from serve.server import serve_in_thread; import urllib.request as u; \\
               s = serve_in_thread('bundle'); print(u.urlopen(s.url + '/readyz').read()); s.stop()"

`serve_in_thread` binds 127.0.0.1 port 0 (the OS picks a free port), returns a handle with `.url`, and is a
context manager: the server is always stopped, its port closed and its batcher ended on exit.
"""

from __future__ import annotations

import errno
import logging
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from carscope.errors import CarscopeError

log = logging.getLogger("carscope.serve")


def loading_app(environ, start_response):
    """The WSGI app a server holds before the real one exists: 503 with the API's error shape."""
    body = b'{"error": {"code": "not_ready", "message": "the models are still loading"}}'
    start_response("503 Service Unavailable", [("Content-Type", "application/json"), ("Retry-After", "2"),
                                               ("Content-Length", str(len(body)))])
    return [body]


def make_server(app, *, host: str = "127.0.0.1", port: int = 8080, threads: int = 16, max_request_body: int | None = None,
                sockets: list | None = None):
    """A waitress server bound to host:port, or on already listening `sockets` (not yet serving). A busy port ->
    CarscopeError (one line, exit 2)."""
    from waitress import create_server

    if not 1 <= int(threads) <= 1024:
        raise CarscopeError(f"--threads must be between 1 and 1024, not {threads}")
    if not 0 <= int(port) <= 65535:
        raise CarscopeError(f"--port must be between 0 and 65535, not {port}")
    body_cap = max_request_body or getattr(app, "config", {}).get("MAX_CONTENT_LENGTH") or 16 * 2**20
    try:
        where = {"sockets": sockets} if sockets else {"host": host, "port": int(port)}
        return create_server(
            app, **where, threads=int(threads),
            ident="carscope",  # the Server header; no version to advertise
            # Defence in depth: waitress buffers a body before Flask sees it, so cap it there too. Twice the app's
            # limit, so that bodies between the two get the app's JSON 413 rather than waitress's plain one.
            max_request_body_size=2 * int(body_cap),
            channel_timeout=60, connection_limit=max(100, 8 * int(threads)),
            clear_untrusted_proxy_headers=True,
        )
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise CarscopeError(f"port {port} on {host} is already in use; pick another with --port") from None
        if exc.errno in (errno.EADDRNOTAVAIL, errno.EACCES):
            raise CarscopeError(f"cannot listen on {host}:{port} ({exc.strerror})") from None
        raise CarscopeError(f"cannot listen on {host}:{port} ({exc})") from None
    except ValueError as exc:  # waitress raises ValueError for an unresolvable host
        raise CarscopeError(f"cannot listen on {host}:{port} ({exc})") from None


def stop_server(server) -> None:
    """Stop a waitress server that `run()`s in another thread: close every socket from inside its own loop
    (the trigger runs the thunk there), which ends the loop; then stop its worker threads."""
    from waitress import wasyncore

    try:
        server.trigger.pull_trigger(lambda: wasyncore.close_all(server._map))
    except (OSError, AttributeError, ValueError):  # already closed
        pass


class ServerThread:
    """A waitress server for one app, serving in a daemon thread. Use as a context manager or call stop()."""

    def __init__(self, app, server):
        self.app = app
        self.server = server
        self.host = server.effective_host
        self.port = int(server.effective_port)
        self.url = f"http://{self.host}:{self.port}"
        self._thread = threading.Thread(target=self._run, name=f"waitress-{self.port}", daemon=True)
        self._stopped = False

    def _run(self) -> None:
        try:
            self.server.run()
        finally:
            self.server.task_dispatcher.shutdown(timeout=5)

    def start(self) -> ServerThread:
        self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        if self._stopped:
            return
        self._stopped = True
        stop_server(self.server)
        self._thread.join(timeout)
        predictor = self.app.extensions.get("carscope")
        if predictor is not None:
            predictor.close()

    @property
    def predictor(self):
        return self.app.extensions["carscope"]

    def __enter__(self) -> ServerThread:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def serve_in_thread(bundle_or_app: str | Path | Any, config: Mapping[str, Any] | Any = None, *, threads: int = 16,
                    host: str = "127.0.0.1", port: int = 0, wait_ready: float | None = 120.0) -> ServerThread:
    """Serve a bundle directory (or an app from create_app) on host:port in a thread; returns once ready."""
    if isinstance(bundle_or_app, (str, Path)):
        from serve.app import create_app

        app = create_app(bundle_or_app, config)
    else:
        app = bundle_or_app
    server = make_server(app, host=host, port=port, threads=threads)
    handle = ServerThread(app, server).start()
    if wait_ready is not None:
        try:
            if not app.extensions["carscope"].wait_ready(wait_ready):
                raise CarscopeError(f"the models were not ready after {wait_ready:g} s")
        except BaseException:
            handle.stop()
            raise
    return handle
