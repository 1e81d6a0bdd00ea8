"""`carscope bench shutdown` at a tiny scale: a stop under load is counted, and the report holds its figures."""

from __future__ import annotations

import argparse
import json


def test_bench_shutdown_small(bundle_dir, tmp_path):
    from carscope.benchmarks import shutdown as bench

    parser = argparse.ArgumentParser()
    bench.add_arguments(parser)
    args = parser.parse_args(["--bundle", str(bundle_dir), "--stops", "2", "--processes", "1",
                              "--concurrency", "4", "--load-seconds", "0.5"])
    result, md = bench.run(args, tmp_path)
    json.dumps(result)  # JSON-serialisable, as carscope/benchmarks/cli.py writes it
    stops = result["stops"]["1"]
    assert len(stops["runs"]) == 2 and stops["clean_exits"] == 2  # SIGTERM under load: exit 0 each time
    assert stops["answered"] > 0 and stops["errors"] == 0
    assert all(r["answered"] + r["refused"] + r["lost"] > 0 for r in stops["runs"])
    assert result["targets"]["lost"]["value"] == stops["lost"]
    assert "| 1 | 2 |" in md and "requests lost over all stops" in md
