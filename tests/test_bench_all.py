"""`carscope bench all`: it makes the demo artifacts when a benchmark needs them, runs each benchmark as its own
process with the artifacts' paths, gathers their Markdown into summary.md, and exits 1 naming the ones that failed.
The benchmarks themselves are tested in their own files; here each is a process that writes its Markdown."""

from __future__ import annotations

import argparse
import json
import sys
import types
from pathlib import Path

import pytest

from carscope.benchmarks import all as bench_all
from carscope.common.errors import CarscopeError


class FakeRuns:
    """Stands in for subprocess: records each command, writes the Markdown a benchmark would, exits as told."""

    def __init__(self, out: Path, fail: set[str] = frozenset()):
        self.out, self.fail, self.calls = out, fail, []

    def run(self, argv):
        self.calls.append([str(a) for a in argv])
        args = self.calls[-1][3:]  # after python -m carscope
        if args[0] == "bench":
            (self.out / f"{args[1]}.md").write_text(f"## {args[1]}\n\nfigures of {args[1]}\n")
            return types.SimpleNamespace(returncode=3 if args[1] in self.fail else 0)
        return types.SimpleNamespace(returncode=0)


def _args(**kw):
    return argparse.Namespace(**{"scale": "small", "workdir": "w", "only": ",".join(bench_all.ORDER), **kw})


def test_every_benchmark_runs_in_its_own_process_on_the_demo_artifacts(tmp_path, monkeypatch):
    fake = FakeRuns(tmp_path)
    monkeypatch.setattr(bench_all, "subprocess", fake)
    result, md = bench_all.run(_args(), str(tmp_path))
    carscope = [sys.executable, "-m", "carscope"]
    assert fake.calls[0] == [*carscope, "demo", "--no-serve", "--workdir", "w"]  # the artifacts first
    benches = [c[3:] for c in fake.calls[1:]]
    assert [b[1] for b in benches] == list(bench_all.ORDER)
    for b in benches:
        assert b[:2] == ["bench", b[1]] and b[2:4] == ["--out", str(tmp_path)]
    by_name = {b[1]: b[4:] for b in benches}
    assert by_name["crawl"] == ["--scale", "small"]
    assert by_name["serve"] == ["--bundle", "w/bundle", "--model-run", "w/runs/model", "--data", "w/dataset",
                                "--requests", "300"]
    assert by_name["latency"] == ["--view-run", "w/runs/view", "--model-run", "w/runs/model", "--bundle",
                                  "w/bundle", "--data", "w/dataset"]
    assert result["status"] == {name: "ok" for name in bench_all.ORDER} and set(result["seconds"]) == set(bench_all.ORDER)
    summary = (tmp_path / "summary.md").read_text()
    assert summary.startswith("# carscope benchmarks (small)")
    assert all(f"figures of {name}" in summary for name in bench_all.ORDER)
    assert "## all" in md


def test_full_scale_passes_no_small_limits(tmp_path, monkeypatch):
    fake = FakeRuns(tmp_path)
    monkeypatch.setattr(bench_all, "subprocess", fake)
    bench_all.run(_args(scale="full", only="serve,shutdown"), str(tmp_path))
    by_name = {c[4]: c[7:] for c in fake.calls[1:]}
    assert "--requests" not in by_name["serve"] and "--stops" not in by_name["shutdown"]


def test_benchmarks_without_artifacts_do_not_make_them(tmp_path, monkeypatch):
    fake = FakeRuns(tmp_path)
    monkeypatch.setattr(bench_all, "subprocess", fake)
    bench_all.run(_args(only="crawl,train"), str(tmp_path))
    assert [c[3] for c in fake.calls] == ["bench", "bench"]  # crawl and train make their own data: no demo


def test_a_failed_benchmark_fails_the_run_and_the_rest_still_run(tmp_path, monkeypatch):
    fake = FakeRuns(tmp_path, fail={"latency"})
    monkeypatch.setattr(bench_all, "subprocess", fake)
    with pytest.raises(CarscopeError, match="benchmark\\(s\\) failed: latency") as info:
        bench_all.run(_args(only="latency,accuracy"), str(tmp_path))
    assert info.value.exit_code == 1
    assert [c[4] for c in fake.calls[1:]] == ["latency", "accuracy"]
    saved = json.loads((tmp_path / "all.json").read_text())
    assert saved["status"] == {"latency": "failed (exit 3)", "accuracy": "ok"}
    assert "figures of accuracy" in (tmp_path / "summary.md").read_text()


def test_unknown_names_and_a_failed_demo_are_errors(tmp_path, monkeypatch):
    with pytest.raises(CarscopeError, match="unknown benchmark\\(s\\) nope"):
        bench_all.run(_args(only="crawl,nope"), str(tmp_path))

    class DemoFails(FakeRuns):
        def run(self, argv):
            self.calls.append(argv)
            return types.SimpleNamespace(returncode=1)

    fake = DemoFails(tmp_path)
    monkeypatch.setattr(bench_all, "subprocess", fake)
    with pytest.raises(CarscopeError, match="the demo pipeline failed"):
        bench_all.run(_args(only="serve"), str(tmp_path))
    assert len(fake.calls) == 1  # no benchmark runs on artifacts that are not there


def test_bench_all_is_a_cli_command():
    import subprocess

    proc = subprocess.run([sys.executable, "-m", "carscope", "bench", "all", "--only", "bogus", "--out", "unused"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "unknown benchmark(s) bogus" in proc.stderr and "Traceback" not in proc.stderr
