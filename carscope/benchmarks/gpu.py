"""`carscope bench gpu`: the GPU proof, one command, ready for the day a GPU is lent.

    carscope bench gpu --out benchmarks/results/gpu            # on a machine with CUDA
    carscope bench gpu --dry-run --out /tmp/gpu-dry            # anywhere: checks every step, skips what needs CUDA

Steps, each a real command in a fresh process, on a small showroom dataset written to a temporary folder
(carscope/showroom/offline.py):
1. train-view-amp, train-model-amp: one epoch of each classifier with AMP (`--device cuda --amp auto`); the
   report must say CUDA and a precision other than "off";
2. torchrun-2gpu: the model classifier for one epoch over two GPUs (NCCL), when two are present;
3. export-fp16: `carscope export --fp16 --int8`, whose fp16 variant export validates on the CUDA provider;
4. serve-cuda: `carscope serve --providers cuda` answering a photo, and saying it runs on CUDA;
5. latency-cuda: `carscope bench latency` on the bundle, with its CUDA engines.

`--dry-run` checks each step as far as a machine without CUDA can: the data is written, the command parses with
carscope's own parser, and the step runs for real with its CUDA settings swapped for the CPU's (`--device cpu
--amp off`, `--providers cpu`, no `--fp16`; torchrun over gloo), so every step's inputs, outputs and checks are
proven. What only CUDA can show (AMP on a GPU, NCCL, the fp16 variant, the CUDA provider) is then reported as
skipped, with the reason; nothing else is. The JSON result lists each step with its command, status (ok /
failed / skipped), the CPU stand-in's status in a dry run, reason and seconds.
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from carscope.benchmarks.common import REPO, describe_code

STEPS = ("train-view-amp", "train-model-amp", "torchrun-2gpu", "export-fp16", "serve-cuda", "latency-cuda")


def add_arguments(p) -> None:
    p.add_argument("--dry-run", action="store_true", help="check every step without CUDA; skip what needs it")
    p.add_argument("--view-arch", default="mobilenet_v3_small", help="view classifier (default: %(default)s)")
    p.add_argument("--model-arch", default="resnet18", help="model classifier (default: %(default)s)")
    p.add_argument("--img-size", type=int, default=128, help="training crop (default: %(default)s)")
    p.add_argument("--makes", type=int, default=3, help="showroom makes in the dataset (default: %(default)s)")
    p.add_argument("--step-timeout", type=float, default=900.0, help="seconds per step (default: %(default)s)")


def run(args, out_dir) -> tuple[dict[str, Any], str]:
    from carscope.showroom.offline import write_dataset

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cuda = _cuda()
    work = Path(tempfile.mkdtemp(prefix="carscope-bench-gpu-"))
    data, bundle = work / "dataset", work / "bundle"
    t0 = time.perf_counter()
    write_dataset(data, makes=args.makes, models_per_make=2, years=(2023, 2023), photos=16)
    data_s = time.perf_counter() - t0
    common = ["--img-size", str(args.img_size), "--epochs", "1", "--batch-size", "32", "--device", "cuda",
              "--amp", "auto", "--no-progress"]
    commands = {
        "train-view-amp": ["train", "view", "--data", str(data), "--out", str(work / "view"), "--arch",
                           args.view_arch, *common],
        "train-model-amp": ["train", "model", "--data", str(data), "--out", str(work / "model"), "--arch",
                            args.model_arch, *common],
        "torchrun-2gpu": ["train", "model", "--data", str(data), "--out", str(work / "model-ddp"), "--arch",
                          args.model_arch, *common],
        "export-fp16": ["export", "--view-run", str(work / "view"), "--model-run", str(work / "model"), "--data",
                        str(data), "--out", str(bundle), "--fp16", "--int8"],
        "serve-cuda": ["serve", "--bundle", str(bundle), "--providers", "cuda", "--port", "0"],
        "latency-cuda": ["bench", "latency", "--bundle", str(bundle), "--out", str(out / "latency"), "--runs", "50",
                         "--max-seconds", "5", "--peak-seconds", "0.5"],
    }
    parser = step_parser()
    result: dict[str, Any] = {"dry_run": bool(args.dry_run), "cuda": cuda, "code": describe_code(),
                              "dataset": {"path": str(data), "seconds": round(data_s, 2), **_data_check(data)},
                              "steps": []}
    for name in STEPS:
        argv = commands[name]
        step: dict[str, Any] = {"name": name, "command": _shell(name, argv)}
        try:
            parser.parse_args(argv)
            step["parsed"] = True
        except SystemExit:
            step.update(status="failed", parsed=False, reason="carscope's parser refuses the command")
            result["steps"].append(step)
            continue
        need = _needs(name, cuda)
        if args.dry_run or need:
            cpu = _execute(name, cpu_argv(argv), work, args.step_timeout, on_cuda=False)
            step["cpu_stand_in"] = {"command": _shell(name, cpu_argv(argv)), **cpu}
            if cpu["status"] == "failed":
                step.update(status="failed", reason=f"the CPU stand-in failed: {cpu['reason']}")
            else:
                step.update(status="skipped", reason=need or "--dry-run: the CPU stand-in ran; the CUDA run did not")
        else:
            step.update(_execute(name, argv, work, args.step_timeout))
        result["steps"].append(step)
    result["skipped"] = [s["name"] for s in result["steps"] if s["status"] == "skipped"]
    result["failed"] = [s["name"] for s in result["steps"] if s["status"] == "failed"]
    return result, _markdown(result)


# the command word of each step -> the module that defines its options (each stage's own `add_parser`); the steps
# are parsed by those, not by carscope/commands/cli.py, which a benchmark may not import
STEP_COMMANDS = {"train": "carscope.train.cli", "export": "carscope.export.cli", "serve": "carscope.serve.cli",
                 "bench": "carscope.benchmarks.cli"}


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # as the carscope command does: one line, exit 2
        self.exit(2, f"{self.prog}: error: {message}\n")


def step_parser() -> argparse.ArgumentParser:
    """A parser for the steps' commands, built from the stages' own `add_parser`, as the `carscope` command is."""
    import importlib

    parser = _Parser(prog="carscope")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for module in STEP_COMMANDS.values():
        importlib.import_module(module).add_parser(sub)
    return parser


def cpu_argv(argv: list[str]) -> list[str]:
    """A step's command with its CUDA settings swapped for the CPU's (the dry run's stand-in)."""
    swap = {("--device", "cuda"): ("--device", "cpu"), ("--amp", "auto"): ("--amp", "off"),
            ("--providers", "cuda"): ("--providers", "cpu")}
    out, i = [], 0
    while i < len(argv):
        pair = tuple(argv[i:i + 2])
        if pair in swap:
            out += list(swap[pair])
            i += 2
        elif argv[i] == "--fp16":
            i += 1
        else:
            out.append(argv[i])
            i += 1
    return out


def _cuda() -> dict[str, Any]:
    import torch

    if not torch.cuda.is_available():
        try:
            torch.cuda.init()
            reason = "CUDA sees no device"
        except Exception as exc:
            reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
        return {"available": False, "gpus": 0, "reason": reason}
    return {"available": True, "gpus": torch.cuda.device_count(),
            "names": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]}


def _needs(name: str, cuda: dict) -> str | None:
    """Why a step cannot run here, or None."""
    if not cuda["available"]:
        return f"needs CUDA: {cuda['reason']}"
    if name == "torchrun-2gpu" and cuda["gpus"] < 2:
        return f"needs 2 GPUs (this machine has {cuda['gpus']})"
    return None


def _data_check(data: Path) -> dict[str, Any]:
    from carscope.crawler.dataset import load
    from carscope.train.data import build_table

    ds = load(data)
    view, _ = build_table(ds, "view")
    model, _ = build_table(ds, "model")
    return {"photos": int(len(ds.images)), "view_photos": int(len(view)), "model_photos": int(len(model)),
            "classes": int(model["label"].nunique())}


def _shell(name: str, argv: list[str]) -> str:
    if name == "torchrun-2gpu":
        return "torchrun --standalone --nproc-per-node 2 -m carscope " + shlex.join(argv)
    return "carscope " + shlex.join(argv)


def _execute(name: str, argv: list[str], work: Path, timeout: float, *, on_cuda: bool = True) -> dict[str, Any]:
    t0 = time.perf_counter()
    try:
        if name == "serve-cuda":
            out = _serve(argv, timeout, on_cuda=on_cuda)
        else:
            cmd = [sys.executable, "-m", "carscope", *argv]
            if name == "torchrun-2gpu":
                cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "-m",
                       "carscope", *argv]
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=REPO)
            if proc.returncode != 0:
                return {"status": "failed", "reason": (proc.stderr.strip().splitlines() or ["no message"])[-1][-300:],
                        "seconds": round(time.perf_counter() - t0, 2)}
            out = _verify(name, argv, work, on_cuda=on_cuda)
    except subprocess.TimeoutExpired:
        out = {"status": "failed", "reason": f"timed out after {timeout:.0f} s"}
    except (OSError, ValueError, KeyError) as exc:  # an HTTP error, an unreadable or incomplete result file
        out = {"status": "failed", "reason": f"{type(exc).__name__}: {str(exc)[:200]}"}
    out["seconds"] = round(time.perf_counter() - t0, 2)
    return out


def _verify(name: str, argv: list[str], work: Path, *, on_cuda: bool = True) -> dict[str, Any]:
    """What a finished step must show beyond its exit status (on the CPU stand-in: the same, minus CUDA)."""
    if name.startswith("train") or name == "torchrun-2gpu":
        run_dir = Path(argv[argv.index("--out") + 1])
        report = json.loads((run_dir / "report.json").read_text())
        world = json.loads((run_dir / "config.json").read_text())["world_size"]  # report.json: rank 0's finish
        ok = (report["device"].startswith("cuda") and report["amp"] != "off") if on_cuda else \
            report["device"] == "cpu"
        if name == "torchrun-2gpu":
            ok = ok and world == 2
        return {"status": "ok" if ok else "failed", "device": report["device"], "amp": report["amp"],
                "world_size": world, "reason": None if ok else
                f"trained on {report['device']} with amp {report['amp']} over {world} process(es)"}
    if name == "export-fp16":
        meta = json.loads((Path(argv[argv.index("--out") + 1]) / "bundle.json").read_text())
        variants = meta["models"]["model"].get("variants", {})
        ok = "fp16" in variants if on_cuda else bool(meta["models"]["model"].get("parity"))
        return {"status": "ok" if ok else "failed", "variants": sorted(variants),
                "reason": None if ok else "export left out the fp16 variant (see its log)"}
    if name == "latency-cuda":
        result = json.loads((Path(argv[argv.index("--out") + 1]) / "latency.json").read_text())
        engines = sorted(result["models"]["model"]["engines"])
        cuda_ok = any("cuda" in e and "skipped" not in result["models"]["model"]["engines"][e] for e in engines)
        ok = cuda_ok if on_cuda else bool(engines)
        return {"status": "ok" if ok else "failed", "engines": engines,
                "reason": None if ok else "no CUDA engine was measured"}
    return {"status": "ok"}


def _serve(argv: list[str], timeout: float, *, on_cuda: bool = True) -> dict[str, Any]:
    from carscope.common.errors import CarscopeError
    from carscope.common.servers import ServerProcess

    try:  # listening comes first; /readyz says when the sessions are loaded and warmed
        server = ServerProcess([sys.executable, "-m", "carscope", *argv], "carscope serve", ready_path="/readyz",
                               timeout=timeout, cwd=REPO, grace_s=20.0, poll_s=0.5)
    except CarscopeError as exc:
        return {"status": "failed", "reason": str(exc)}
    with server:
        base = server.url
        models = json.loads(urllib.request.urlopen(base + "/api/v1/models", timeout=timeout).read())
        photo = _photo()
        boundary = "carscopebenchgpu"
        body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"p.jpg\"\r\n"
                f"Content-Type: image/jpeg\r\n\r\n").encode() + photo + f"\r\n--{boundary}--\r\n".encode()
        req = urllib.request.Request(base + "/api/v1/predict", data=body, method="POST",
                                     headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
        answer = json.loads(urllib.request.urlopen(req, timeout=timeout).read())
        ok = ("CUDAExecutionProvider" in json.dumps(models) or not on_cuda) and "model" in answer
        return {"status": "ok" if ok else "failed", "answer": answer.get("model", {}).get("top", [])[:1],
                "reason": None if ok else "serve did not report the CUDA provider"}


def _photo() -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (320, 240), (120, 160, 200)).save(buf, "JPEG")
    return buf.getvalue()


def _markdown(r: dict[str, Any]) -> str:
    cuda = r["cuda"]
    where = (f"{cuda['gpus']} GPU(s): {', '.join(cuda.get('names', []))}" if cuda["available"]
             else f"no CUDA ({cuda['reason']})")
    lines = [f"# bench gpu{' --dry-run' if r['dry_run'] else ''} at {(r['code']['head'] or 'unknown')[:7]}", "",
             f"{where}. Dataset: {r['dataset']['photos']} photos, {r['dataset']['classes']} classes "
             f"({r['dataset']['seconds']} s to write).", "", "| step | status | seconds | reason | command |",
             "|---|---|---:|---|---|"]
    for s in r["steps"]:
        cpu = s.get("cpu_stand_in")
        note = f"; CPU stand-in {cpu['status']} in {cpu.get('seconds', '?')} s" if cpu else ""
        lines.append(f"| {s['name']} | {s['status']} | {s.get('seconds', '')} | {s.get('reason') or ''}{note} | "
                     f"`{s['command']}` |")
    return "\n".join(lines)

