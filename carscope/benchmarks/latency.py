"""`carscope bench latency`: PyTorch eager vs onnxruntime fp32 / int8 (CPU) and fp16 (CUDA), both models, one run.

    carscope bench latency --bundle demo-work/bundle --out benchmarks/results/mine

For each model of the bundle: p50/p90/p99 at batch 1 and throughput at batch 8 and 32 for
  torch eager   the run's checkpoint (recorded in bundle.json, or --view-run/--model-run), torch.inference_mode
  ort fp32      the bundle's graph, CPUExecutionProvider
  ort int8      the bundle's int8 variant, CPUExecutionProvider
  ort fp16 cuda the fp16 variant with IO binding (inputs and outputs stay on the GPU), where a GPU is lent
all with the same thread count, in the same process, after a warm-up. Each figure is also given as a fraction of
the compute ceiling: the model's FLOPs per photo over the peak of a large matrix product of the engine's
precision (fp32, int8 via torch._int_mm, fp16 on the GPU) measured on this machine in the same run. Targets checked: ort fp32 p50 <= 0.6x torch eager; int8 p50 <= 0.35x torch eager
with >= 99% top-1 agreement with fp32 on the test split (re-measured when the dataset is there).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

TARGET_FP32 = 0.6
TARGET_INT8 = 0.35
TARGET_INT8_AGREEMENT = 0.99


def add_arguments(p) -> None:
    p.add_argument("--bundle", required=True, help="bundle directory (carscope export)")
    p.add_argument("--view-run", default=None, help="view run for the torch baseline (default: recorded)")
    p.add_argument("--model-run", default=None, help="model run for the torch baseline (default: recorded)")
    p.add_argument("--data", default=None, help="dataset, for int8 agreement on the test split (default: recorded)")
    p.add_argument("--runs", type=int, default=200, help="timed calls at batch 1 (default: %(default)s)")
    p.add_argument("--batches", default="8,32", help="batch sizes for throughput (default: %(default)s)")
    p.add_argument("--threads", type=int, default=None, help="threads for torch and onnxruntime (default: all cores)")
    p.add_argument("--max-seconds", type=float, default=20.0, help="time cap per measured case (default: %(default)s)")
    p.add_argument("--models", default="view,model", help="which bundle models (default: %(default)s)")
    p.add_argument("--peak-size", type=int, default=1024, help="matrix size of the peak-FLOPs probe (default: %(default)s)")
    p.add_argument("--peak-seconds", type=float, default=2.0, help="time per peak probe (default: %(default)s)")


def run(args, out_dir) -> tuple[dict[str, Any], str]:
    import torch

    from carscope.common.errors import CarscopeError
    from carscope.export.bundle import load as load_bundle

    bundle = load_bundle(args.bundle)
    threads = args.threads or os.cpu_count() or 1
    torch.set_num_threads(threads)
    try:
        sizes = [int(b) for b in args.batches.split(",") if b.strip()]
    except ValueError:
        raise CarscopeError(f"--batches wants comma-separated integers, got {args.batches!r}") from None
    keys = [k.strip() for k in args.models.split(",") if k.strip()]
    for k in keys:
        if k not in bundle.models:
            raise CarscopeError(f"--models: unknown model '{k}' (have: {', '.join(bundle.models)})")
    peaks = _peaks(threads, args.peak_size, args.peak_seconds)
    gpu = _gpu_name()
    result: dict[str, Any] = {"bundle": str(Path(args.bundle).resolve()), "threads": threads, "runs": args.runs,
                              # other processes' load skews every figure on a small machine: say how busy it was
                              "loadavg_1m_before": os.getloadavg()[0],
                              "batches": sizes, "peak_matmul": peaks, "gpu": gpu, "models": {}}
    md = [f"## latency: {args.bundle} ({threads} threads; matmul peaks: "
          + ", ".join(f"{k} {v['gflops']:.0f} G/s" for k, v in peaks.items())
          + f"{'; GPU ' + gpu if gpu else ''})", "",
          "| model | engine | p50 ms | p90 ms | p99 ms | " + " | ".join(f"b{b} img/s" for b in sizes)
          + " | p50 vs torch | % of ceiling (b1) |",
          "|---|---|---:|---:|---:|" + "---:|" * len(sizes) + "---:|---:|"]
    for key in keys:
        res = _bench_model(bundle, key, args, sizes, threads, peaks)
        result["models"][key] = res
        samples = {engine: r.pop("_batch1_ms") for engine, r in res["engines"].items() if "_batch1_ms" in r}
        png = _histogram(key, samples, Path(out_dir))
        if png is not None:
            res["histogram_png"] = png.name
        base = res["engines"]["torch_eager"]["batch1"]["p50_ms"]
        for engine, r in res["engines"].items():
            if "skipped" in r:
                md.append(f"| {key} | {engine} | skipped: {r['skipped']} |" + " |" * (4 + len(sizes)))
                continue
            tp = " | ".join(f"{r['throughput'][str(b)]['img_per_s']:.0f}" for b in sizes)
            b1 = r["batch1"]
            md.append(f"| {key} | {engine} | {b1['p50_ms']:.2f} | {b1['p90_ms']:.2f} | {b1['p99_ms']:.2f} | {tp} | "
                      f"{b1['p50_ms'] / base:.2f}x | {r['ceiling_fraction_b1']:.1%} |")
    result["loadavg_1m_after"] = os.getloadavg()[0]
    md += ["", f"Load average (1 min) before/after: {result['loadavg_1m_before']:.2f}/{result['loadavg_1m_after']:.2f} "
           f"on {os.cpu_count()} cores.", "", "Targets (p50 at batch 1, against torch eager in the same run):"]
    for key, res in result["models"].items():
        for name, t in res["targets"].items():
            md.append(f"- {key} {name}: {t['text']} -> {'met' if t['met'] else 'NOT met'}")
    md += [""] + [f"![{key} batch-1 latency]({res['histogram_png']})" for key, res in result["models"].items()
                  if res.get("histogram_png")]
    return result, "\n".join(md) + "\n"


def _histogram(key: str, samples: dict[str, list[float]], out_dir: Path) -> Path | None:
    """latency_<key>.png: the batch-1 latency distribution of every engine, log-scaled, p50 and p99 marked."""
    if not samples:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    out_dir.mkdir(parents=True, exist_ok=True)
    lo = max(1e-3, min(min(v) for v in samples.values()))
    hi = max(max(v) for v in samples.values())
    bins = np.geomspace(lo, hi * 1.01, 60)
    fig, ax = plt.subplots(figsize=(7, 4))
    for i, (engine, ms) in enumerate(samples.items()):
        colour = f"C{i}"
        p50, p99 = np.percentile(ms, [50, 99])
        ax.hist(ms, bins=bins, histtype="step", lw=1.5, color=colour,
                label=f"{engine}: p50 {p50:.2f} ms, p99 {p99:.2f} ms (n={len(ms)})")
        ax.axvline(p50, color=colour, ls="-", lw=0.8)
        ax.axvline(p99, color=colour, ls=":", lw=0.8)
    ax.set_xscale("log")
    ax.set_xlabel("batch-1 latency, ms (log scale; solid p50, dotted p99)")
    ax.set_ylabel("calls")
    ax.set_title(f"{key} classifier: batch-1 latency by engine")
    ax.grid(alpha=.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    path = out_dir / f"latency_{key}.png"
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _bench_model(bundle, key: str, args, sizes, threads: int, peaks: dict) -> dict[str, Any]:
    import numpy as np
    import torch

    from carscope.train.checkpoint import load_run
    from carscope.train.models import model_from_checkpoint

    entry = bundle.models[key]
    run_dir = getattr(args, f"{key}_run") or entry.meta.get("source", {}).get("run")
    state = load_run(run_dir, task=key) if run_dir else None
    size = int(entry.input_spec["crop"])
    rng = np.random.default_rng(0)
    inputs = {b: rng.standard_normal((b, 3, size, size), dtype=np.float32) for b in [1, *sizes]}
    res: dict[str, Any] = {"arch": entry.meta.get("arch"), "img_size": size, "engines": {}}
    model = model_from_checkpoint(state) if state is not None else None
    flops = model_flops(model, size) if model is not None else None
    res["gflops_per_image"] = flops / 1e9 if flops else None

    if model is None:
        from carscope.common.errors import CarscopeError

        raise CarscopeError(f"no run for the torch baseline of '{key}'; pass --{key}-run")
    tensors = {b: torch.from_numpy(x) for b, x in inputs.items()}
    calls: dict[str, Any] = {"torch_eager": lambda b: (lambda: model(tensors[b]))}
    engines: dict[str, Any] = {}
    for variant, name in (("fp32", "ort_fp32"), ("int8", "ort_int8")):
        if variant not in entry.variants():
            engines[name] = {"skipped": f"bundle has no {variant} variant"}
            continue
        from carscope.export.onnx_export import cpu_session

        sess = cpu_session(entry.path(variant), threads=threads)
        iname = sess.get_inputs()[0].name
        calls[name] = lambda b, s=sess, n=iname: (lambda: s.run(None, {n: inputs[b]}))
    cuda_call, why = _cuda_fp16(entry, inputs)
    if cuda_call is None:
        engines["ort_fp16_cuda_iobinding"] = {"skipped": why}
    else:
        calls["ort_fp16_cuda_iobinding"] = cuda_call
    with torch.inference_mode():  # the serving setting for torch: no autograd bookkeeping
        engines.update(_measure_interleaved(calls, sizes, args))
    engines = {name: engines[name] for name in ENGINE_PEAK if name in engines}
    for engine, r in engines.items():
        peak = peaks.get(ENGINE_PEAK[engine])
        if "batch1" in r and flops and peak:
            r["ceiling"] = ENGINE_PEAK[engine]
            r["ceiling_fraction_b1"] = flops / (r["batch1"]["p50_ms"] / 1000) / (peak["gflops"] * 1e9)
            for b in sizes:
                t = r["throughput"][str(b)]
                t["ceiling_fraction"] = flops * t["img_per_s"] / (peak["gflops"] * 1e9)
        elif "batch1" in r:
            r["ceiling_fraction_b1"] = float("nan")
    res["engines"] = engines
    res["targets"] = _targets(entry, engines, args, bundle)
    return res


def _measure_interleaved(calls: dict[str, Any], sizes, args) -> dict[str, Any]:
    """Batch-1 percentiles and throughput per batch size for every engine, measured in turns.

    `calls[engine](b)` returns a no-argument callable running batch `b`. The engines take turns in short blocks
    instead of one after the other, so a burst of load from another process lands on all of them alike and
    the ratios stay fair on a shared machine."""
    from carscope.benchmarks.common import percentiles

    out: dict[str, Any] = {name: {"batch1": {}, "throughput": {}} for name in calls}
    for b, repeat, warmup, block in [(1, args.runs, 10, 10)] + [(b, max(5, args.runs // 10), 2, 2) for b in sizes]:
        fns = {name: make(b) for name, make in calls.items()}
        for fn in fns.values():
            for _ in range(warmup):
                fn()
        samples: dict[str, list[float]] = {name: [] for name in fns}
        deadline = time.perf_counter() + args.max_seconds * len(fns)
        while any(len(v) < repeat for v in samples.values()):
            for name, fn in fns.items():
                for _ in range(min(block, repeat - len(samples[name]))):
                    t0 = time.perf_counter()
                    fn()
                    samples[name].append(time.perf_counter() - t0)
            if time.perf_counter() > deadline and all(len(v) >= 5 for v in samples.values()):
                break  # a slow case must not stall the run; every engine has the same number of turns
        for name, ts in samples.items():
            if b == 1:
                out[name]["batch1"] = percentiles(ts)
                out[name]["_batch1_ms"] = [1000.0 * t for t in ts]  # for the histogram; not kept in the JSON
            else:
                med = percentiles(ts)["p50_ms"] / 1000
                out[name]["throughput"][str(b)] = {"img_per_s": b / med, "p50_ms": med * 1000, "n": len(ts)}
    return out


def _cuda_fp16(entry, inputs):
    """fp16 on the CUDA provider with IO binding (input on the GPU before the clock starts, output left there,
    synchronised before the clock stops): (make_call, None), or (None, why not)."""
    if "fp16" not in entry.variants():
        return None, "bundle has no fp16 variant"
    from carscope.export.quantize import cuda_session

    sess, why = cuda_session(entry.path("fp16"))
    if sess is None:
        return None, why.replace("not validated: ", "")
    import onnxruntime as ort

    iname, oname = sess.get_inputs()[0].name, sess.get_outputs()[0].name
    bindings = {}
    for b, x in inputs.items():
        binding = sess.io_binding()
        binding.bind_ortvalue_input(iname, ort.OrtValue.ortvalue_from_numpy(x, "cuda", 0))
        binding.bind_output(oname, "cuda", 0)
        bindings[b] = binding

    def make(b):
        def call():
            sess.run_with_iobinding(bindings[b])
            bindings[b].synchronize_outputs()
        return call

    return make, None


def _targets(entry, engines, args, bundle) -> dict[str, Any]:
    base = engines["torch_eager"]["batch1"]["p50_ms"]
    out: dict[str, Any] = {}
    if "batch1" in engines.get("ort_fp32", {}):
        r = engines["ort_fp32"]["batch1"]["p50_ms"] / base
        out["ort_fp32"] = {"ratio": r, "target": TARGET_FP32, "met": r <= TARGET_FP32,
                           "text": f"ort fp32 p50 = {r:.2f}x torch eager (target <= {TARGET_FP32}x)"}
    if "batch1" in engines.get("ort_int8", {}):
        r = engines["ort_int8"]["batch1"]["p50_ms"] / base
        agreement, source = _int8_agreement(entry, args, bundle)
        met = r <= TARGET_INT8 and agreement is not None and agreement >= TARGET_INT8_AGREEMENT
        agree_txt = f"{agreement:.2%}" if agreement is not None else "unknown"
        out["ort_int8"] = {"ratio": r, "target": TARGET_INT8, "agreement_vs_fp32": agreement,
                           "agreement_source": source, "met": met,
                           "text": f"ort int8 p50 = {r:.2f}x torch eager (target <= {TARGET_INT8}x), top-1 "
                                   f"agreement with fp32 {agree_txt} ({source}; target >= {TARGET_INT8_AGREEMENT:.0%})"}
    return out


def _int8_agreement(entry, args, bundle) -> tuple[float | None, str]:
    """Top-1 agreement int8 vs fp32 on the test split: re-measured when the photos are here, else as exported."""

    recorded = entry.meta["variants"]["int8"].get("metrics", {}).get("top1_agreement_vs_fp32")
    data = args.data or bundle.meta.get("source", {}).get("data")
    splits = entry.meta.get("source", {}).get("splits")
    if not data or not splits or not Path(data).is_dir() or not Path(splits).is_file():
        return recorded, "recorded at export"
    from carscope.crawler.dataset import load as load_dataset
    from carscope.export.onnx_export import cpu_session
    from carscope.export.photos import batches, split_photos

    test = split_photos(splits, load_dataset(data), "test", entry.labels)
    if test.empty:
        return recorded, "recorded at export"
    fp32, int8 = cpu_session(entry.path("fp32")), cpu_session(entry.path("int8"))
    name = fp32.get_inputs()[0].name
    agree = n = 0
    for x in batches(test["file"].tolist(), entry.input_spec):
        a = fp32.run(None, {name: x})[0].argmax(1)
        b = int8.run(None, {name: x})[0].argmax(1)
        agree += int((a == b).sum())
        n += len(a)
    return agree / n, f"{n} test photos"


def model_flops(model, size: int) -> float | None:
    """FLOPs of one photo's forward pass (a multiply-add counts 2), by torch's FLOP counter."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter, torch.inference_mode():
        model(torch.zeros(1, 3, size, size))
    return float(counter.get_total_flops()) or None


def matmul_peak_gflops(threads: int, n: int = 1024, dtype: str = "float32", device: str = "cpu",
                       budget_s: float = 2.0) -> dict[str, Any]:
    """The compute ceiling: the best GFLOP/s (GOP/s for int8) of an n x n matrix product, `threads` threads.

    Best of as many products as fit in `budget_s` (at least 5): on a shared machine the fastest run is the one
    nobody interrupted, which is what a peak means. int8 uses torch._int_mm (int8 x int8 -> int32, the VNNI
    path on x86), so int8 engines are held against the int8 ceiling, not the fp32 one."""
    import torch

    torch.set_num_threads(threads)
    if dtype == "int8":
        a = torch.randint(-128, 128, (n, n), dtype=torch.int8, device=device)
        b = torch.randint(-128, 128, (n, n), dtype=torch.int8, device=device)
        op = torch._int_mm
    else:
        a = torch.randn(n, n, device=device, dtype=getattr(torch, dtype))
        b = torch.randn(n, n, device=device, dtype=getattr(torch, dtype))
        op = torch.mm
    if device == "cuda":
        return _cuda_peak(op, a, b, n, dtype, budget_s)
    op(a, b)  # warm-up: thread pool and kernel selection
    best, count, start = float("inf"), 0, time.perf_counter()
    while count < 5 or time.perf_counter() - start < budget_s:
        t0 = time.perf_counter()
        op(a, b)
        best = min(best, time.perf_counter() - t0)
        count += 1
        if count >= 1000:
            break
    return {"gflops": 2 * n**3 / best / 1e9, "n": n, "best_s": best, "dtype": dtype, "device": device,
            "products": count}


CUDA_PRODUCTS_PER_WINDOW = 20


def _cuda_peak(op, a, b, n: int, dtype: str, budget_s: float) -> dict[str, Any]:
    """The GPU's peak: windows of back-to-back products timed with CUDA events, so that the figure is the
    device's time, not a host clock around one launch plus a synchronisation (which at n=4096 in fp16 on a
    modern GPU is mostly launch latency)."""
    import torch

    for _ in range(3):  # warm-up: cuBLAS handle, kernel selection, clocks up
        op(a, b)
    torch.cuda.synchronize()
    begin, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    best, windows, start = float("inf"), 0, time.perf_counter()
    while windows < 5 or time.perf_counter() - start < budget_s:
        begin.record()
        for _ in range(CUDA_PRODUCTS_PER_WINDOW):
            op(a, b)
        end.record()
        end.synchronize()
        best = min(best, begin.elapsed_time(end) / 1000.0 / CUDA_PRODUCTS_PER_WINDOW)
        windows += 1
        if windows >= 200:
            break
    return {"gflops": 2 * n**3 / best / 1e9, "n": n, "best_s": best, "dtype": dtype, "device": "cuda",
            "products": windows * CUDA_PRODUCTS_PER_WINDOW, "timing": "cuda events"}


def _peaks(threads: int, n: int, budget_s: float) -> dict[str, dict[str, Any]]:
    """Ceilings per engine precision: CPU fp32 and int8, and GPU fp16 where there is one."""
    peaks = {"cpu_fp32": matmul_peak_gflops(threads, n, budget_s=budget_s)}
    try:
        peaks["cpu_int8"] = matmul_peak_gflops(threads, n, "int8", budget_s=budget_s)
    except (RuntimeError, AttributeError):  # no int8 GEMM in this torch build: hold int8 to the fp32 ceiling
        peaks["cpu_int8"] = {**peaks["cpu_fp32"], "note": "torch._int_mm unavailable; fp32 peak used"}
    if _gpu_name():
        peaks["cuda_fp16"] = matmul_peak_gflops(threads, 4096, "float16", "cuda", budget_s=budget_s)
    return peaks


ENGINE_PEAK = {"torch_eager": "cpu_fp32", "ort_fp32": "cpu_fp32", "ort_int8": "cpu_int8",
               "ort_fp16_cuda_iobinding": "cuda_fp16"}


def _gpu_name() -> str | None:
    try:
        import torch

        return torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    except Exception:  # a broken driver is "no GPU" for a benchmark
        return None
