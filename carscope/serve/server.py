"""Run the app under waitress: in the foreground (`carscope serve`) or in a thread for tests, the demo and benchmarks.

    python -c "from carscope.serve.server import serve_in_thread; import urllib.request as u; \\
               s = serve_in_thread('bundle'); print(u.urlopen(s.url + '/readyz').read()); s.stop()"

`serve_in_thread` binds 127.0.0.1 port 0 (the OS picks a free port), returns a handle with `.url`, and is a
context manager: the server is always stopped, its port closed and its batcher ended on exit.

`serve_until_stopped` is how `carscope serve` runs in the foreground. When asked to stop (SIGTERM, Ctrl-C) it
drains. It drops its listen backlog to zero at once, so the kernel drops new connection attempts (their clients
retry a second later and find the port closed). It still takes the connections the kernel had completed, gives
every request it has accepted its answer (one still uploading included), closes idle keep-alive connections, and
returns when none is left or after the grace period. waitress's own run() stops its loop on KeyboardInterrupt and
cancels the queued tasks, so every request in flight was lost: 165 requests in 10 stops under 16 clients
(`carscope bench shutdown`). Since then, 0 in 30 stops with --processes 2 and 6 in 30 in one process. What is
left is TCP's: a client whose handshake the kernel finished just before the listening socket closed believes it
is connected, and the close resets it.
"""

from __future__ import annotations

import errno
import logging
import socket
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from carscope.common.errors import CarscopeError

log = logging.getLogger("carscope.serve")

DRAIN_GRACE_S = 10.0  # after a stop request, requests in flight get this long to be answered
CONNECTION_LIMIT = 1000  # open connections; past it new clients wait in the listen backlog
FRESH_S = 1.0  # while draining, a connection accepted this recently and still silent is waited for


def listen_socket(host: str, port: int, backlog: int = 1024, inheritable: bool = True) -> socket.socket:
    """A bound, listening TCP socket on one address of `host`; CarscopeError (one line) when the port is taken.
    One socket, even for a name with several addresses, so a server never becomes waitress's multi-socket kind."""
    if not 0 <= int(port) <= 65535:
        raise CarscopeError(f"--port must be between 0 and 65535, not {port}")
    try:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.create_server((host, int(port)), family=family, backlog=backlog)
    except (socket.gaierror, UnicodeError) as exc:  # an unresolvable --host
        raise CarscopeError(f"cannot listen on {host}:{port} ({exc})") from None
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise CarscopeError(f"port {port} on {host} is already in use; pick another with --port") from None
        raise CarscopeError(f"cannot listen on {host}:{port} ({exc.strerror or exc})") from None
    sock.set_inheritable(inheritable)
    return sock


def loading_app(environ, start_response):
    """The WSGI app a server holds before the real one exists: 503 with the API's error shape."""
    body = b'{"error": {"code": "not_ready", "message": "the models are still loading"}}'
    start_response("503 Service Unavailable", [("Content-Type", "application/json"), ("Retry-After", "2"),
                                               ("Content-Length", str(len(body)))])
    return [body]


def make_server(app, *, host: str = "127.0.0.1", port: int = 8080, threads: int = 16, max_request_body: int | None = None,
                sockets: list | None = None, max_queue_ms: float | None = None):
    """A waitress server bound to host:port, or on already listening `sockets` (not yet serving). A busy port ->
    CarscopeError (one line, exit 2). Its queue refuses POSTs predicted to wait past `max_queue_ms` (None: the
    default; 0: never), carscope/serve/admission.py."""
    from waitress import create_server

    from carscope.serve.admission import DEFAULT_MAX_QUEUE_MS, AdmissionDispatcher

    if not 1 <= int(threads) <= 1024:
        raise CarscopeError(f"--threads must be between 1 and 1024, not {threads}")
    body_cap = max_request_body or getattr(app, "config", {}).get("MAX_CONTENT_LENGTH") or 16 * 2**20
    sockets = sockets or [listen_socket(host, port, inheritable=False)]
    limit_s = (DEFAULT_MAX_QUEUE_MS if max_queue_ms is None else float(max_queue_ms)) / 1000.0
    try:
        return create_server(
            app, sockets=sockets, threads=int(threads), _dispatcher=AdmissionDispatcher(int(threads), limit_s),
            ident="carscope",  # the Server header; no version to advertise
            # Defence in depth: waitress buffers a body before Flask sees it, so cap it there too. Twice the app's
            # limit, so that bodies between the two get the app's JSON 413 rather than waitress's plain one.
            max_request_body_size=2 * int(body_cap),
            # Every client gets a connection and queues in arrival order: the wait is bounded by admission, not by
            # leaving clients unaccepted (128 connections left half of 256 clients waiting out the whole run).
            channel_timeout=60, connection_limit=max(CONNECTION_LIMIT, 8 * int(threads)),
            asyncore_use_poll=True,  # select() cannot watch a descriptor numbered past 1023
            clear_untrusted_proxy_headers=True,
        )
    except (OSError, ValueError) as exc:
        for sock in sockets:
            sock.close()
        raise CarscopeError(f"cannot serve on {host}:{port} ({exc})") from None


def serve_until_stopped(server, stopping: threading.Event, grace_s: float = DRAIN_GRACE_S) -> int:
    """Run a waitress server (one listening socket, from make_server) in this thread until `stopping` is set or
    its sockets are closed (stop_server), then drain it (module docstring). Returns the connections that were
    still busy at the deadline and were cut. Whoever sets `stopping` from another thread or a signal handler
    should then call server.pull_trigger(), so that the loop wakes at once."""
    from waitress import wasyncore

    adj, socket_map = server.adj, server._map

    def turn(timeout: float) -> None:
        wasyncore.loop(timeout=timeout, map=socket_map, use_poll=adj.asyncore_use_poll, count=1)

    while not stopping.is_set() and server.socket is not None:
        turn(adj.asyncore_loop_timeout)
    listening = server.socket is not None
    if listening:
        # The smallest backlog: from now on the kernel drops new connection attempts (their clients retry a second
        # later and find the port closed, so nothing they sent is lost), while the loop still accepts the
        # connections it had completed. Closing the socket now would reset those, requests and all.
        try:
            server.socket.listen(0)
        except OSError:
            pass
    deadline = time.monotonic() + grace_s
    said = False
    while time.monotonic() < deadline:
        if listening:
            _accept_backlog(server)
        if not server.active_channels:
            break
        busy = 0
        now = time.time()
        for channel in list(server.active_channels.values()):
            # Busy: a request received and not yet answered, one still arriving, an answer not yet sent, or a
            # connection just accepted whose request has not come in yet.
            fresh = channel.last_activity == channel.creation_time and now - channel.creation_time < FRESH_S
            if channel.requests or channel.request is not None or channel.total_outbufs_len or fresh:
                busy += 1
                # Its answers say "Connection: close" and the connection closes after them: a keep-alive client
                # that reused it for its next request would find it closed, with that request lost.
                for request in (*channel.requests, channel.request):
                    if request is not None and request.headers.get("CONNECTION") != "close":
                        request.headers["CONNECTION"] = "close"
            elif not (channel.will_close or channel.close_when_flushed):
                channel.close_when_flushed = True  # idle keep-alive: closed by the loop's next turn, unread
        if busy and not said:
            log.info("stopping: answering %d request(s) in flight first (at most %g s)", busy, grace_s)
            said = True
        turn(0.05)
    if listening and server.socket is not None:
        wasyncore.dispatcher.close(server)  # this process's listening socket (not the trigger)
    cut = len(server.active_channels)
    if cut:
        log.warning("stopping: %d connection(s) still busy after %g s were cut", cut, grace_s)
    wasyncore.close_all(socket_map)
    return cut


def _accept_backlog(server) -> None:
    """Take the connections the kernel has already completed (the listen backlog): closing the listening socket
    would reset them, and their clients may have sent a request already."""
    while True:
        try:
            accepted = server.accept()  # non-blocking: None when the backlog is empty
        except OSError:
            return
        if accepted is None:
            return
        conn, addr = accepted
        try:
            server.set_socket_options(conn)
        except OSError:  # the client is gone already
            conn.close()
            continue
        server.channel_class(server, conn, server.fix_addr(addr), server.adj, map=server._map)


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
        from carscope.serve.app import create_app

        app = create_app(bundle_or_app, config)
    else:
        app = bundle_or_app
    server = make_server(app, host=host, port=port, threads=threads,
                         max_queue_ms=app.extensions["carscope"].config.max_queue_ms)
    handle = ServerThread(app, server).start()
    if wait_ready is not None:
        try:
            if not app.extensions["carscope"].wait_ready(wait_ready):
                raise CarscopeError(f"the models were not ready after {wait_ready:g} s")
        except BaseException:
            handle.stop()
            raise
    return handle
