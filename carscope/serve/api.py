"""The Python API: a loaded bundle answers photos as the app does, from a notebook, a script or a service of your own.

    python -c "import carscope; rec = carscope.load('demo-work/bundle'); print(rec.predict('car.jpg')); rec.close()"

    import carscope
    with carscope.load("bundle/", providers="cpu", threads=2) as rec:
        answer = rec.predict("car.jpg")       # a path, bytes, a PIL image or an H x W x 3 uint8 array
        print(answer.name, answer.level, answer.confidence)
        answers = rec.predict_batch(paths)    # micro-batched like concurrent requests to the app

The answers are the app's (`POST /api/v1/predict`): the same Predictor (carscope/serve/predictor.py) that
`carscope serve` and `carscope predict` run, over the same bundle, with the same settings (ServeConfig). A photo
the app would refuse with a 4xx raises `PhotoRejected` (its `code` and `status` are the app's). Importing this module
loads nothing heavy; onnxruntime starts at `load`.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from carscope.common.errors import CarscopeError

__all__ = ["Answer", "Candidate", "PhotoRejected", "Recognizer", "load"]


class PhotoRejected(CarscopeError):
    """The photo cannot be answered: not an image, broken, too large (the app's 4xx, with its code)."""

    def __init__(self, code: str, message: str, status: int):
        super().__init__(message)
        self.code, self.status = code, status


@dataclass(frozen=True)
class Candidate:
    """One model-year of the top-k, with its calibrated probability."""

    label: str
    name: str
    confidence: float
    make: str | None = None
    model: str | None = None
    year: int | None = None

    @classmethod
    def of(cls, d: dict[str, Any]) -> Candidate:
        return cls(d["label"], d["name"], float(d["confidence"]), d.get("make"), d.get("model"), d.get("year"))


@dataclass(frozen=True)
class Answer:
    """The app's answer to one photo, typed. `to_dict()` is the JSON the app returns (its thumbnails as files)."""

    sure: bool
    reason: str | None  # why not sure: not_a_car, unfamiliar, interior, unknown_model, low_confidence
    level: str | None  # model_year, model, make; None when not sure
    name: str | None  # "2023 Acme Roadster", "Acme Roadster, 2021-2023", "Acme"; None when not sure
    confidence: float | None  # the answer's probability (the sum over the model-years it covers)
    labels: list[str]  # the model-years the answer covers
    view: str  # exterior, interior or other (not a car photo)
    view_confidence: float
    top: list[Candidate]
    ood_score: float | None
    specs: dict[str, Any] | None  # the model-year's specifications (level model_year only)
    specs_range: dict[str, Any] | None  # level model: {"shared": {...}, "differ": {column: {year: value}}}
    notes: list[str]
    raw: dict[str, Any] = field(repr=False, compare=False)

    @classmethod
    def of(cls, d: dict[str, Any]) -> Answer:
        model, pred = d["model"], d["model"]["prediction"] or {}
        return cls(sure=bool(model["sure"]), reason=model["reason"], level=model.get("level"), name=pred.get("name"),
                   confidence=pred.get("confidence"), labels=list(pred.get("labels", [])),
                   view=d["view"]["label"], view_confidence=float(d["view"]["confidence"]),
                   top=[Candidate.of(c) for c in model["top"]], ood_score=d["ood"].get("score"),
                   specs=d.get("specs"), specs_range=d.get("specs_range"), notes=list(d.get("notes", [])), raw=d)

    def to_dict(self) -> dict[str, Any]:
        return self.raw

    def __str__(self) -> str:
        if self.sure:
            return f"{self.name} ({self.level}, {self.confidence:.0%})"
        best = self.top[0] if self.top else None
        return f"not sure ({self.reason})" + (f"; best guess {best.name} ({best.confidence:.0%})" if best else "")


class Recognizer:
    """A loaded bundle, warm and ready (`load`). Thread-safe: concurrent calls share micro-batches."""

    def __init__(self, bundle: str | os.PathLike, *, providers: str = "auto", threads: int | None = None,
                 variant: str = "auto", min_confidence: float = 0.5, top_k: int = 5, max_batch: int = 16,
                 verify: bool = True, timeout_s: float | None = None):
        from carscope.serve.config import ServeConfig
        from carscope.serve.predictor import Predictor

        config = ServeConfig.from_any({"providers": providers, "variant": variant, "min_confidence": min_confidence,
                                       "top_k": top_k, "max_batch": max_batch, "intra_op_threads": threads or 0,
                                       "verify": verify, "background_load": False, "max_wait_ms": 2.0,
                                       # None: a photo waits for its batch however slow the machine (offline use)
                                       "request_timeout_s": 86400.0 if timeout_s is None else timeout_s})
        self.bundle_dir = Path(bundle)
        self.predictor = Predictor(self.bundle_dir, config)  # the bundle is checked here (sha256s)
        self.predictor.start()
        self.config = config

    def predict(self, image) -> Answer:
        """One photo: a path, bytes, a PIL image or an H x W x 3 (or H x W) uint8 array."""
        from carscope.serve.imageio import ImageRejected

        data = _as_bytes(image)
        try:
            result = self.predictor.predict(data)
        except ImageRejected as exc:
            raise PhotoRejected(exc.code, exc.message, exc.status) from None
        root = self.bundle_dir.resolve()
        result["thumbs"] = {view: [str(root / rel) for rel in rels] for view, rels in result.get("thumbs", {}).items()}
        return Answer.of(result)

    def predict_batch(self, images: Iterable, *, jobs: int | None = None,
                      errors: str = "raise") -> list[Answer | PhotoRejected]:
        """Many photos, in order. `jobs` photos are in flight at once (default: the max batch), so they share
        batches as concurrent requests do. errors="raise" stops at the first rejected photo; "return" puts the
        PhotoRejected in its place."""
        if errors not in ("raise", "return"):
            raise CarscopeError(f"errors must be 'raise' or 'return', not '{errors}'")

        def one(image):
            try:
                return self.predict(image)
            except PhotoRejected as exc:
                if errors == "raise":
                    raise
                return exc

        with ThreadPoolExecutor(max(1, jobs or self.config.max_batch)) as pool:
            return list(pool.map(one, images))

    def describe(self, offset: int = 0, limit: int | None = None) -> dict[str, Any]:
        """What the app's GET /api/v1/models says: the models, classes, groups, OOD check and serving settings;
        `classes` holds every class unless `limit` asks for a page from `offset`."""
        return self.predictor.describe(offset, len(self.predictor.labels) if limit is None else limit)

    def close(self) -> None:
        self.predictor.close()

    def __enter__(self) -> Recognizer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def load(bundle: str | os.PathLike, **options) -> Recognizer:
    """A bundle (from `carscope export`), loaded and warm. Options: providers ("auto", "cpu", "cuda"), threads
    (onnxruntime's, default all cores), variant ("auto", "fp32", "int8", "fp16"), min_confidence, top_k,
    max_batch, verify, timeout_s (how long a photo may wait for its batch; default: as long as it takes). CarscopeError with a one-line reason for a missing or tampered bundle."""
    return Recognizer(bundle, **options)


def _as_bytes(image) -> bytes:
    """The bytes the Predictor decodes: a file's as stored, else a lossless PNG of the pixels."""
    if isinstance(image, (bytes, bytearray, memoryview)):
        return bytes(image)
    if isinstance(image, (str, os.PathLike)):
        path = Path(image)
        try:
            return path.read_bytes()
        except OSError as exc:
            raise CarscopeError(f"cannot read {path}: {exc.strerror or exc}") from None
    from PIL import Image

    if not isinstance(image, Image.Image):
        import numpy as np

        if not isinstance(image, np.ndarray):
            raise CarscopeError(f"a photo is a path, bytes, a PIL image or a uint8 array, not {type(image).__name__}")
        if image.dtype != np.uint8 or image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] not in (3, 4)):
            raise CarscopeError(f"an array photo is H x W x 3 (or 4, or H x W) uint8, not {image.shape} {image.dtype}")
        image = Image.fromarray(image)
    buf = io.BytesIO()
    image.save(buf, "PNG", compress_level=1)
    return buf.getvalue()
