"""A tiny hand-built bundle for serve's tests: two ONNX graphs whose right answers are known in advance.

    from tests.serve.tinybundle import make_tiny_bundle, photo
    make_tiny_bundle(tmp_path / "bundle"); jpeg = photo("red")

Both models average the normalised image over space (GlobalAveragePool) and apply one linear layer (Gemm):
- `model.onnx` is a nearest-colour classifier: a photo dominated by a class's colour is that class with high
  confidence (calibrated with temperature 2.0, which the tests rely on: without it grey would look "sure");
- `view.onnx` says "interior" when the photo is dark.
So a test can check that an answer is *correct*, not only well-formed. Built with onnx.helper: no torch, no
training, milliseconds. The bundle follows carscope/export/bundle.py (bundle.json, specs.parquet, thumbs/).
"""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import numpy as np

MEAN = [0.485, 0.456, 0.406]
STD = [0.229, 0.224, 0.225]
SPEC = {"resize": 73, "crop": 64, "interpolation": "bilinear", "mean": MEAN, "std": STD, "layout": "NCHW",
        "color": "RGB", "dtype": "float32", "name": "input"}
TEMPERATURE = 2.0

# label -> (colour of its photos, specs)
CLASSES = {
    "2023_acme_roadster": ((200, 30, 30), {"make": "Acme", "model": "Roadster", "year": 2023, "msrp_usd": 34500,
                                           "body_style": "Coupe", "drivetrain": "RWD", "engine": "2.0L I4 Turbo Gas",
                                           "horsepower": 255, "mpg_city": 25, "mpg_highway": 33, "seats": 2,
                                           "doors": 2, "length_in": 172.4}),
    "2023_acme_hauler": ((30, 170, 60), {"make": "Acme", "model": "Hauler", "year": 2023, "msrp_usd": 41990,
                                         "body_style": "Pickup", "drivetrain": "4WD", "engine": "3.5L V6 Gas",
                                         "horsepower": 310, "seats": 5, "doors": 4}),
    "2022_bolt_sedan": ((30, 60, 200), {"make": "Bolt", "model": "Sedan", "year": 2022, "msrp_usd": 27100,
                                        "body_style": "Sedan", "drivetrain": "FWD", "engine": "Electric",
                                        "horsepower": 201, "seats": 5, "doors": 4}),
    "2023_bolt_sedan": ((220, 200, 40), {"make": "Bolt", "model": "Sedan", "year": 2023, "msrp_usd": 28150,
                                         "body_style": "Sedan", "drivetrain": "FWD", "engine": "Electric",
                                         "horsepower": 215, "seats": 5, "doors": 4}),
    "2023_zenith_van": ((190, 40, 180), {"make": "Zenith", "model": "Van", "year": 2023, "msrp_usd": 38900,
                                         "body_style": "Van", "drivetrain": None, "engine": "2.5L I4 Hybrid",
                                         "horsepower": None, "seats": 8, "doors": 4, "length_in": 203.7}),
}
LABELS = list(CLASSES)
COLOURS = {"red": CLASSES[LABELS[0]][0], "green": CLASSES[LABELS[1]][0], "blue": CLASSES[LABELS[2]][0],
           "yellow": CLASSES[LABELS[3]][0], "magenta": CLASSES[LABELS[4]][0], "grey": (128, 128, 128),
           "dark": (40, 35, 30)}
EXPECTED = {"red": LABELS[0], "green": LABELS[1], "blue": LABELS[2], "yellow": LABELS[3], "magenta": LABELS[4]}


def _normalised(rgb) -> np.ndarray:
    return (np.asarray(rgb, dtype=np.float64) / 255.0 - MEAN) / STD


def _linear_onnx(weight: np.ndarray, bias: np.ndarray, path: Path) -> None:
    """input (N,3,H,W) -> GlobalAveragePool -> Flatten -> Gemm(weight (3,K), bias (K,)) -> logits (N,K)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    k = weight.shape[1]
    graph = helper.make_graph(
        [helper.make_node("GlobalAveragePool", ["input"], ["pooled"]),
         helper.make_node("Flatten", ["pooled"], ["features"], axis=1),
         helper.make_node("Gemm", ["features", "W", "b"], ["logits"])],
        "tiny",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 3, SPEC["crop"], SPEC["crop"]])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", k])],
        [numpy_helper.from_array(weight.astype(np.float32), "W"), numpy_helper.from_array(bias.astype(np.float32), "b")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="carscope-tests")
    model.ir_version = 8  # readable by every onnxruntime we support
    onnx.checker.check_model(model)
    path.write_bytes(model.SerializeToString())


def flat_frames(colours) -> np.ndarray:
    """A float32 NCHW batch of preprocessed frames of flat colours (RGB 0-255), at the spec's crop."""
    crop = SPEC["crop"]
    return np.stack([np.broadcast_to(_normalised(rgb).astype(np.float32)[:, None, None], (3, crop, crop))
                     for rgb in colours])


def _int8(fp32: Path, dest: Path) -> dict:
    """carscope.export.quantize.to_int8 on `fp32` (QDQ: uint8 activations, int8 weights), calibrated on flat frames of every
    class colour, grey, dark, white and black."""
    from carscope.export.quantize import to_int8

    frames = flat_frames([*COLOURS.values(), (255, 255, 255), (0, 0, 0)])
    return to_int8(fp32, dest, [frames], head_fp32=False)  # the head is all there is to quantise


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def photo(colour: str | tuple, size: tuple[int, int] = (160, 120), *, seed: int = 0, fmt: str = "JPEG",
          mode: str = "RGB", **save) -> bytes:
    """A noisy photo dominated by `colour` (a name from COLOURS or an RGB tuple), encoded in `fmt`."""
    from PIL import Image, ImageDraw

    rgb = COLOURS[colour] if isinstance(colour, str) else colour
    rng = np.random.default_rng(seed)
    w, h = size
    base = np.clip(np.asarray(rgb, np.float64) + rng.normal(0, 12, (h, w, 3)), 0, 255).astype(np.uint8)
    img = Image.fromarray(base)
    d = ImageDraw.Draw(img)  # a "car": darker body and wheels, small enough to keep the colour dominant
    shade = tuple(int(c * 0.8) for c in rgb)
    d.rectangle([w // 4, h // 2, 3 * w // 4, 3 * h // 4], fill=shade)
    for cx in (w // 3, 2 * w // 3):
        d.ellipse([cx - h // 12, 3 * h // 4 - h // 12, cx + h // 12, 3 * h // 4 + h // 12], fill=(25, 25, 25))
    if mode != "RGB":
        img = img.convert(mode)
    buf = io.BytesIO()
    img.save(buf, format=fmt, **save)
    return buf.getvalue()


def make_tiny_bundle(root: str | Path, *, with_thumbs: bool = True, int8: bool = False,
                     thumb_photos: dict[str, dict[str, list[bytes]]] | None = None,
                     inputs: dict[str, dict] | None = None, groups: list[list[str]] | None = None) -> Path:
    """Write the bundle into `root` (created) and return it. `thumb_photos` (label -> view -> JPEG bytes)
    replaces the plain colour thumbnails, e.g. with showroom photos for a screenshot. `inputs` ("view"/"model"
    -> keys) changes a model's input spec, e.g. its resize or jpeg_draft (the crop stays SPEC's)."""
    import pandas as pd

    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    # model: logits_c = k * (f . p_c - |p_c|^2 / 2), the nearest prototype p_c (a class colour, normalised).
    protos = np.stack([_normalised(CLASSES[label][0]) for label in LABELS])  # (K, 3)
    k = 3.0
    _linear_onnx(k * protos.T, -k * (protos ** 2).sum(1) / 2, root / "model.onnx")
    # view: interior when mean brightness (in [0, 1]) is under 0.22; brightness is linear in the features.
    a, threshold = 20.0, 0.22
    w_b = np.asarray(STD) / 3.0
    b_b = float(np.sum(MEAN) / 3.0) - threshold
    _linear_onnx(np.stack([a * w_b, -a * w_b], axis=1), np.array([a * b_b, -a * b_b]), root / "view.onnx")

    rows = [{"model_id": label, **specs} for label, (_, specs) in CLASSES.items()]
    specs = pd.DataFrame(rows)
    for col in ("year", "msrp_usd", "horsepower", "mpg_city", "mpg_highway", "seats", "doors"):
        specs[col] = specs[col].astype("Int64")
    specs["length_in"] = specs["length_in"].astype("Float64")
    for col in ("model_id", "make", "model", "body_style", "drivetrain", "engine"):
        specs[col] = specs[col].astype("string")
    specs.to_parquet(root / "specs.parquet", index=False)

    thumbs = {}
    if with_thumbs:
        for label, (rgb, _) in CLASSES.items():
            d = root / "thumbs" / label
            d.mkdir(parents=True, exist_ok=True)
            given = (thumb_photos or {}).get(label) or {"exterior": [photo(rgb, (120, 90))],
                                                        "interior": [photo(COLOURS["dark"], (120, 90))]}
            thumbs[label] = {}
            for view, blobs in given.items():
                for i, blob in enumerate(blobs):
                    (d / f"{view}_{i}.jpg").write_bytes(blob)
                    thumbs[label].setdefault(view, []).append(f"thumbs/{label}/{view}_{i}.jpg")

    def entry(key: str, labels: list[str], temperature: float) -> dict:
        path = root / f"{key}.onnx"
        return {"file": path.name, "sha256": _sha256(path), "task": key, "arch": "tiny-linear", "labels": labels,
                "input": {**SPEC, **(inputs or {}).get(key, {})}, "output": {"name": "logits", "kind": "logits"}, "temperature": temperature,
                "metrics": {"test": {"top1": 1.0}}, "parity": {"max_abs_diff": 0.0}, "variants": {}}

    meta = {"format_version": 1, "created_at": "2024-01-01T00:00:00+00:00", "tools": {"onnx": "test"},
            "models": {"view": entry("view", ["exterior", "interior"], 1.0),
                       "model": entry("model", LABELS, TEMPERATURE)},
            "thumbs": thumbs, "specs": "specs.parquet"}
    if groups is not None:  # what export's levels stage records (carscope/export/levels_fit.py)
        meta["models"]["model"]["levels"] = {"groups": groups, "join": 0.25, "source": "val"}
    if int8:  # a real int8 variant: export's own QDQ quantiser on the fp32 graph, calibrated on the class colours
        quant = _int8(root / "model.onnx", root / "model.int8.onnx")
        meta["models"]["model"]["variants"]["int8"] = {"file": "model.int8.onnx", "quantization": quant,
                                                       "sha256": _sha256(root / "model.int8.onnx"), "metrics": {}}
    (root / "bundle.json").write_text(json.dumps(meta, indent=2) + "\n")
    return root
