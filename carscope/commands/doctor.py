"""`carscope doctor`: what this machine can do for carscope, with the reason for every "no". Run it first; paste
its output into bug reports.

    carscope doctor            # one line per check
    carscope doctor --json     # the same as one JSON document

Checks: torch with its CUDA, cuDNN and NCCL versions and the GPUs; the precision training would use on each
device; whether onnxruntime's CUDA and TensorRT providers load in a process without torch, as in `carscope
serve` (after `onnxruntime.preload_dlls()`); whether Chromium launches; free disk space where caches go.
Exit status 0 (it reports; nothing it finds is an error of the command).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

# the onnxruntime probe runs in a fresh Python without torch: what serve sees, not what this process loaded
ORT_PROBE = r"""
import json, os, sys, tempfile
out = {"version": None, "available": [], "providers": {}, "missing_libraries": []}
try:
    import onnxruntime as ort
except Exception as exc:
    out["error"] = f"onnxruntime does not import: {type(exc).__name__}: {exc}"
    print(json.dumps(out)); sys.exit(0)
out["version"] = ort.__version__
out["available"] = ort.get_available_providers()
from carscope.serve.engine import preload_cuda_libraries  # exactly what serve does before its CUDA probe
out["missing_libraries"] = preload_cuda_libraries()
import onnx
from onnx import TensorProto, helper
graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "probe",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])])
model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=9)
path = os.path.join(tempfile.mkdtemp(), "probe.onnx")
onnx.save(model, path)
ort.set_default_logger_severity(4)
for name in ("CUDAExecutionProvider", "TensorrtExecutionProvider"):
    if name not in out["available"]:
        out["providers"][name] = {"ok": False, "reason": "not in this onnxruntime build"}
        continue
    try:
        s = ort.InferenceSession(path, providers=[name, "CPUExecutionProvider"])
        got = s.get_providers()
        ok = got[0] == name
        reason = None if ok else "fell back to " + got[0] + (
            " (libraries that would not load: " + ", ".join(out["missing_libraries"]) + ")"
            if out["missing_libraries"] else " (no usable GPU: the CUDA libraries themselves loaded)")
        out["providers"][name] = {"ok": ok, "reason": reason}
    except Exception as exc:
        out["providers"][name] = {"ok": False, "reason": f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"}
print(json.dumps(out))
"""


def add_parser(sub) -> None:
    p = sub.add_parser("doctor", help="what this machine can do (GPUs, precision, providers, Chromium, disk)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--json", action="store_true", help="one JSON document instead of lines")
    p.add_argument("--chromium", default=None, metavar="PATH", help="the Chromium to try (default: as the crawler finds it)")


def run(args) -> int:
    report = diagnose(chromium=args.chromium)
    print(json.dumps(report, indent=2) if args.json else render(report))
    return 0


def diagnose(chromium: str | None = None) -> dict[str, Any]:
    from carscope import __version__

    return {"carscope": __version__, "commit": _commit(), "python": platform.python_version(),
            "platform": platform.platform(), "cpu_count": os.cpu_count(), "torch": _torch(),
            "onnxruntime": _onnxruntime(), "chromium": _chromium(chromium), "disk": _disk()}


def _commit() -> str | None:
    root = Path(__file__).resolve().parents[2]
    try:
        out = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                             timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None


def _torch() -> dict[str, Any]:
    try:
        import torch
    except Exception as exc:  # a broken install: say what it is
        return {"ok": False, "reason": f"torch does not import: {type(exc).__name__}: {exc}"}
    info: dict[str, Any] = {"ok": True, "version": torch.__version__, "cuda_build": torch.version.cuda,
                            "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
                            "gpus": [], "cuda": {"ok": False, "reason": None}}
    try:
        info["nccl"] = ".".join(map(str, torch.cuda.nccl.version())) if torch.version.cuda else None
    except Exception:  # NCCL is absent from CPU builds and some wheels
        info["nccl"] = None
    if torch.version.cuda is None:
        info["cuda"]["reason"] = "this torch is a CPU-only build"
    else:
        try:
            torch.cuda.init()
            info["cuda"]["ok"] = torch.cuda.device_count() > 0
            if not info["cuda"]["ok"]:
                info["cuda"]["reason"] = "CUDA initialised but sees no device (CUDA_VISIBLE_DEVICES?)"
        except Exception as exc:
            info["cuda"]["reason"] = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
    from carscope.train.hardware import cpu_has_bf16, gpu_has_native_bf16

    if info["cuda"]["ok"]:
        for i in range(torch.cuda.device_count()):
            p = torch.cuda.get_device_properties(i)
            native = gpu_has_native_bf16(torch.device("cuda", i))
            info["gpus"].append({"index": i, "name": p.name, "capability": f"{p.major}.{p.minor}",
                                 "memory_gib": round(p.total_memory / 2**30, 1),
                                 "training_precision": "bf16 autocast (native bf16)" if native else
                                 "fp16 autocast with a GradScaler (no native bf16 below compute capability 8.0)"})
    info["cpu_training_precision"] = ("bf16 autocast (the CPU has AVX512-BF16/AMX)" if cpu_has_bf16() else
                                      "fp32 (no native bf16 on this CPU)")
    return info


def _onnxruntime() -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONSTARTUP"}
    try:
        proc = subprocess.run([sys.executable, "-c", ORT_PROBE], capture_output=True, text=True, timeout=120, env=env)
        return json.loads(proc.stdout.strip().splitlines()[-1])
    except (OSError, subprocess.TimeoutExpired, ValueError, IndexError) as exc:
        return {"error": f"the onnxruntime probe failed: {type(exc).__name__}"}


def _chromium(explicit: str | None) -> dict[str, Any]:
    from carscope.crawler.browser import CHROMIUM_ARGS, find_chromium

    exe = find_chromium(explicit)
    try:
        from playwright.sync_api import Error as PWError
        from playwright.sync_api import sync_playwright
    except ImportError:
        return {"ok": False, "path": exe, "reason": "playwright is not installed"}
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=exe, args=CHROMIUM_ARGS, headless=True, timeout=30_000)
            version = browser.version
            browser.close()
        return {"ok": True, "path": exe or "Playwright's own build", "version": version}
    except PWError as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        hint = "" if exe else " (no system Chromium: apt-get install chromium, or playwright install chromium)"
        return {"ok": False, "path": exe, "reason": first + hint}


def _disk() -> list[dict[str, Any]]:
    out = []
    for label, path in (("working directory", Path.cwd()), ("cache", Path.home() / ".cache" / "carscope"),
                        ("temp", Path(tempfile.gettempdir()))):
        probe = path
        while not probe.exists() and probe != probe.parent:
            probe = probe.parent
        usage = shutil.disk_usage(probe)
        out.append({"what": label, "path": str(path), "free_gib": round(usage.free / 2**30, 1),
                    "total_gib": round(usage.total / 2**30, 1)})
    return out


def render(r: dict[str, Any]) -> str:
    def line(ok: bool | None, text: str) -> str:
        return f"  {'ok ' if ok else 'no ' if ok is False else '-- '} {text}"

    lines = [f"carscope {r['carscope']}" + (f" at {r['commit']}" if r["commit"] else "") +
             f", Python {r['python']}, {r['cpu_count']} CPUs, {r['platform']}"]
    t = r["torch"]
    if not t.get("ok"):
        lines.append(line(False, f"torch: {t['reason']}"))
    else:
        lines.append(line(True, f"torch {t['version']} (CUDA build {t['cuda_build'] or 'none'}, cuDNN "
                                f"{t['cudnn'] or 'none'}, NCCL {t['nccl'] or 'none'})"))
        cuda = t["cuda"]
        lines.append(line(cuda["ok"], "CUDA GPU for training: " + (
            f"{len(t['gpus'])} GPU(s)" if cuda["ok"] else cuda["reason"])))
        for g in t["gpus"]:
            lines.append(line(True, f"GPU {g['index']}: {g['name']}, compute {g['capability']}, {g['memory_gib']} GiB; "
                                    f"trains in {g['training_precision']}"))
        lines.append(line(None, f"CPU training precision: {t['cpu_training_precision']}"))
    o = r["onnxruntime"]
    if o.get("error"):
        lines.append(line(False, o["error"]))
    else:
        lines.append(line(True, f"onnxruntime {o['version']}: providers listed {', '.join(o['available'])}"))
        for name, p in o["providers"].items():
            lines.append(line(p["ok"], f"serve on {name}: " + ("loads" if p["ok"] else p["reason"])))
    c = r["chromium"]
    lines.append(line(c["ok"], "Chromium for JavaScript galleries: " + (
        f"launches ({c['path']}, {c['version']})" if c["ok"] else c["reason"])))
    for d in r["disk"]:
        lines.append(line(d["free_gib"] >= 5, f"disk ({d['what']}, {d['path']}): {d['free_gib']} GiB free of "
                                              f"{d['total_gib']}" + ("" if d["free_gib"] >= 5 else
                                                                     "; decode caches need several GiB")))
    return "\n".join(lines)
