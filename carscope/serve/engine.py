"""onnxruntime sessions for the bundle's two models, created once, warmed up, run as one batched pass (no torch).

    python -c "from carscope.export.bundle import load; from carscope.serve.engine import Engine; \\
               e = Engine(load('bundle')); e.load(); print(e.providers, e.max_batch)"

`providers`: "cpu", "cuda" (refuses to start without a usable GPU) or "auto" (CUDA when it works, else the
CPU with one log line). onnxruntime-gpu lists CUDAExecutionProvider even on a machine without a GPU, so "works"
is decided by creating the session and asking it which providers it actually got.

On the CPU, `workers` batches run at once, each on its share of the process's onnxruntime threads: one
single-threaded batch per core wasted the least CPU (`carscope bench serve`'s bare sweep, int8 resnet50 +
efficientnet_b1 on 2 cores: 56.8 img/s against 49.7 with one batch on both threads; level in fp32, 20.5 and 20.2). A batch that runs alone, with no other
batch running and nobody queued or announced, gets every thread, so a lone request is as fast as the whole CPU
makes it. It can use them in two ways (`--alone`):
- sequential: a second set of sessions on every thread, the view model then the model classifier;
- parallel: the two models at the same time, each on half the threads (on 2 cores, the workers' own
  single-threaded sessions, so no second copy of the models is held).
Which is faster depends on the models and the CPU. `auto` times both at warm-up and keeps the faster. Measured on
2 cores with the seed's EfficientNet-B1 + ResNet50 (int8, batch 1, 60 interleaved calls with 4 ms of other work
between them): sequential p50 26.2 ms, parallel 21.8 ms. One model much cheaper than the other favours sequential.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any

import numpy as np

from carscope.common.errors import CarscopeError

log = logging.getLogger("carscope.serve")

PROVIDER_CHOICES = ("auto", "cpu", "cuda")
VARIANTS = ("auto", "fp32", "int8", "fp16")
SLOT_ENV = "CARSCOPE_SERVE_SLOT"  # a --processes child's slot, 0..N-1 (carscope/serve/processes.py)
PROCESSES_ENV = "CARSCOPE_SERVE_PROCESSES"  # how many children --processes started
MAX_AUTO_WORKERS = 16  # = the default waitress thread count: more batches at once than requests in flight is waste
ALONE_CHOICES = ("auto", "sequential", "parallel", "off")  # how a batch that runs alone uses every thread
ALONE_TIMING_ROUNDS = 5  # auto: timed batch-1 calls per plan at warm-up (interleaved, median)


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


_PRELOADED: dict[str, Any] = {}  # once per process: {"missing": [library file names that would not load]}


def preload_cuda_libraries() -> list[str]:
    """Load the CUDA and cuDNN libraries of the pip CUDA wheels before the CUDA provider is probed (once per
    process); returns the libraries that would not load.

    serve never imports torch, and torch is what loads those libraries in a training process: without this,
    onnxruntime's CUDA provider fails with "libcublasLt.so.13: cannot open shared object file" and serve falls
    back to the CPU on a machine with a perfectly good GPU. `onnxruntime.preload_dlls` reports what it could
    not load on stdout; that account is captured here, so it reaches the user once, in our fallback line."""
    if "missing" in _PRELOADED:
        return _PRELOADED["missing"]
    import contextlib
    import io
    import re

    import onnxruntime as ort

    missing: list[str] = []
    preload = getattr(ort, "preload_dlls", None)  # onnxruntime >= 1.21
    if preload is not None:
        out = io.StringIO()
        try:
            with contextlib.redirect_stdout(out):
                preload()
        except Exception as exc:  # an odd install: say so in the fallback line rather than fail here
            missing.append(f"preload_dlls raised {type(exc).__name__}")
        missing += re.findall(r"Failed to load (\S+?):", out.getvalue())
    _PRELOADED["missing"] = [os.path.basename(m) for m in missing]
    return _PRELOADED["missing"]


def gpu_count() -> int:
    """CUDA devices this process may use, without torch: libcudart's count (loaded by preload_cuda_libraries),
    else CUDA_VISIBLE_DEVICES, else 1."""
    import ctypes

    for name in ("libcudart.so.13", "libcudart.so.12", "libcudart.so"):
        try:
            lib = ctypes.CDLL(name)
        except OSError:
            continue
        n = ctypes.c_int(0)
        if lib.cudaGetDeviceCount(ctypes.byref(n)) == 0 and n.value > 0:
            return n.value
        break
    visible = os.environ.get("CUDA_VISIBLE_DEVICES", "").strip()
    return len([d for d in visible.split(",") if d.strip()]) if visible and visible != "-1" else 1


def cuda_provider_options(slot: int, n_gpus: int) -> dict[str, str]:
    """The CUDA provider's options for --processes slot `slot`: slots spread over the GPUs (slot k on GPU k mod
    n), and cuDNN's heuristic algorithm choice, so that no request pays for an exhaustive search at a batch
    size the warm-up did not run."""
    return {"device_id": str(slot % max(1, n_gpus)), "cudnn_conv_algo_search": "HEURISTIC"}


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
            missing = preload_cuda_libraries()  # before the probe: it is what makes the provider loadable
            slot = int(os.environ.get(SLOT_ENV, "0") or 0)
            options = cuda_provider_options(slot, gpu_count())
            # The probe's failure is ours to report (one line below); silence onnxruntime's multi-line account.
            ort.set_default_logger_severity(4)
            try:
                session = ort.InferenceSession(str(path), so, providers=[("CUDAExecutionProvider", options),
                                                                         "CPUExecutionProvider"])
                if session.get_providers()[0] == "CUDAExecutionProvider":
                    state["device"] = "cuda"
                    state["gpu"] = int(options["device_id"])
                    return session
                reason = ("the CUDA provider did not initialise: " + (
                    f"CUDA libraries that would not load: {', '.join(missing)}" if missing
                    else "no usable GPU (the CUDA libraries loaded)"))
            except Exception as exc:  # a broken CUDA install raises instead of falling back
                reason = f"the CUDA provider failed ({type(exc).__name__})" + (
                    f"; CUDA libraries that would not load: {', '.join(missing)}" if missing else "")
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

    def __init__(self, key: str, session, temperature: float, labels: list[str], features: str | None = None):
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
        names = [o.name for o in session.get_outputs()]
        if features is not None and features not in names:
            raise CarscopeError(f"the bundle's {key} graph has no '{features}' output for its OOD check "
                                f"(outputs: {', '.join(names)})")
        self.features_name = features  # the second output, fetched in the same run, when the bundle has an OOD check
        self.input_shape = list(inp.shape)

    def run(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """(logits, features or None) from one session call."""
        if x.dtype != self.input_dtype:
            x = x.astype(self.input_dtype)
        names = [self.output_name] + ([self.features_name] if self.features_name else [])
        outs = self.session.run(names, {self.input_name: x})
        out = outs[0]
        if out.ndim != 2 or out.shape[1] != len(self.labels):
            raise RuntimeError(f"{self.key} model returned shape {out.shape}, expected (N, {len(self.labels)})")
        feats = outs[1].astype(np.float32, copy=False) if self.features_name else None
        return out.astype(np.float32, copy=False), feats


class Engine:
    """The view and model sessions. `infer(view_batch, model_batch)` -> (view_logits, model_logits)."""

    def __init__(self, bundle, *, providers: str = "auto", variant: str = "fp32", intra_op_threads: int = 0,
                 max_batch: int = 16, spinning: bool = False, workers: int = 0, alone: str = "auto"):
        if variant not in VARIANTS:
            raise CarscopeError(f"--variant must be one of {', '.join(VARIANTS)}, not '{variant}'")
        if alone not in ALONE_CHOICES:
            raise CarscopeError(f"--alone must be one of {', '.join(ALONE_CHOICES)}, not '{alone}'")
        model_entry = bundle.models["model"]
        if variant != "auto" and variant not in model_entry.variants():
            raise CarscopeError(f"the bundle has no {variant} model (it has: {', '.join(model_entry.variants())})")
        self.bundle = bundle
        self.providers_choice = providers
        self.variant = variant
        self.requested_threads = int(intra_op_threads)  # the process's onnxruntime threads; 0 = its cores
        self.requested_workers = int(workers)  # batches at once; 0 = auto (plan_threads)
        self.alone_choice = alone  # "off": a lone batch runs like any other (a benchmark's fixed configuration)
        # --providers cuda: the CUDA plan now. auto: the CPU plan, redone by load() if CUDA turns out to work (the
        # CUDA sessions then keep the CPU plan's thread count, which only ops that fall back to the CPU use).
        self._plan(on_cuda=providers == "cuda")
        self.spinning = spinning
        self.requested_max_batch = max_batch
        self.max_batch = max_batch
        self.models: dict[str, _Model] = {}  # the sessions every worker shares (intra_op_threads each)
        self.alone_models: dict[str, _Model] = {}  # all the threads, for a batch that runs alone; {} when none
        self.alone_plan: str | None = None  # "sequential" | "parallel" once loaded, None when a lone batch is ordinary
        self.alone_split: dict[str, int] = {}  # the threads of each alone session
        self.alone_measured_ms: dict[str, float] = {}  # auto: each plan's median batch-1 call at warm-up
        self._plans: dict[str, dict[str, _Model]] = {}  # the candidate plans until warm-up has chosen
        self._splits: dict[str, dict[str, int]] = {}  # their threads per model
        self._pair_pool = None  # parallel: the thread that runs the view model beside the caller's model call
        self.variants: dict[str, str] = {}  # the export each model runs (what "auto" resolved to)
        self.load_seconds: float | None = None
        self.device = "cpu"  # "cuda" once load() got CUDA sessions
        self.gpu: int | None = None  # the CUDA device this process's sessions run on

    @staticmethod
    def _features_of(entry) -> str | None:
        """The features output a model's OOD check reads (None: the bundle has no OOD check for it)."""
        return (entry.ood or {}).get("output") if entry.ood else None

    def _plan(self, on_cuda: bool) -> None:
        self.workers, self.intra_op_threads, alone = plan_threads(self.requested_workers, self.requested_threads,
                                                                  on_cuda)
        self.alone_threads = alone if self.alone_choice != "off" else 0

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
            self.models[key] = _Model(key, session, entry.temperature, entry.labels, self._features_of(entry))
        if state.get("device") == "cuda":
            self.device, self.gpu = "cuda", state.get("gpu", 0)
            self._plan(on_cuda=True)
            slot = int(os.environ.get(SLOT_ENV, "0") or 0)
            if slot == 0 and int(os.environ.get(PROCESSES_ENV, "1") or 1) > gpu_count():
                log.warning("%s serve processes share %d GPU(s): each holds its own CUDA context and copy of the "
                            "models on its GPU (slot k runs on GPU k mod %d)", os.environ.get(PROCESSES_ENV),
                            gpu_count(), gpu_count())
        if self.alone_threads:
            self._load_alone_plans(session_for)
        fixed = [m.fixed_batch for m in self.models.values() if m.fixed_batch]
        if fixed and min(fixed) < self.max_batch:
            self.max_batch = min(fixed)
            log.warning("a model was exported with a fixed batch size of %d; batches are capped there", self.max_batch)
        if warmup:
            self.warm_up()
        elif self._plans:  # warm-up is skipped, so nothing was timed: auto takes sequential
            self._use_plan("sequential" if "sequential" in self._plans else next(iter(self._plans)))
        self.load_seconds = time.perf_counter() - t0

    def _load_alone_plans(self, session_for) -> None:
        """The sessions of each candidate plan for a lone batch (see the module docstring). A plan reuses the
        workers' sessions where its thread count is theirs."""
        budget = self.alone_threads
        wanted = ("sequential", "parallel") if self.alone_choice == "auto" else (self.alone_choice,)
        splits = {"sequential": {"view": budget, "model": budget},
                  "parallel": {"view": budget // 2, "model": budget - budget // 2}}
        for plan in wanted:
            models = {}
            for key, threads in splits[plan].items():
                if threads == self.intra_op_threads:
                    models[key] = self.models[key]
                else:
                    entry = self.bundle.models[key]
                    session = session_for(entry, self.variants[key], threads)
                    models[key] = _Model(key, session, entry.temperature, entry.labels, self._features_of(entry))
            self._plans[plan] = models
        self._splits = {plan: splits[plan] for plan in wanted}
        if "parallel" in wanted:
            from concurrent.futures import ThreadPoolExecutor

            self._pair_pool = ThreadPoolExecutor(1, thread_name_prefix="carscope-alone")

    def _use_plan(self, plan: str) -> None:
        """Keep `plan` for lone batches; the other candidate's sessions are released."""
        self.alone_plan = plan
        self.alone_models = self._plans[plan]
        self.alone_split = dict(self._splits[plan])
        self._plans, self._splits = {}, {}
        if plan != "parallel":
            self.close()

    def _choose_alone_plan(self) -> None:
        """auto: time each candidate plan at batch 1 (warmed, interleaved rounds) and keep the faster."""
        if not self._plans:
            return
        if len(self._plans) == 1:
            self._use_plan(next(iter(self._plans)))
            return
        xv = np.zeros((1, *self.input_shape("view")), np.float32)
        xm = np.zeros((1, *self.input_shape("model")), np.float32)
        times: dict[str, list[float]] = {plan: [] for plan in self._plans}
        for plan, models in self._plans.items():  # warm each plan's sessions (arenas, kernels) off the clock
            self._run(models, plan, xv, xm)
        for _ in range(ALONE_TIMING_ROUNDS):
            for plan, models in self._plans.items():
                t0 = time.perf_counter()
                self._run(models, plan, xv, xm)
                times[plan].append(time.perf_counter() - t0)
        self.alone_measured_ms = {plan: round(1000.0 * float(np.median(t)), 3) for plan, t in times.items()}
        self._use_plan(min(self.alone_measured_ms, key=self.alone_measured_ms.get))
        log.debug("a lone batch runs %s (batch-1 p50 at warm-up: %s)", self.alone_plan, self.alone_measured_ms)

    def sessions(self, alone: bool = False) -> dict[str, _Model]:
        """The view and model sessions a batch runs on: the lone-batch plan's when it runs alone (and there is
        one), else the worker's share."""
        return self.alone_models if alone and self.alone_models else self.models

    def input_shape(self, key: str) -> tuple[int, int, int]:
        spec = self.bundle.models[key].input_spec
        crop = spec["crop"]
        h, w = (crop, crop) if isinstance(crop, int) else (crop[0], crop[1])
        return (3, int(h), int(w))

    def warm_up(self) -> None:
        """First runs allocate memory arenas and pick kernels; do them now, not on a user's request. A few batch
        sizes up to max_batch, so the arena has grown to the largest batch before traffic arrives."""
        # On CUDA every batch size: kernels are chosen per input shape (cuDNN's search is set to its heuristic
        # too, see cuda_provider_options), and a size first met by a live request would pay for the choice.
        sizes = range(1, self.max_batch + 1) if self.device == "cuda" else \
            sorted({1, 2, 4, 8, self.max_batch} & set(range(1, self.max_batch + 1)))
        for n in sizes:
            xv = np.zeros((n, *self.input_shape("view")), np.float32)
            xm = np.zeros((n, *self.input_shape("model")), np.float32)
            self.infer(xv, xm)
        # Lone batches are nearly always of one, so their plans are warmed (and timed) at batch 1 only: growing
        # their arenas to max_batch would hold memory they seldom use.
        self._choose_alone_plan()
        if self.alone_models:
            self.infer(np.zeros((1, *self.input_shape("view")), np.float32),
                       np.zeros((1, *self.input_shape("model")), np.float32), alone=True)

    def infer(self, view_batch: np.ndarray, model_batch: np.ndarray, alone: bool = False,
              timings: dict[str, float] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(view logits, model logits) for a batch; `timings`, when given, gets each model's seconds."""
        return self.infer_all(view_batch, model_batch, alone, timings)[:2]

    def infer_all(self, view_batch: np.ndarray, model_batch: np.ndarray, alone: bool = False,
                  timings: dict[str, float] | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """(view logits, model logits, model features or None when the bundle has no OOD check)."""
        if alone and self.alone_models:
            return self._run(self.alone_models, self.alone_plan, view_batch, model_batch, timings)
        return self._run(self.models, "sequential", view_batch, model_batch, timings)

    def _run(self, models: dict[str, _Model], plan: str | None, xv: np.ndarray, xm: np.ndarray,
             timings: dict[str, float] | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        if plan == "parallel":  # the view model on the pair thread, the model classifier here, at the same time
            view = self._pair_pool.submit(_timed, models["view"], xv)
            try:
                (model_logits, feats), t_model = _timed(models["model"], xm)
            finally:
                (view_logits, _), t_view = view.result()  # never leave a view run behind, even when the model failed
        else:
            (view_logits, _), t_view = _timed(models["view"], xv)
            (model_logits, feats), t_model = _timed(models["model"], xm)
        if timings is not None:
            timings["view"], timings["model"] = t_view, t_model
        return view_logits, model_logits, feats

    def close(self) -> None:
        """Stop the pair thread of the parallel plan (after the batcher has stopped)."""
        if self._pair_pool is not None:
            self._pair_pool.shutdown(wait=True)
            self._pair_pool = None

    def describe(self) -> dict[str, Any]:
        return {
            "variant": self.variant,
            "variants": dict(self.variants),
            "providers": self.providers,
            "max_batch": self.max_batch,
            "workers": self.workers,
            "intra_op_threads": self.intra_op_threads,
            "alone_threads": self.alone_threads or None,
            "alone_plan": self.alone_plan,
            "alone_split": dict(self.alone_split) or None,
            "alone_measured_ms": dict(self.alone_measured_ms) or None,
            "load_seconds": self.load_seconds,
        }


def alone_text(serving: dict[str, Any]) -> str:
    """", ..." saying how a lone batch runs, from `Engine.describe()` (/api/v1/models' "serving"); "" for none."""
    split = serving.get("alone_split") or {}
    if serving.get("alone_plan") == "parallel":
        return f", a batch alone runs both models at once on {split['view']}+{split['model']} threads"
    if serving.get("alone_plan") == "sequential":
        return f", a batch alone runs on {split['model']} threads"
    threads = serving.get("alone_threads")  # a report written before there were plans
    return f", {threads} for a batch alone" if threads else ""


def _timed(model: _Model, x: np.ndarray) -> tuple[tuple[np.ndarray, np.ndarray | None], float]:
    t0 = time.perf_counter()
    out = model.run(x)
    return out, time.perf_counter() - t0


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Calibrated probabilities softmax(logits / T), in float64 so that tiny confidences do not underflow."""
    z = np.asarray(logits, dtype=np.float64) / float(temperature)
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)
