"""`carscope bench shutdown`: stop `carscope serve` (SIGTERM) under load, again and again, and count lost requests.

    carscope bench shutdown --bundle demo-work/bundle --stops 10 --processes 1,2

Each stop starts a server, lets --concurrency clients send photos to it as fast as it answers (a new connection
per request, as a load balancer's health-checked pool would), sends SIGTERM after --load-seconds, and keeps the
clients going for a moment after the server has gone. Every request ends in one of three ways:
- answered: a complete 200;
- refused: the connection was refused, so nothing was sent; a client or balancer retries it elsewhere;
- lost: the connection was accepted and the request sent, but no complete answer came back.
Lost requests are what a deploy costs its users; the target is none. Also reported: how long the server took from
the signal to its exit (it answers what it has accepted first, carscope/serve/server.py).
"""

from __future__ import annotations

import http.client
import signal
import threading
import time
from typing import Any

TARGET_LOST = 0


def add_arguments(p) -> None:
    p.add_argument("--bundle", required=True, help="bundle directory (carscope export)")
    p.add_argument("--data", default=None, help="dataset to take photos from (default: recorded; else thumbnails)")
    p.add_argument("--stops", type=int, default=10, help="stops per --processes value (default: %(default)s)")
    p.add_argument("--processes", default="1,2", help="serve --processes values to stop (default: %(default)s)")
    p.add_argument("--concurrency", type=int, default=16, help="clients sending at once (default: %(default)s)")
    p.add_argument("--load-seconds", type=float, default=2.0,
                   help="load before each SIGTERM (default: %(default)s)")
    p.add_argument("--providers", choices=("auto", "cpu", "cuda"), default="cpu",
                   help="onnxruntime providers for serve (default: %(default)s)")


def one_stop(argv: list[str], photos: list[tuple[bytes, str]], concurrency: int, load_s: float) -> dict[str, Any]:
    """Start a server, load it, SIGTERM it, and count how each request ended."""
    from carscope.benchmarks.load import multipart
    from carscope.common.servers import ServerProcess

    bodies = [multipart(data) for data, _ in photos]
    counts = {"answered": 0, "refused": 0, "lost": 0, "errors": 0}
    lock = threading.Lock()
    stop = threading.Event()
    with ServerProcess(argv, "carscope serve", ready_path="/readyz", grace_s=15.0) as server:
        host, port = server.url.removeprefix("http://").split(":")

        def client(k: int) -> None:
            i = k
            while not stop.is_set():
                body, ctype = bodies[i % len(bodies)]
                i += concurrency
                conn = http.client.HTTPConnection(host, int(port), timeout=30)
                try:
                    conn.connect()
                except OSError:
                    outcome = "refused"
                    time.sleep(0.005)
                else:
                    try:
                        conn.request("POST", "/api/v1/predict", body, {"Content-Type": ctype})
                        resp = conn.getresponse()
                        resp.read()
                        outcome = "answered" if resp.status == 200 else "errors"
                    except (OSError, http.client.HTTPException):
                        outcome = "lost"
                finally:
                    conn.close()
                with lock:
                    counts[outcome] += 1

        threads = [threading.Thread(target=client, args=(k,), daemon=True) for k in range(concurrency)]
        for t in threads:
            t.start()
        time.sleep(load_s)
        t0 = time.perf_counter()
        server.proc.send_signal(signal.SIGTERM)
        code = server.proc.wait(120)
        drain_s = time.perf_counter() - t0
        time.sleep(0.3)  # clients meet the closed port for a moment
        stop.set()
        for t in threads:
            t.join(60)
    return {**counts, "exit_code": code, "signal_to_exit_s": drain_s}


def run(args, out_dir) -> tuple[dict[str, Any], str]:
    import statistics
    import sys

    from carscope.benchmarks.load import load_photos
    from carscope.common.errors import CarscopeError
    from carscope.export.bundle import load as load_bundle

    if args.stops < 1 or args.concurrency < 1:
        raise CarscopeError("--stops and --concurrency must be at least 1")
    try:
        process_counts = [int(x) for x in str(args.processes).split(",") if x.strip()]
    except ValueError:
        raise CarscopeError(f"--processes must be a comma-separated list of integers, not '{args.processes}'") from None
    bundle = load_bundle(args.bundle, verify=True)
    photos, source = load_photos(bundle, args.data, 16)
    result: dict[str, Any] = {"bundle": str(args.bundle), "photos": source, "concurrency": args.concurrency,
                              "load_seconds": args.load_seconds, "stops": {}}
    for n in process_counts:
        argv = [sys.executable, "-m", "carscope", "serve", "--bundle", str(args.bundle), "--port", "0",
                "--providers", args.providers, "--processes", str(n), "--log-level", "warning"]
        runs = []
        for i in range(args.stops):
            print(f"bench shutdown: --processes {n}, stop {i + 1}/{args.stops} ...", file=sys.stderr, flush=True)
            runs.append(one_stop(argv, photos, args.concurrency, args.load_seconds))
        result["stops"][str(n)] = {
            "runs": runs,
            "answered": sum(r["answered"] for r in runs), "refused": sum(r["refused"] for r in runs),
            "lost": sum(r["lost"] for r in runs), "errors": sum(r["errors"] for r in runs),
            "stops_with_loss": sum(r["lost"] > 0 for r in runs),
            "clean_exits": sum(r["exit_code"] == 0 for r in runs),
            "signal_to_exit_s_p50": statistics.median(r["signal_to_exit_s"] for r in runs),
        }
    lost = sum(s["lost"] for s in result["stops"].values())
    result["targets"] = {"lost": {"value": lost, "target": TARGET_LOST, "met": lost <= TARGET_LOST}}
    return result, _markdown(result)


def _markdown(r: dict[str, Any]) -> str:
    lines = [f"## shutdown: {r['bundle']} ({r['concurrency']} clients, a new connection per request, SIGTERM after "
             f"{r['load_seconds']:g} s of load)", "",
             "| --processes | stops | answered | refused (never sent) | lost (sent, no answer) | stops with a loss | "
             "clean exits | signal to exit, p50 |", "|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for n, s in r["stops"].items():
        lines.append(f"| {n} | {len(s['runs'])} | {s['answered']} | {s['refused']} | {s['lost']} | "
                     f"{s['stops_with_loss']} | {s['clean_exits']} | {s['signal_to_exit_s_p50']:.2f} s |")
    t = r["targets"]["lost"]
    lines += ["", f"- requests lost over all stops: {t['value']} (target {t['target']}): "
                  + ("**met**" if t["met"] else "**NOT met**")]
    return "\n".join(lines) + "\n"
