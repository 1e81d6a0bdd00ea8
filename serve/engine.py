"""onnxruntime sessions for the bundle's two models, created once, warmed up, run as one batched pass (no torch).

    python -c "from export.bundle import load; from serve.engine import Engine; \\
               e = Engine(load('bundle')); e.load(); print(e.providers, e.max_batch)"

`providers`: "cpu", "cuda" (refuses to start without a usable GPU) or "auto" (CUDA when it works, else the
CPU with one log line). onnxruntime-gpu lists CUDAExecutionProvider even on a machine without a GPU, so "works"
is decided by creating the session and asking it which providers it actually got.

On the CPU, `workers` batches run at once, each on its share of the process's onnxruntime threads: one
single-threaded batch per core wasted the least CPU (`carscope bench serve`'s bare sweep, int8 resnet50 +
efficientnet_b1 on 2 cores: 56.8 img/s against 49.7 with one batch on both threads; level in fp32, 20.5 and 20.2). A batch that runs alone, with no other
batch running and nobody queued or announced, instead takes a second set of sessions that use every thread, so a
lone request is as fast as the whole CPU makes it (`Engine.sessions(alone=True)`).
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any

import numpy as np

from carscope.errors import CarscopeError

log = logging.getLogger("carscope.serve")

PROVIDER_CHOICES = ("auto", "cpu", "cuda")
VARIANTS = ("auto", "fp32", "int8", "fp16")
SLOT_ENV = "CARSCOPE_SERVE_SLOT"  # a --processes child's slot, 0..N-1 (serve/processes.py)
MAX_AUTO_WORKERS = 16  # = the default waitress thread count: more batches at once than requests in flight is waste


def cpu_count() -> int:
    """The cores this process may run on (its affinity mask: taskset, cgroup cpusets), not the machine's."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def plan_threads(workers: int, threads: int, on_cuda: bool = False) -> tuple[int, int, int]:
    """(workers, threads per worker's sessions, threads of the alone sessions or 0 for none) from the options:
    `threads` is the onnxruntime threads the process may use (0: its cores), `workers` the batches run at once
    (0: one per thread on the CPU, one on CUDA, where the GPU does the work)."""
    budget = int(threads) or cpu_count()
    if not workers:
        workers = 1 if on_cuda else max(1, min(budget, MAX_AUTO_WORKERS))
    per_worker = max(1, budget // workers)
    alone = budget if workers > 1 and budget > per_worker and not on_cuda else 0
    return workers, per_worker, alone


def auto_variant(entry, on_cuda: bool) -> str:
    """The fastest export of a model that passed export's checks for the device it will run on: fp16 on CUDA
    when it was validated there, int8 on the CPU when it passed the accuracy gate (not kept by --force),
    else fp32."""
    variants = entry.meta.get("variants", {})
    if on_cuda:
        fp16 = variants.get("fp16") or {}
        return "fp16" if (fp16.get("validation") or {}).get("validated") else "fp32"
    int8 = variants.get("int8")
    return "int8" if int8 and not int8.get("forced") else "fp32"


_ORT_DTYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(double)": np.float64}


def _session_options(intra_op_threads: int, spinning: bool = False):
    import onnxruntime as ort

    so = ort.SessionOptions()
    # onnxruntime's intra-op threads spin after each run by default, waiting for more work. In a server the
    # request threads need those cores to decode and preprocess the next uploads; spinning takes them away
    # (measured: more CPU per image and lower throughput when the cores are shared).
    so.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    # The memory pattern is planned and cached per input shape; with a dynamic batch every new batch size adds
    # one, and RSS kept growing (+16% over 120 random-size batches of resnet18; +2% and flat without it).
    so.enable_mem_pattern = False
    so.intra_op_num_threads = int(intra_op_threads)  # 0 = onnxruntime's default: one per physical core
    so.inter_op_num_threads = 1
    so.log_severity_level = 3  # errors only: a failed CUDA probe on a CPU box is reported by us, once
    return so


def create_session(path: os.PathLike | str, providers: str = "auto", intra_op_threads: int = 0,
                   _state: dict[str, Any] | None = None, spinning: bool = False):
    """An InferenceSession on the requested providers; see the module docstring for the fallback rule."""
    import onnxruntime as ort

    if providers not in PROVIDER_CHOICES:
        raise CarscopeError(f"--providers must be one of {', '.join(PROVIDER_CHOICES)}, not '{providers}'")
    state = _state if _state is not None else {}
    so = _session_options(intra_op_threads, spinning)
    name = os.path.basename(str(path))
    if providers in ("auto", "cuda") and not state.get("cuda_failed"):
        reason = "onnxruntime has no CUDAExecutionProvider"
        if "CUDAExecutionProvider" in ort.get_available_providers():
            # The probe's failure is ours to report (one line below); silence onnxruntime's multi-line account.
            ort.set_default_logger_severity(4)
            try:
                session = ort.InferenceSession(str(path), so, providers=["CUDAExecutionProvider", "CPUExecutionProvider"])
                if session.get_providers()[0] == "CUDAExecutionProvider":
                    state["device"] = "cuda"
                    return session
                reason = "the CUDA provider did not initialise (no GPU or CUDA libraries)"
            except Exception as exc:  # a broken CUDA install raises instead of falling back
                reason = f"the CUDA provider failed ({type(exc).__name__})"
            finally:
                ort.set_default_logger_severity(3)
        if providers == "cuda":
            raise CarscopeError(f"--providers cuda: {reason}; use --providers auto or cpu")
        state["cuda_failed"] = True
        # Under --processes every child finds the same: slot 0 says it, the others at debug.
        level = logging.WARNING if os.environ.get(SLOT_ENV, "0") == "0" else logging.DEBUG
        log.log(level, "CUDA is not usable (%s); running on the CPU", reason)
    state["device"] = "cpu"
    try:
        return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    except Exception as exc:
        msg = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        raise CarscopeError(f"onnxruntime cannot load {name}: {msg}") from None


class _Model:
    """One session with its input/output contract."""

    def __init__(self, key: str, session, temperature: float, labels: list[str]):
        self.key = key
        self.session = session
        self.temperature = float(temperature) if temperature and temperature > 0 else 1.0
        self.labels = labels
        inp = session.get_inputs()[0]
        self.input_name = inp.name
        self.input_dtype = _ORT_DTYPES.get(inp.type, np.float32)
        batch_dim = inp.shape[0] if inp.shape else None
        self.fixed_batch = batch_dim if isinstance(batch_dim, int) and batch_dim > 0 else None
        self.output_name = session.get_outputs()[0].name
        self.input_shape = list(inp.shape)

    def run(self, x: np.ndarray) -> np.ndarray:
        if x.dtype != self.input_dtype:
            x = x.astype(self.input_dtype)
        out = self.session.run([self.output_name], {self.input_name: x})[0]
        if out.ndim != 2 or out.shape[1] != len(self.labels):
            raise RuntimeError(f"{self.key} model returned shape {out.shape}, expected (N, {len(self.labels)})")
        return out.astype(np.float32, copy=False)


class Engine:
    """The view and model sessions. `infer(view_batch, model_batch)` -> (view_logits, model_logits)."""

    def __init__(self, bundle, *, providers: str = "auto", variant: str = "fp32", intra_op_threads: int = 0,
                 max_batch: int = 16, spinning: bool = False, workers: int = 0, alone_sessions: bool = True):
        if variant not in VARIANTS:
            raise CarscopeError(f"--variant must be one of {', '.join(VARIANTS)}, not '{variant}'")
        model_entry = bundle.models["model"]
        if variant != "auto" and variant not in model_entry.variants():
            raise CarscopeError(f"the bundle has no {variant} model (it has: {', '.join(model_entry.variants())})")
        self.bundle = bundle
        self.providers_choice = providers
        self.variant = variant
        self.requested_threads = int(intra_op_threads)  # the process's onnxruntime threads; 0 = its cores
        self.requested_workers = int(workers)  # batches at once; 0 = auto (plan_threads)
        self.want_alone = alone_sessions  # False: no all-threads sessions (a benchmark's fixed configuration)
        # --providers cuda: the CUDA plan now. auto: the CPU plan, redone by load() if CUDA turns out to work (the
        # CUDA sessions then keep the CPU plan's thread count, which only ops that fall back to the CPU use).
        self._plan(on_cuda=providers == "cuda")
        self.spinning = spinning
        self.requested_max_batch = max_batch
        self.max_batch = max_batch
        self.models: dict[str, _Model] = {}  # the sessions every worker shares (intra_op_threads each)
        self.alone_models: dict[str, _Model] = {}  # all the threads, for a batch that runs alone; {} when none
        self.variants: dict[str, str] = {}  # the export each model runs (what "auto" resolved to)
        self.load_seconds: float | None = None

    def _plan(self, on_cuda: bool) -> None:
        self.workers, self.intra_op_threads, alone = plan_threads(self.requested_workers, self.requested_threads,
                                                                  on_cuda)
        self.alone_threads = alone if self.want_alone else 0

    @property
    def providers(self) -> list[str]:
        return self.models["model"].session.get_providers() if self.models else []

    def load(self, warmup: bool = True) -> None:
        t0 = time.perf_counter()
        state: dict[str, Any] = {}

        def session_for(entry, variant, threads):
            return create_session(entry.path(variant), self.providers_choice, threads, state, spinning=self.spinning)

        for key in ("view", "model"):
            entry = self.bundle.models[key]
            if self.variant != "auto":
                variant = self.variant if self.variant in entry.variants() else "fp32"  # view may have no variants
                session = session_for(entry, variant, self.intra_op_threads)
            else:
                device = "cpu" if self.providers_choice == "cpu" else state.get("device")
                session = None
                if device is None:  # the first session tells whether CUDA works: open fp32, then switch if faster
                    session = session_for(entry, "fp32", self.intra_op_threads)
                    device = state["device"]
                variant = auto_variant(entry, device == "cuda")
                if session is None or variant != "fp32":
                    session = session_for(entry, variant, self.intra_op_threads)
            self.variants[key] = variant
            self.models[key] = _Model(key, session, entry.temperature, entry.labels)
        if state.get("device") == "cuda":
            self._plan(on_cuda=True)
        if self.alone_threads:
            for key in self.models:
                entry = self.bundle.models[key]
                session = session_for(entry, self.variants[key], self.alone_threads)
                self.alone_models[key] = _Model(key, session, entry.temperature, entry.labels)
        fixed = [m.fixed_batch for m in self.models.values() if m.fixed_batch]
        if fixed and min(fixed) < self.max_batch:
            self.max_batch = min(fixed)
            log.warning("a model was exported with a fixed batch size of %d; batches are capped there", self.max_batch)
        if warmup:
            self.warm_up()
        self.load_seconds = time.perf_counter() - t0

    def sessions(self, alone: bool = False) -> dict[str, _Model]:
        """The view and model sessions a batch runs on: every thread when it runs alone (and there is such a
        set), else the worker's share."""
        return self.alone_models if alone and self.alone_models else self.models

    def input_shape(self, key: str) -> tuple[int, int, int]:
        spec = self.bundle.models[key].input_spec
        crop = spec["crop"]
        h, w = (crop, crop) if isinstance(crop, int) else (crop[0], crop[1])
        return (3, int(h), int(w))

    def warm_up(self) -> None:
        """First runs allocate memory arenas and pick kernels; do them now, not on a user's request. A few batch
        sizes up to max_batch, so the arena has grown to the largest batch before traffic arrives."""
        for n in sorted({1, 2, 4, 8, self.max_batch} & set(range(1, self.max_batch + 1))):
            xv = np.zeros((n, *self.input_shape("view")), np.float32)
            xm = np.zeros((n, *self.input_shape("model")), np.float32)
            self.infer(xv, xm)
            if self.alone_models and n == 1:  # lone batches are nearly always of one: growing their arenas to
                self.infer(xv, xm, alone=True)  # max_batch would hold memory they seldom use

    def infer(self, view_batch: np.ndarray, model_batch: np.ndarray, alone: bool = False
              ) -> tuple[np.ndarray, np.ndarray]:
        models = self.sessions(alone)
        return models["view"].run(view_batch), models["model"].run(model_batch)

    def describe(self) -> dict[str, Any]:
        return {
            "variant": self.variant,
            "variants": dict(self.variants),
            "providers": self.providers,
            "max_batch": self.max_batch,
            "workers": self.workers,
            "intra_op_threads": self.intra_op_threads,
            "alone_threads": self.alone_threads or None,
            "load_seconds": self.load_seconds,
        }


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Calibrated probabilities softmax(logits / T), in float64 so that tiny confidences do not underflow."""
    z = np.asarray(logits, dtype=np.float64) / float(temperature)
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)
