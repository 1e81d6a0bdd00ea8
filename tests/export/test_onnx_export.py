"""The exporter step on its own: dynamic batch, the TorchScript fallback and its recorded reason, the checker."""

from __future__ import annotations

import numpy as np
import pytest

from carscope.common.errors import CarscopeError
from carscope.export import onnx_export


@pytest.fixture(scope="module")
def tinynet():
    import torch

    from carscope.train.models import create_model

    torch.manual_seed(0)
    return create_model("tinynet", 4).eval()


def _check_outputs(model, path, size=32):
    import torch

    x = np.random.default_rng(0).standard_normal((3, 3, size, size), dtype=np.float32)
    with torch.inference_mode():
        want = model(torch.from_numpy(x)).numpy()
    got = onnx_export.cpu_session(path, threads=1).run(None, {"input": x})[0]
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_dynamo_export_has_dynamic_batch(tinynet, tmp_path):
    info = onnx_export.export_onnx(tinynet, 32, tmp_path / "m.onnx", opset=18)
    assert info["exporter"] == "dynamo" and info["fallback_reason"] is None and info["dynamic_batch"]
    _check_outputs(tinynet, tmp_path / "m.onnx")


def test_falls_back_to_torchscript_and_records_why(tinynet, tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("cannot trace data-dependent control flow\nmore detail")

    monkeypatch.setattr(onnx_export, "_export_dynamo", broken)
    info = onnx_export.export_onnx(tinynet, 32, tmp_path / "m.onnx", opset=18)
    assert info["exporter"] == "torchscript"
    assert info["fallback_reason"] == "RuntimeError: cannot trace data-dependent control flow"
    assert info["dynamic_batch"]
    _check_outputs(tinynet, tmp_path / "m.onnx")
    with pytest.raises(RuntimeError):  # asked for dynamo explicitly: no silent fallback
        onnx_export.export_onnx(tinynet, 32, tmp_path / "n.onnx", exporter="dynamo")


def test_old_opset_refused(tinynet, tmp_path):
    with pytest.raises(CarscopeError, match="opset 17"):
        onnx_export.export_onnx(tinynet, 32, tmp_path / "m.onnx", opset=17)


def test_checker_rejects_an_invalid_graph(tmp_path):
    import onnx
    from onnx import TensorProto, helper

    # a Relu fed by a tensor nothing produces: well-formed protobuf, invalid graph
    node = helper.make_node("Relu", ["missing"], ["y"])
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), tmp_path / "bad.onnx")
    with pytest.raises(CarscopeError, match="bad.onnx fails onnx.checker"):
        onnx_export.check(tmp_path / "bad.onnx")
