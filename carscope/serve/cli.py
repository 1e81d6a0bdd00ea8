"""`carscope serve`: serve a bundle over HTTP (Flask app, onnxruntime, run by waitress).

    carscope serve --bundle demo-work/bundle --port 8080
    curl -F image=@car.jpg localhost:8080/api/v1/predict
    carscope serve --bundle demo-work/bundle --port 8080 --processes 2     # a CPU box: one process per core

--port 0 lets the OS pick a free port; the first line on stdout says which ("listening on http://...").
"""

from __future__ import annotations

import argparse


def add_parser(sub) -> None:
    p = sub.add_parser("serve", help="serve a bundle over HTTP", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bundle", required=True, help="bundle directory written by `carscope export`")
    p.add_argument("--host", default="127.0.0.1", help="interface to bind (default: %(default)s; 0.0.0.0 for all)")
    p.add_argument("--port", type=int, default=8080, help="port (default: %(default)s; 0 = any free port)")
    p.add_argument("--threads", type=int, default=16,
                   help="waitress worker threads, i.e. requests handled at once (default: %(default)s)")
    p.add_argument("--providers", choices=("auto", "cpu", "cuda"), default="auto",
                   help="onnxruntime providers; auto = CUDA when usable, else CPU (default: %(default)s)")
    p.add_argument("--max-batch", type=int, default=16, help="largest micro-batch (default: %(default)s)")
    p.add_argument("--max-wait-ms", type=float, default=2.0,
                   help="longest a batch is held open for requests known to be coming (default: %(default)s)")
    p.add_argument("--variant", choices=("auto", "fp32", "int8", "fp16"), default="auto",
                   help="which export of the models to run; auto = int8 on the CPU and fp16 on CUDA where export "
                        "validated them, else fp32 (default: %(default)s)")
    p.add_argument("--min-confidence", type=float, default=0.5,
                   help="calibrated top-1 confidence under which the answer is 'not sure' (default: %(default)s)")
    p.add_argument("--max-upload-mb", type=float, default=10.0, help="upload size cap (default: %(default)s)")
    p.add_argument("--workers", type=int, default=0,
                   help="batches run at once, each on its share of the onnxruntime threads; a batch that runs alone "
                        "uses them all; 0 = one per thread on the CPU, one on CUDA (default: %(default)s)")
    p.add_argument("--ort-threads", type=int, default=0,
                   help="onnxruntime intra-op threads of this process; 0 = its cores (under --processes, its share) "
                        "(default: %(default)s)")
    p.add_argument("--alone", choices=("auto", "sequential", "parallel", "off"), default="auto",
                   help="how a batch that runs alone (a quiet server) uses every thread: sequential = the two models "
                        "one after the other on all threads, parallel = both at once on half the threads each, auto = "
                        "the faster of the two, timed at warm-up, off = like any batch (default: %(default)s)")
    p.add_argument("--max-queue-ms", type=float, default=1000.0,
                   help="under overload, an upload predicted to wait longer than this for a worker thread is refused "
                        "at once with 503 and Retry-After (counted in carscope_shed_requests_total); 0 = never "
                        "refuse (default: %(default)s)")
    p.add_argument("--processes", type=int, default=1,
                   help="serving processes sharing the port, each with its own sessions: one Python process cannot "
                        "keep more than about 1.4 cores busy (carscope/serve/processes.py) (default: %(default)s)")
    p.add_argument("--listen-fd", type=int, default=None, help=argparse.SUPPRESS)  # a child of --processes
    p.add_argument("--log-level", default="info", choices=("debug", "info", "warning", "error"))
    from carscope.serve.server import DRAIN_GRACE_S  # light: the standard library and carscope.common.errors

    p.add_argument("--grace", type=float, default=DRAIN_GRACE_S,
                   help="on SIGTERM or Ctrl-C, stop accepting and give the requests in flight this many seconds to "
                        "be answered; a second signal stops at once (default: %(default)s)")
    p.add_argument("--access-log", action="store_true",
                   help="log one line per request to stderr: client, method, path, status, bytes, time and request "
                        "id (whatever --log-level says)")


def run(args) -> int:
    import logging
    import signal
    import sys
    import threading

    from carscope.common.errors import CarscopeError
    from carscope.serve.config import ServeConfig

    logging.basicConfig(level=getattr(logging, args.log_level.upper()), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("waitress.queue").setLevel(logging.ERROR)  # "task queue depth" is normal under load
    if args.access_log:
        logging.getLogger("carscope.access").setLevel(logging.INFO)
    config = ServeConfig.from_any({
        "providers": args.providers, "variant": args.variant, "max_batch": args.max_batch,
        "max_wait_ms": args.max_wait_ms, "min_confidence": args.min_confidence,
        "max_upload_mb": args.max_upload_mb, "intra_op_threads": args.ort_threads, "workers": args.workers,
        "alone": args.alone, "access_log": args.access_log, "max_queue_ms": args.max_queue_ms,
        # Alone: serve /healthz and a 503 /readyz while the sessions load and warm up. A child of --processes
        # loads first and only then accepts, so that its siblings answer meanwhile.
        "background_load": args.listen_fd is None,
    })
    if not 0 <= args.grace <= 3600:
        raise CarscopeError(f"--grace must be between 0 and 3600 seconds, not {args.grace:g}")
    if not 1 <= args.processes <= 64:
        raise CarscopeError(f"--processes must be between 1 and 64, not {args.processes}")
    if args.processes > 1 and args.listen_fd is None:
        from carscope.serve.processes import Supervisor

        return Supervisor(args, args.processes).run()
    if args.listen_fd is not None:
        return _serve_child(args, config)
    from carscope.serve.app import create_app
    from carscope.serve.server import loading_app, make_server, stop_server

    # Bind first: a busy port is reported at once, before anything is loaded.
    server = make_server(loading_app, host=args.host, port=args.port, threads=args.threads,
                         max_request_body=config.max_upload_bytes, max_queue_ms=config.max_queue_ms)
    try:
        app = create_app(args.bundle, config)  # the bundle and its sha256s are checked here: CarscopeError -> exit 2
    except BaseException:
        server.close()
        raise
    server.application = app
    predictor = app.extensions["carscope"]
    failure: list[CarscopeError] = []

    def watch_loading():  # a model that fails to load stops the server: exit 2 with its one-line reason
        try:
            predictor.wait_ready(None)
        except CarscopeError as exc:
            failure.append(exc)
            stop_server(server)

    threading.Thread(target=watch_loading, name="carscope-watch", daemon=True).start()
    print(f"listening on http://{server.effective_host}:{server.effective_port}", flush=True)

    _run_until_stopped(server, predictor, args.grace, (signal.SIGINT, signal.SIGTERM))
    if failure:
        raise failure[0]
    print("stopped", file=sys.stderr)
    return 0


def _serve_child(args, config) -> int:
    """One serving process of --processes: load and warm the models, then accept on the inherited socket."""
    import signal
    import socket

    from carscope.common.errors import CarscopeError
    from carscope.serve.app import create_app
    from carscope.serve.processes import STARTUP_ERROR, watch_parent
    from carscope.serve.server import make_server

    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # stopped while starting: nothing to clean up, just go
    watch_parent()
    try:
        app = create_app(args.bundle, config)
        server = make_server(app, sockets=[socket.socket(fileno=args.listen_fd)], threads=args.threads,
                             max_request_body=config.max_upload_bytes, max_queue_ms=config.max_queue_ms)
    except CarscopeError as exc:  # the supervisor reports it, once for all its children
        print(f"{STARTUP_ERROR}{exc}", flush=True)
        return exc.exit_code
    # Serving: the supervisor says stop with one SIGTERM. A Ctrl-C reaches the whole process group, supervisor
    # included, and the supervisor passes it on as that SIGTERM; taken here too, it would be a second signal.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _run_until_stopped(server, app.extensions["carscope"], args.grace, (signal.SIGTERM,))
    return 0


def _run_until_stopped(server, predictor, grace_s: float, signals: tuple) -> None:
    """Serve until one of `signals`, then drain (carscope/serve/server.py: the requests in flight are answered, for at most
    `grace_s` seconds), stop the worker threads and end the batcher. A second signal stops at once."""
    import signal
    import threading

    from waitress import wasyncore

    from carscope.serve.server import serve_until_stopped

    stopping = threading.Event()

    def on_signal(signum, frame):
        if stopping.is_set():
            raise KeyboardInterrupt  # asked twice: stop now
        stopping.set()
        try:
            server.pull_trigger()  # wake the loop now, not at its next timeout
        except (OSError, ValueError, AttributeError):  # already closed
            pass

    previous = {}
    if threading.current_thread() is threading.main_thread():
        previous = {s: signal.signal(s, on_signal) for s in signals}
    try:
        serve_until_stopped(server, stopping, grace_s)
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        wasyncore.close_all(server._map)  # what a second signal left open
        server.task_dispatcher.shutdown(timeout=5)
        predictor.close()
