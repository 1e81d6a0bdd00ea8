"""Where and how a training process runs: the device, the process group, threads and precision, decided once.

    python -c "from carscope.train.hardware import cpu_has_bf16; print(cpu_has_bf16())"

`setup(args)` returns the `Context` that every stage receives (torchvision's references create the device once
and pass it in, the same way). Under torchrun it joins the process group; the helpers below it are what the ranks
share: `on_main` (rank 0 works, the others wait on the store, not in a collective), `barrier`, `sync_buffers`,
the per-rank RNG state that --resume restores, and `true_fp32` for the evaluation. torch is imported inside
the functions, so importing this module is cheap (`carscope doctor` reads the bf16 checks from here).
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import time
from dataclasses import dataclass
from typing import Any

from carscope.common.errors import CarscopeError
from carscope.train.data import say

DIST_TIMEOUT_ENV = "CARSCOPE_DIST_TIMEOUT_S"  # the process group's collective timeout (default: torch's own)


@dataclass
class Context:
    """Where and how this process trains: decided once, passed everywhere."""

    device: Any
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    amp_dtype: Any = None  # torch.bfloat16 / torch.float16 / None
    use_scaler: bool = False
    channels_last: bool = False

    @property
    def main(self) -> bool:
        return self.rank == 0


def setup(args) -> Context:
    """Process group (under torchrun), device, threads, precision."""
    import torch

    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if args.device == "cuda" and not torch.cuda.is_available():
        raise CarscopeError("--device cuda but no CUDA GPU is available here (use --device cpu or auto)")
    use_cuda = args.device == "cuda" or (args.device == "auto" and torch.cuda.is_available())
    if use_cuda:
        torch.cuda.set_device(local_rank)
        device = torch.device("cuda", local_rank)
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    else:
        device = torch.device("cpu")
    if world > 1 and not torch.distributed.is_initialized():
        kw = {}
        if os.environ.get(DIST_TIMEOUT_ENV):
            kw["timeout"] = datetime.timedelta(seconds=float(os.environ[DIST_TIMEOUT_ENV]))
        if use_cuda:  # binding the device up front lets NCCL barriers and collectives skip a guess
            torch.distributed.init_process_group("nccl", device_id=device, **kw)
        else:
            torch.distributed.init_process_group("gloo", **kw)
    if not use_cuda or args.threads:
        torch.set_num_threads(cpu_threads(args, int(os.environ.get("LOCAL_WORLD_SIZE", str(world))), rank))
    amp_dtype, use_scaler = resolve_amp(args.amp, device)
    channels_last = args.channels_last == "on" or (args.channels_last == "auto" and args.arch != "tinynet")
    return Context(device=device, rank=rank, world=world, local_rank=local_rank, amp_dtype=amp_dtype,
                   use_scaler=use_scaler, channels_last=channels_last)


def cpu_threads(args, local_world: int, rank: int) -> int:
    """Intra-op threads: the cores shared among this machine's processes. On a machine already busier than its
    cores (load average), one thread: OpenMP threads that wait at every barrier for a descheduled sibling run
    ~10x slower there than a single thread does (measured on 2 cores under a load of 10)."""
    cores = os.cpu_count() or 1
    if args.threads:
        return args.threads
    threads = max(1, cores // local_world)
    try:
        load = os.getloadavg()[0]
    except OSError:  # not on every platform
        load = 0.0
    if threads > 1 and load > cores + 1:
        if rank == 0:
            say(f"the machine is busy (load {load:.1f} on {cores} cores): 1 torch thread per process "
                f"(--threads N to override)")
        return 1
    return threads


def cpu_has_bf16() -> bool:
    """Whether this CPU runs bf16 natively (what --amp auto trains in on the CPU)."""
    import torch

    try:  # AVX512-BF16 / AMX: oneDNN runs bf16 convolutions natively (about 2x fp32 on such CPUs)
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def gpu_has_native_bf16(device) -> bool:
    """bf16 in hardware: compute capability 8.0 (Ampere) or newer. `torch.cuda.is_bf16_supported()` alone also
    says yes on Turing (T4, sm75) and Volta, where bf16 is emulated and slower than fp16 with a GradScaler."""
    import torch

    major, _minor = torch.cuda.get_device_capability(device)
    return major >= 8 and torch.cuda.is_bf16_supported(including_emulation=False)


def resolve_amp(mode: str, device):
    """(autocast dtype or None, whether a GradScaler is needed) for --amp `mode` on `device`."""
    import torch

    if mode == "off":
        return None, False
    if device.type == "cuda":
        if mode in ("auto", "bf16") and gpu_has_native_bf16(device):
            return torch.bfloat16, False
        if mode == "bf16":
            say("warning: this GPU has no bf16; using fp16 with a GradScaler")
        return torch.float16, True
    if mode == "fp16":
        raise CarscopeError("--amp fp16 needs a CUDA GPU; on the CPU use --amp bf16 or off")
    if mode == "bf16" or cpu_has_bf16():
        return torch.bfloat16, False
    return None, False


def barrier(ctx: Context) -> None:
    """Every rank waits here for the others (nothing to do in one process)."""
    import torch.distributed as dist

    if ctx.world > 1:
        dist.barrier()


_MAIN_CALLS = [0]  # how many on_main calls this process made: the same sequence on every rank


def on_main(ctx: Context, fn):
    """Run fn on rank 0 only, while the other ranks wait for it; its error, of any kind, reaches every rank.

    The others wait by polling the process group's key-value store, not in a collective: rank 0 may take an hour
    to decode 200,000 photos into the cache, far past NCCL's watchdog timeout (10 minutes by default), which
    aborts a rank blocked in a collective. An exception on rank 0 is published before it propagates, so the
    other ranks end at once with its message instead of hanging until that timeout."""
    result, error = None, None
    _MAIN_CALLS[0] += 1
    key = f"carscope/on_main/{_MAIN_CALLS[0]}"
    if ctx.main:
        try:
            result = fn()
        except CarscopeError as exc:
            error = str(exc)
        except BaseException as exc:
            if ctx.world > 1:
                _store().set(key, json.dumps({"error": f"rank 0 failed: {type(exc).__name__}: {exc}"}))
            raise
        if ctx.world > 1:
            _store().set(key, json.dumps({"error": error}))
    elif ctx.world > 1:
        error = json.loads(_wait_key(key))["error"]
    if error:
        raise CarscopeError(error)
    return result


def _store():
    import torch.distributed.distributed_c10d as c10d

    return c10d._get_default_store()


def _wait_key(key: str, poll_s: float = 0.5) -> str:
    """The store's value for `key` once rank 0 has set it; polled, so no collective timeout applies."""
    store = _store()
    while not store.check([key]):
        time.sleep(poll_s)
    return store.get(key).decode()


def sync_buffers(ctx: Context, module) -> None:
    """Rank 0's buffers (BatchNorm running statistics) on every rank. DDP broadcasts them at the start of each
    forward, so after the last step every rank holds statistics its own last batch moved; evaluating on those
    would score a model that is not the one rank 0 saves."""
    if ctx.world > 1:
        import torch.distributed as dist

        for buf in module.buffers():
            dist.broadcast(buf, src=0)


@contextlib.contextmanager
def true_fp32():
    """TF32 off for the duration: training runs with TF32 matmuls and convolutions on Ampere and newer (setup),
    but the reported validation and test figures are true fp32, what export compares with."""
    import torch

    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def rng_state(ctx: Context) -> dict[str, Any]:
    """Every rank's torch (and CUDA) RNG state, for last.pt; a collective under DDP: every rank calls it."""
    import torch

    state = {"torch": torch.get_rng_state()}
    if ctx.device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(ctx.device)
    if ctx.world > 1:
        parts = [None] * ctx.world
        torch.distributed.all_gather_object(parts, state)
        return {"per_rank": parts}
    return {"per_rank": [state]}


def set_rng_state(ctx: Context, rng: dict[str, Any], seed: int) -> None:
    """This rank's RNG state from `rng_state`'s record (--resume), or a fresh seed if the world size changed."""
    import torch

    per_rank = rng.get("per_rank", [])
    if len(per_rank) == ctx.world:
        torch.set_rng_state(per_rank[ctx.rank]["torch"])
        if ctx.device.type == "cuda" and "cuda" in per_rank[ctx.rank]:
            torch.cuda.set_rng_state(per_rank[ctx.rank]["cuda"], ctx.device)
    else:  # a different number of processes than before: the curve cannot be exact anyway
        torch.manual_seed(seed + ctx.rank)
