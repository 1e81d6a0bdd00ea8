"""`carscope bench serve`'s peer and overload parts: `carscope serve` against a FastAPI + uvicorn + onnxruntime
server (carscope/benchmarks/peer_server.py) in the same run, and both past their capacity.

    carscope bench serve --bundle demo-work/bundle --overload 64,256      # the defaults
    carscope bench serve --bundle demo-work/bundle --no-peer --overload ""  # neither

The peer serves the same bundle (the same variant) and gets the same photos in chunks interleaved with serve's at
every concurrency level. After the load, each server's resident memory (RSS, its whole process tree) is read.
Overload levels: closed-loop clients well past what the models answer at once, each level's requests split into
rounds that alternate between the two servers. A client answered 503 waits its Retry-After before it sends again.
Per level and server: goodput (answered requests per second), p50 and p99 of the answered, the 503s, and fairness:
the slowest client's mean latency over the median client's.
Targets: serve's RSS <= 1.5x the peer's; serve's throughput >= 1.5x the peer's at 16 clients and >= 1.3x at 1; at
the top overload level serve's goodput >= 90% of its best level and its p99 <= 2x the peer's there.
"""

from __future__ import annotations

import statistics
from typing import Any

TARGET_RSS_VS_PEER = 1.5
TARGET_RPS_VS_PEER = {"16": 1.5, "1": 1.3}
TARGET_OVERLOAD_GOODPUT = 0.9
TARGET_OVERLOAD_P99_VS_PEER = 2.0


def add_arguments(p) -> None:
    p.add_argument("--no-peer", action="store_true", help="skip the FastAPI + uvicorn + onnxruntime peer")
    p.add_argument("--overload", default="64,256",
                   help="closed-loop client counts past capacity, for serve and the peer; '' for none "
                        "(default: %(default)s)")
    p.add_argument("--overload-requests", type=int, default=None,
                   help="requests per overload level and server (default: --requests)")
    p.add_argument("--max-queue-ms", type=float, default=None,
                   help="serve --max-queue-ms (default: serve's own default)")


def overload_levels(args) -> list[int]:
    from carscope.common.errors import CarscopeError

    try:
        levels = [int(c) for c in str(args.overload or "").split(",") if c.strip()]
    except ValueError:
        raise CarscopeError(f"--overload wants comma-separated integers, got {args.overload!r}") from None
    if levels and min(levels) < 1:
        raise CarscopeError("--overload levels must be positive")
    return levels


def start_peer(args):
    from carscope.benchmarks.peer_server import peer_argv
    from carscope.common.servers import ServerProcess

    return ServerProcess(peer_argv(args.bundle, args.variant if args.variant in ("fp32", "int8") else "auto"),
                         "the FastAPI peer", ready_path="/readyz", grace_s=15.0)


def rss_mb(pid: int) -> float:
    from carscope.benchmarks.load import tree_rss

    return tree_rss(pid) / 2**20


def fairness(chunks: list[dict[str, Any]]) -> dict[str, Any]:
    """Per client (of every chunk): its mean latency of answered requests and how many it got answered."""
    means = [sum(c) / len(c) for ch in chunks for c in ch["clients"] if c]
    counts = [len(c) for ch in chunks for c in ch["clients"]]
    if not means:
        return {"clients": len(counts)}
    median = statistics.median(means)
    return {"clients": len(counts), "client_mean_ms_median": 1000 * median, "client_mean_ms_max": 1000 * max(means),
            "max_over_median": max(means) / median if median else None,
            "answered_per_client_min": min(counts), "answered_per_client_max": max(counts)}


def overload_row(chunks: list[dict[str, Any]], pid: int) -> dict[str, Any]:
    from carscope.benchmarks.common import percentiles

    ok = [x for ch in chunks for x in ch["lat_ok"]]
    seconds = sum(ch["seconds"] for ch in chunks)
    statuses: dict[str, int] = {}
    for ch in chunks:
        for k, v in ch["statuses"].items():
            statuses[str(k)] = statuses.get(str(k), 0) + v
    row = {"concurrency": chunks[0]["concurrency"], "requests": sum(ch["requests"] for ch in chunks),
           "seconds": round(seconds, 3), "answered": len(ok), "goodput_rps": len(ok) / seconds if seconds else 0.0,
           "shed_503": statuses.get("503", 0), "status": statuses,
           "goodput_by_round": [len(ch["lat_ok"]) / ch["seconds"] for ch in chunks if ch["seconds"]],
           "rss_mb": rss_mb(pid), "fairness": fairness(chunks)}
    row.update({f"answered_{k}": v for k, v in percentiles(ok).items()} if ok else {})
    return row


def run_overload(servers: dict[str, Any], photos, levels: list[int], n: int, rounds: int) -> dict[str, Any]:
    """{level: {server name: row}}: every level's requests in `rounds` chunks per server, the servers alternating
    (which one goes first alternates too)."""
    from carscope.benchmarks.load import load_chunk

    rounds = max(1, min(rounds, n))
    per = [n // rounds + (1 if r < n % rounds else 0) for r in range(rounds)]
    out: dict[str, Any] = {}
    for c in levels:
        print(f"bench serve: overload, {c} clients ({', '.join(servers)}; {rounds} interleaved rounds) ...", flush=True)
        chunks: dict[str, list] = {name: [] for name in servers}
        for r in range(rounds):
            order = list(servers) if r % 2 == 0 else list(reversed(servers))
            for name in order:
                server = servers[name]
                chunks[name].append(load_chunk(server.url, photos, c, per[r], server_pid=server.pid, retry_after=True,
                                               timeout=300.0))
        out[str(c)] = {name: overload_row(chunks[name], servers[name].pid) for name in servers}
        for name, row in out[str(c)].items():
            print(f"  {name} c={c}: goodput {row['goodput_rps']:.1f} req/s, p99 {row.get('answered_p99_ms', 0):.0f} ms, "
                  f"503s {row['shed_503']}, slowest client / median {row['fairness'].get('max_over_median') or 0:.2f}",
                  flush=True)
    return out


def peer_targets(r: dict[str, Any], levels: list[int]) -> dict[str, Any]:
    t: dict[str, Any] = {}
    peer, rss = r.get("peer"), r.get("rss_after_load")
    if peer and rss and rss.get("peer"):
        ratio = rss["serve"] / rss["peer"]
        t["rss_vs_peer"] = {"value": ratio, "target": TARGET_RSS_VS_PEER, "met": ratio <= TARGET_RSS_VS_PEER,
                            "text": f"RSS after the load: serve {rss['serve']:.0f} MB, peer {rss['peer']:.0f} MB: "
                                    f"{ratio:.2f}x (target <= {TARGET_RSS_VS_PEER}x)"}
    for c, target in TARGET_RPS_VS_PEER.items():
        if peer and c in peer and c in r["serve"] and peer[c]["rps"]:
            ratio = r["serve"][c]["rps"] / peer[c]["rps"]
            t[f"rps_vs_peer_c{c}"] = {
                "value": ratio, "target": target, "met": ratio >= target,
                "text": f"throughput at c={c}: serve {r['serve'][c]['rps']:.1f} req/s, peer {peer[c]['rps']:.1f}: "
                        f"{ratio:.2f}x (target >= {target}x)"}
    over = r.get("overload") or {}
    if over:
        top = max(over, key=int)
        s = over[top]["serve"]
        best = max([row["rps"] for row in r["serve"].values()] + [o["serve"]["goodput_rps"] for o in over.values()])
        share = s["goodput_rps"] / best if best else 0.0
        t["overload_goodput"] = {
            "value": share, "target": TARGET_OVERLOAD_GOODPUT, "met": share >= TARGET_OVERLOAD_GOODPUT,
            "text": f"goodput at {top} clients: {s['goodput_rps']:.1f} req/s = {share:.0%} of serve's best level "
                    f"({best:.1f}) (target >= {TARGET_OVERLOAD_GOODPUT:.0%}); {s['shed_503']} answered 503"}
        p = over[top].get("peer")
        if p and p.get("answered_p99_ms") and s.get("answered_p99_ms"):
            ratio = s["answered_p99_ms"] / p["answered_p99_ms"]
            t["overload_p99_vs_peer"] = {
                "value": ratio, "target": TARGET_OVERLOAD_P99_VS_PEER, "met": ratio <= TARGET_OVERLOAD_P99_VS_PEER,
                "text": f"p99 at {top} clients: serve {s['answered_p99_ms']:.0f} ms, peer {p['answered_p99_ms']:.0f} "
                        f"ms: {ratio:.2f}x (target <= {TARGET_OVERLOAD_P99_VS_PEER:.0f}x)"}
    return t


def peer_markdown(r: dict[str, Any], levels: list[int]) -> list[str]:
    lines: list[str] = []
    peer = r.get("peer")
    if peer:
        lines += ["serve against the FastAPI + uvicorn + onnxruntime peer (one process each, the same bundle and "
                  "variant, rounds interleaved; RSS of each server after that level's load):", "",
                  "| clients | serve req/s | peer req/s | serve / peer | serve p50 / p99 ms | peer p50 / p99 ms "
                  "| serve RSS MB | peer RSS MB |", "|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for c in levels:
            s, p = r["serve"][str(c)], peer[str(c)]
            lines.append(f"| {c} | {s['rps']:.1f} | {p['rps']:.1f} | {s['rps'] / p['rps'] if p['rps'] else 0:.2f} | "
                         f"{s['p50_ms']:.1f} / {s['p99_ms']:.1f} | {p['p50_ms']:.1f} / {p['p99_ms']:.1f} | "
                         f"{s.get('rss_mb', 0):.0f} | {p.get('rss_mb', 0):.0f} |")
        rss = r.get("rss_after_load") or {}
        if rss.get("peer"):
            lines += ["", f"RSS after all the load: serve {rss['serve']:.1f} MB, peer {rss['peer']:.1f} MB "
                          f"({rss['serve'] / rss['peer']:.2f}x).", ""]
    over = r.get("overload") or {}
    if over:
        lines += ["Overload (a client answered 503 waits its Retry-After; p50 / p99 of the answered; fairness: the "
                  "slowest client's mean latency / the median client's):", "",
                  "| clients | server | goodput req/s | p50 ms | p99 ms | 503s | errors | slowest / median client "
                  "| answered per client min-max | RSS MB |", "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for c, rows in over.items():
            for name, x in rows.items():
                f = x["fairness"]
                errors = x["requests"] - x["answered"] - x["shed_503"]
                lines.append(f"| {c} | {name} | {x['goodput_rps']:.1f} | {x.get('answered_p50_ms', float('nan')):.0f} | "
                             f"{x.get('answered_p99_ms', float('nan')):.0f} | {x['shed_503']} | {errors} | "
                             f"{f.get('max_over_median') or float('nan'):.2f} | "
                             f"{f.get('answered_per_client_min', 0)}-{f.get('answered_per_client_max', 0)} | "
                             f"{x['rss_mb']:.0f} |")
        lines.append("")
    return lines
