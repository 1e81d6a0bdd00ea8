"""Bundle verification (carscope/export/bundle.py): what `load` refuses, with which one-line reason, and what it accepts.
Serve and `carscope predict` start only on a bundle that passes here, so each refusal is a gate."""

import hashlib
import json

import numpy as np
import pytest

from carscope.common.errors import CarscopeError
from carscope.export import bundle as bmod
from carscope.export.bundle import OodScorer, load, sha256_file
from tests.serve.tinybundle import make_tiny_bundle


@pytest.fixture
def tiny(tmp_path):
    """The tiny bundle with an int8 variant and an OOD check (its arrays file and thresholds)."""
    root = make_tiny_bundle(tmp_path / "b", int8=True)
    OodScorer("mahalanobis", {"whiten": np.eye(3, dtype=np.float32),
                              "means_w": np.eye(3, dtype=np.float32)}).save(root / "model.ood.npz")
    meta = json.loads((root / "bundle.json").read_text())
    meta["models"]["model"]["ood"] = {"method": "mahalanobis", "file": "model.ood.npz",
                                      "sha256": sha256_file(root / "model.ood.npz"), "threshold": 0.5,
                                      "variants": {"int8": {"threshold": 0.75}}}
    _write(root, meta)
    return root


def _write(root, meta):
    (root / "bundle.json").write_text(json.dumps(meta))


def _meta(root):
    return json.loads((root / "bundle.json").read_text())


def _refused(root, match, **kw):
    with pytest.raises(CarscopeError, match=match):
        load(root, **kw)


def test_a_good_bundle_loads_with_its_entries(tiny):
    b = load(tiny)
    assert set(b.models) == {"view", "model"}
    m = b.models["model"]
    assert m.variants() == ["fp32", "int8"] and m.path("int8") == tiny / "model.int8.onnx"
    assert m.path() == tiny / "model.onnx"
    assert m.ood_threshold() == 0.5 and m.ood_threshold("int8") == 0.75  # int8 has its own threshold
    assert m.ood_threshold("fp16") == 0.5  # a variant without one uses fp32's
    assert b.models["view"].ood_threshold() is None and b.models["view"].ood_scorer() is None
    assert m.ood_scorer().method == "mahalanobis"


def test_sha256_file_reads_in_chunks(tmp_path):
    p = tmp_path / "blob"
    data = bytes(range(256)) * 5
    p.write_bytes(data)
    want = hashlib.sha256(data).hexdigest()
    assert sha256_file(p) == want and sha256_file(p, chunk=7) == want and sha256_file(p, chunk=1) == want
    (tmp_path / "empty").write_bytes(b"")
    assert sha256_file(tmp_path / "empty") == hashlib.sha256(b"").hexdigest()


def test_not_a_bundle_and_not_json(tmp_path, tiny):
    _refused(tmp_path / "nothing", "is not a carscope bundle")
    (tiny / "bundle.json").write_text("{not json")
    _refused(tiny, "is not valid JSON")
    (tiny / "bundle.json").write_bytes(b"\xff\xfe\x00")
    _refused(tiny, "is not valid JSON")


def test_format_versions(tiny):
    meta = _meta(tiny)
    for version in (bmod.FORMAT_VERSION, bmod.FORMAT_VERSION - 1):
        _write(tiny, {**meta, "format_version": version})
        load(tiny)
    _write(tiny, {k: v for k, v in meta.items() if k != "format_version"})
    load(tiny)  # a bundle written before the field existed
    _write(tiny, {**meta, "format_version": bmod.FORMAT_VERSION + 1})
    _refused(tiny, f"bundle format {bmod.FORMAT_VERSION + 1} is newer")


@pytest.mark.parametrize("drop", ["file", "sha256", "labels", "input", "model entry", "models"])
def test_incomplete_model_entries(tiny, drop):
    meta = _meta(tiny)
    if drop == "models":
        del meta["models"]
    elif drop == "model entry":
        del meta["models"]["view"]
    else:
        del meta["models"]["model"][drop]
    _write(tiny, meta)
    _refused(tiny, "lacks a complete '(view|model)' model entry")


@pytest.mark.parametrize("file", ["model.onnx", "view.onnx", "model.int8.onnx", "model.ood.npz"])
def test_every_file_is_verified(tiny, file):
    data = (tiny / file).read_bytes()
    (tiny / file).write_bytes(data[:-1] + bytes([data[-1] ^ 1]))  # one bit
    _refused(tiny, f"bundle file {file} does not match its sha256")
    load(tiny, verify=False)  # what `verify=False` is for: reading a bundle's metadata only
    (tiny / file).unlink()
    _refused(tiny, f"bundle file {file} is missing")


def test_verify_checks_the_variants_asked_for(tiny):
    b = load(tiny)
    (tiny / "model.int8.onnx").write_bytes(b"tampered")
    b.verify(("fp32",))  # fp32 alone: int8 not read
    b.verify(("fp16",))  # a variant the bundle lacks is skipped, not an error
    with pytest.raises(CarscopeError, match="model.int8.onnx does not match"):
        b.verify(("int8",))
    with pytest.raises(CarscopeError, match="has no fp16 variant of 'model' \\(have: fp32, int8\\)"):
        b.models["model"].verify("fp16")


def test_an_ood_check_without_its_file_entry_is_refused_not_skipped(tiny):
    meta = _meta(tiny)
    meta["models"]["model"]["ood"]["sha256"] = "0" * 64
    _write(tiny, meta)
    _refused(tiny, "model.ood.npz does not match its sha256")


def test_ood_files_that_cannot_be_read(tmp_path):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip")
    with pytest.raises(CarscopeError, match="the OOD file bad.npz cannot be read"):
        OodScorer.load(bad)
    with pytest.raises(CarscopeError, match="cannot be read"):
        OodScorer.load(tmp_path / "missing.npz")
    lacking = tmp_path / "lacking.npz"
    np.savez(lacking, method=np.array("mahalanobis"), whiten=np.eye(2))
    with pytest.raises(CarscopeError, match="the OOD file lacking.npz lacks 'means_w'"):
        OodScorer.load(lacking)
    unknown = tmp_path / "unknown.npz"
    np.savez(unknown, method=np.array("magic"), whiten=np.eye(2))
    with pytest.raises(CarscopeError, match="unknown OOD method 'magic'"):
        OodScorer.load(unknown)
    knn = tmp_path / "knn.npz"
    bank = np.eye(4, dtype=np.float16)
    np.savez(knn, method=np.array("knn"), bank=bank, k=np.array(2))
    s = OodScorer.load(knn)
    assert s.bank_t.shape == (bank.shape[1], bank.shape[0]) and s.bank_t.flags["C_CONTIGUOUS"]  # made once
    assert (s.method, s.k, s.dim) == ("knn", 2, 4) and np.array_equal(s.bank, bank.astype(np.float32))


def test_without_int8_the_ood_file_is_still_verified(tmp_path):
    """The OOD arrays are checked with the fp32 graph, so a bundle with no variant at all still has them checked."""
    root = make_tiny_bundle(tmp_path / "b")
    OodScorer("mahalanobis", {"whiten": np.eye(3, dtype=np.float32),
                              "means_w": np.eye(3, dtype=np.float32)}).save(root / "model.ood.npz")
    meta = _meta(root)
    meta["models"]["model"]["ood"] = {"method": "mahalanobis", "file": "model.ood.npz", "threshold": 0.5,
                                      "sha256": sha256_file(root / "model.ood.npz")}
    _write(root, meta)
    assert load(root).models["model"].variants() == ["fp32"]
    (root / "model.ood.npz").write_bytes(b"tampered")
    _refused(root, "model.ood.npz does not match its sha256")


def test_an_fp16_variant_is_verified_too(tiny):
    meta = _meta(tiny)
    (tiny / "model.fp16.onnx").write_bytes((tiny / "model.onnx").read_bytes())
    meta["models"]["model"]["variants"]["fp16"] = {"file": "model.fp16.onnx",
                                                   "sha256": sha256_file(tiny / "model.fp16.onnx")}
    _write(tiny, meta)
    assert load(tiny).models["model"].variants() == ["fp32", "int8", "fp16"]
    (tiny / "model.fp16.onnx").write_bytes(b"tampered")
    _refused(tiny, "model.fp16.onnx does not match its sha256")


def test_a_minimal_model_entry_is_complete(tiny):
    meta = _meta(tiny)
    for key in ("view", "model"):
        meta["models"][key] = {k: meta["models"][key][k] for k in ("file", "sha256", "labels", "input")}
    _write(tiny, meta)
    b = load(tiny)  # exactly the four keys: enough
    assert b.models["model"].variants() == ["fp32"] and b.models["model"].temperature == 1.0


def test_verify_with_no_arguments_checks_fp32(tiny):
    b = load(tiny)
    (tiny / "model.onnx").write_bytes(b"tampered")
    with pytest.raises(CarscopeError, match="model.onnx does not match"):
        b.verify()
    with pytest.raises(CarscopeError, match="model.onnx does not match"):
        b.models["model"].verify()


def test_an_ood_file_without_a_method(tmp_path):
    p = tmp_path / "nomethod.npz"
    np.savez(p, whiten=np.eye(2), means_w=np.eye(2))
    with pytest.raises(CarscopeError, match="unknown OOD method ''"):
        OodScorer.load(p)


def test_the_tiny_bundles_int8_is_a_quantised_graph(tiny):
    """Serve's int8 tests run a real QDQ graph (export.quantize.to_int8), not a renamed copy of fp32."""
    import onnx
    import onnxruntime as ort

    from tests.serve.tinybundle import COLOURS, flat_frames

    ops = {n.op_type for n in onnx.load(str(tiny / "model.int8.onnx")).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    x = flat_frames(COLOURS.values())
    run = {v: ort.InferenceSession(str(tiny / f), providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]
           for v, f in (("fp32", "model.onnx"), ("int8", "model.int8.onnx"))}
    assert 0 < np.abs(run["fp32"] - run["int8"]).max() < 0.5  # rounded, and still close
    assert (run["fp32"].argmax(1) == run["int8"].argmax(1)).all()


@pytest.mark.parametrize("method", ["mahalanobis", "knn"])
def test_a_large_batch_is_scored_in_blocks_with_the_same_scores(monkeypatch, method):
    """Export scores every val photo at once: above SCORE_CELLS photos x classes (or bank photos) the scorer takes
    blocks of rows, never a whole photos x classes distance array, and the scores are the same."""
    import carscope.export.bundle as bundle_mod

    rng = np.random.default_rng(5)
    arrays = ({"whiten": np.eye(6, dtype=np.float32), "means_w": rng.normal(size=(40, 6)).astype(np.float32)}
              if method == "mahalanobis" else
              {"bank": rng.normal(size=(40, 6)).astype(np.float16), "k": np.array(3)})
    s = OodScorer(method, arrays)
    x = rng.normal(size=(250, 6)).astype(np.float32)
    whole = s.score(x)
    widths = []
    real = OodScorer._score
    monkeypatch.setattr(OodScorer, "_score", lambda self, rows: (widths.append(len(rows)), real(self, rows))[1])
    monkeypatch.setattr(bundle_mod, "SCORE_CELLS", 40 * 16)  # blocks of 16 rows
    blocks = s.score(x)
    assert max(widths) == 16 and sum(widths) == 250
    np.testing.assert_allclose(blocks, whole, rtol=1e-12)
