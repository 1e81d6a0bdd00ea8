"""serve's CUDA path, pinned on the CPU: the CUDA libraries are preloaded before the provider is probed (serve
never imports torch, which is what loads them elsewhere), the fallback line names what would not load,
--processes children spread over the GPUs, and a CUDA warm-up runs every batch size."""

from __future__ import annotations

import logging
from types import SimpleNamespace

import numpy as np
import onnxruntime as ort
import pytest

from carscope.common.errors import CarscopeError
from carscope.serve import engine


@pytest.fixture
def fresh_preload(monkeypatch):
    """preload_dlls replaced by a stub that records when it ran and reports a library it could not load."""
    events: list[str] = []

    def fake_preload(*a, **k):
        events.append("preload")
        print("Failed to load libcublasLt.so.13: libcublasLt.so.13: cannot open shared object file")

    real_session = ort.InferenceSession

    def session(path, so=None, providers=None, **k):
        names = [p[0] if isinstance(p, tuple) else p for p in providers or []]
        events.append("cuda-session" if "CUDAExecutionProvider" in names else "cpu-session")
        return real_session(path, so, providers=["CPUExecutionProvider"], **k)

    monkeypatch.setattr(ort, "preload_dlls", fake_preload)
    monkeypatch.setattr(ort, "InferenceSession", session)
    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"])
    monkeypatch.setattr(engine, "_PRELOADED", {})
    return events


def test_cuda_libraries_are_preloaded_before_the_probe(bundle_dir, fresh_preload, caplog):
    with caplog.at_level(logging.WARNING, logger="carscope.serve"):
        state: dict = {}
        engine.create_session(bundle_dir / "model.onnx", "auto", 1, state)
    assert fresh_preload[:2] == ["preload", "cuda-session"] and state["device"] == "cpu"
    said = [r.getMessage() for r in caplog.records if "CUDA is not usable" in r.getMessage()]
    assert len(said) == 1 and "libcublasLt.so.13" in said[0]


def test_providers_cuda_names_the_missing_library(bundle_dir, fresh_preload):
    with pytest.raises(CarscopeError, match="libcublasLt.so.13"):
        engine.create_session(bundle_dir / "model.onnx", "cuda", 1, {})


def test_preload_runs_once_per_process(fresh_preload):
    engine.preload_cuda_libraries()
    engine.preload_cuda_libraries()
    assert fresh_preload.count("preload") == 1


@pytest.mark.parametrize("slot, gpus, device", [(0, 1, "0"), (1, 1, "0"), (1, 2, "1"), (2, 2, "0"), (3, 4, "3")])
def test_processes_spread_over_the_gpus(slot, gpus, device):
    options = engine.cuda_provider_options(slot, gpus)
    assert options == {"device_id": device, "cudnn_conv_algo_search": "HEURISTIC"}


@pytest.mark.parametrize("device, sizes", [("cuda", list(range(1, 17))), ("cpu", [1, 2, 4, 8, 16])])
def test_warm_up_covers_every_batch_size_on_cuda(device, sizes):
    seen = []
    fake = SimpleNamespace(max_batch=16, device=device, alone_models={},
                           input_shape=lambda key: (3, 4, 4), _choose_alone_plan=lambda: None,
                           infer=lambda xv, xm, alone=False: seen.append(len(xv)))
    engine.Engine.warm_up(fake)
    assert seen == sizes
    assert all(isinstance(n, int) for n in seen) and np.all(np.diff(seen) > 0)
