"""From upload bytes to an answer: decode, preprocess, batched view + model inference, calibrated top-k, specs.

    python -c "from carscope.serve.predictor import Predictor; from carscope.serve.config import ServeConfig; \\
               p = Predictor('bundle', ServeConfig()); p.start(); \\
               print(p.predict(open('car.jpg', 'rb').read())['prediction']); p.close()"

The web layer (carscope/serve/app.py) only maps HTTP to `Predictor.predict` and its exceptions to status codes.
Reads the bundle through carscope/export/bundle.py and nothing else; never imports torch.
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import TimeoutError as FutureTimeout
from pathlib import Path
from typing import Any

import numpy as np

from carscope.common.errors import CarscopeError
from carscope.common.imaging import JPEG_FORMATS, jpeg_scale
from carscope.common.levels import Hierarchy, decide
from carscope.export.bundle import OTHER_LABEL
from carscope.export.bundle import load as load_bundle
from carscope.serve.batcher import Batcher, BatcherStopped
from carscope.serve.config import ServeConfig
from carscope.serve.engine import Engine, alone_text, softmax
from carscope.serve.imageio import DecodeLimits, ImageRejected, decode_image, preview_data_uri
from carscope.serve.metrics import Metrics
from carscope.serve.preprocess import Preprocessor

log = logging.getLogger("carscope.serve")

INTERIOR_NOTE = ("This looks like an interior photo. The model classifier learned model-years from exterior photos, "
                 "so it gives no answer from inside the car: the candidates below are only guesses. An exterior "
                 "photo gives an answer.")
NOT_A_CAR_NOTE = ("This does not look like a car photo the model knows. The candidates below are only guesses, "
                  "not an answer.")
UNFAMILIAR_NOTE = ("This photo is unlike the photos the model was trained on (out-of-distribution score {score:.4g}, "
                   "above the threshold {threshold:.4g}), so the model gives no answer: the candidates below are only "
                   "guesses. It may not show a car, or shows one from a view or of a kind the model has not seen.")
NO_OOD_NOTE = "This bundle was exported without an out-of-distribution check; re-export it to get one."
UNKNOWN_MODEL_NOTE = ("This looks like a car, but not one of the model-years this service knows (out-of-distribution "
                      "score {score:.4g}, above the unknown-model threshold {threshold:.4g}), so it names none: the "
                      "candidates below are only the nearest known ones.")
# why not sure, in the order they are tested
REASONS = ("not_a_car", "unfamiliar", "interior", "unknown_model", "low_confidence")


CLASSES_PAGE = 1000  # classes in one GET /api/v1/models unless ?limit= says otherwise
CLASSES_PAGE_MAX = 5000  # the most ?limit= gives


class NotReady(Exception):
    """503: the models are not loaded (yet), or the server is shutting down or overloaded."""

    def __init__(self, message: str, code: str = "not_ready"):
        super().__init__(message)
        self.message = message
        self.code = code


class Predictor:
    def __init__(self, bundle_dir: str | Path, config: ServeConfig | None = None, metrics: Metrics | None = None):
        self.config = config or ServeConfig()
        self.metrics = metrics or Metrics()
        self.bundle = load_bundle(bundle_dir, verify=self.config.verify)  # sha256 mismatch -> CarscopeError
        self.view_pre = Preprocessor(self.bundle.models["view"].input_spec)
        self.model_pre = Preprocessor(self.bundle.models["model"].input_spec)
        self.shared_input = self.view_pre.key == self.model_pre.key  # preprocess once, feed both
        # The decode serves the model with the larger JPEG draft size (None: full size, the largest) first.
        self._first, self._second = sorted((self.model_pre, self.view_pre),
                                           key=lambda p: -(p.draft or 10**9))
        self.view_labels = self.bundle.models["view"].labels
        self.labels = self.bundle.models["model"].labels
        if len(self.labels) < 2 or len(self.view_labels) < 2:
            raise CarscopeError("the bundle's models need at least two labels each")
        self.interior_index = self.view_labels.index("interior") if "interior" in self.view_labels else None
        self.other_index = self.view_labels.index(OTHER_LABEL) if OTHER_LABEL in self.view_labels else None
        model_entry = self.bundle.models["model"]
        self.ood_meta = model_entry.ood  # None: a bundle made without an OOD check (it still serves)
        self.ood_scorer = model_entry.ood_scorer()

        self.specs = self._load_specs()
        self.hierarchy = Hierarchy.from_specs(self.labels, self.specs, model_entry.levels.get("groups"))
        self.thumb_files = self._thumb_files()
        self.limits = DecodeLimits(max_pixels=self.config.max_pixels)
        self.engine = Engine(self.bundle, providers=self.config.providers, variant=self.config.variant,
                             intra_op_threads=self.config.intra_op_threads, max_batch=self.config.max_batch,
                             workers=self.config.workers, alone=self.config.alone)
        self.batcher: Batcher | None = None
        self.ready = threading.Event()
        self.load_error: str | None = None
        self._closed = False

    # -- start-up ----------------------------------------------------------------------------------------
    def _load_specs(self) -> dict[str, dict[str, Any]]:
        try:
            rows = self.bundle.specs_rows()  # specs.json: no pandas in this process (older bundles: parquet)
        except Exception as exc:
            raise CarscopeError(f"the bundle's specs table cannot be read ({type(exc).__name__})") from None
        if not rows or "model_id" not in rows[0]:
            log.warning("the bundle has no specs table; answers will carry no specifications")
            return {}
        out = {str(row["model_id"]): row for row in rows}
        missing = [label for label in self.labels if label not in out]
        if missing:
            log.warning("%d of %d classes have no specs row (e.g. %s)", len(missing), len(self.labels), missing[0])
        return out

    def _thumb_files(self) -> dict[str, Path]:
        """The example photos the bundle lists: the only files under the bundle the app will ever serve."""
        root = self.bundle.root.resolve()
        files = {}
        for views in self.bundle.meta.get("thumbs", {}).values():
            for paths in views.values():
                for rel in paths:
                    path = (root / rel).resolve()
                    if path.is_relative_to(root) and path.is_file():
                        files[str(rel)] = path
        return files

    def start(self, background: bool | None = None) -> None:
        """Create and warm the sessions, then start the batcher. In the background, errors land in load_error."""
        background = self.config.background_load if background is None else background
        if not background:
            self._load()
            return

        def target():
            try:
                self._load()
            except CarscopeError as exc:  # a usage problem (e.g. --providers cuda without a GPU): the caller reports it
                self.load_error = str(exc)
                log.debug("loading the models failed: %s", exc)
            except Exception as exc:  # reported by /readyz and the CLI; never a silent hang
                self.load_error = f"loading the models failed ({type(exc).__name__}: {exc})"
                log.exception("loading the models failed")

        threading.Thread(target=target, name="carscope-load", daemon=True).start()

    def _load(self) -> None:
        self.engine.load(warmup=self.config.warmup)
        self.batcher = Batcher(self._run_batch, max_batch=self.engine.max_batch, max_wait_ms=self.config.max_wait_ms,
                               on_batch=lambda n, s: self.metrics.batch_size.observe(n), name="carscope-batcher",
                               workers=self.engine.workers, tell_alone=bool(self.engine.alone_models))
        self.batcher.start()
        if self._closed:  # closed while loading
            self.batcher.stop()
            self.engine.close()
            return
        self.ready.set()
        self.metrics.ready.set(1)
        e = self.engine
        variants = ", ".join(f"{k} {v}" for k, v in e.variants.items())
        threads = f"{e.workers} worker(s) x {e.intra_op_threads} thread(s)" + alone_text(e.describe())
        ood = (f"OOD check {self.ood_meta['method']}" if self.ood_scorer is not None else
               "no OOD check: a photo unlike the training photos is judged by its confidence alone (re-export "
               "to add one)")
        log.info("models ready on %s (%s, max batch %d, %s; %s) in %.1f s", ", ".join(e.providers), variants,
                 e.max_batch, threads, ood, e.load_seconds or 0.0)

    def wait_ready(self, timeout: float | None = None) -> bool:
        """True once ready; raises CarscopeError if loading failed."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self.ready.is_set():
            if self._closed:
                return False
            if self.load_error:
                raise CarscopeError(self.load_error)
            if deadline is not None and time.monotonic() > deadline:
                return False
            self.ready.wait(0.05)
        return True

    def close(self) -> None:
        self._closed = True
        self.ready.clear()
        self.metrics.ready.set(0)
        if self.batcher is not None:
            self.batcher.stop()
        self.engine.close()

    # -- the batched forward pass (batcher worker thread) -------------------------------------------------
    def _run_batch(self, items: list[tuple[np.ndarray, np.ndarray | None]], alone: bool = False
                   ) -> list[tuple[np.ndarray, np.ndarray, float | None]]:
        view_x = np.stack([v for v, _ in items])
        model_x = view_x if self.shared_input else np.stack([m for _, m in items])
        timings: dict[str, float] = {}
        view_logits, model_logits, feats = self.engine.infer_all(view_x, model_x, alone=alone, timings=timings)
        self.metrics.inference.labels("view").observe(timings["view"])
        self.metrics.inference.labels("model").observe(timings["model"])
        # the OOD score of the whole batch at once (one matrix product), on the batcher thread
        scores = self.ood_scorer.score(feats).tolist() if self.ood_scorer is not None and feats is not None \
            else [None] * len(items)
        return list(zip(view_logits, model_logits, scores, strict=True))

    # -- one request ---------------------------------------------------------------------------------------
    def predict(self, data: bytes, *, preview: bool = False) -> dict[str, Any]:
        """Upload bytes -> the answer (see docs in carscope/serve/openapi.py). Raises ImageRejected or NotReady."""
        if not self.ready.is_set() or self.batcher is None:
            raise NotReady(self.load_error and "the models failed to load" or "the models are still loading")
        t0 = time.perf_counter()
        # Announce before decoding, so a batch forming now waits for this request rather than leaving without it.
        with self.batcher.announce() as ticket:
            # Decoded once, at the larger of the two models' JPEG draft sizes; the other model reuses those
            # pixels when its own draft scale is the same (nearly always), else gets its own decode.
            decoded = decode_image(data, self.limits, self._first.spec)
            t1 = time.perf_counter()
            first_x = self._first(decoded.image)
            if self.shared_input:  # one tensor for both models (_run_batch feeds view_x to both)
                view_x, model_x = first_x, None
            else:
                image = decoded.image
                if decoded.format in JPEG_FORMATS and decoded.scale != jpeg_scale(*decoded.original_size,
                                                                                  self._second.draft):
                    image = decode_image(data, self.limits, self._second.spec).image
                second_x = self._second(image)
                view_x, model_x = (first_x, second_x) if self._first is self.view_pre else (second_x, first_x)
            t2 = time.perf_counter()
            future = ticket.submit((view_x, model_x))
        try:
            (view_logits, model_logits, ood_score), info = future.result(timeout=self.config.request_timeout_s)
        except FutureTimeout:
            future.cancel()
            raise NotReady("the server is overloaded; try again shortly", code="overloaded") from None
        except BatcherStopped:
            raise NotReady("the server is shutting down", code="shutting_down") from None
        t3 = time.perf_counter()
        self.metrics.queue_wait.observe(info.queue_s)
        result = self._answer(view_logits, model_logits, ood_score)
        if decoded.frames:
            result["notes"].append("The image has several frames; the first one was used.")
        result["image"] = {"format": decoded.format, "width": decoded.size[0], "height": decoded.size[1],
                           "mode": decoded.original_mode}
        if preview:  # the page shows the photo itself: decode it at full size (the API never needs this)
            full = decoded.image if decoded.scale == 1 else decode_image(data, self.limits).image
            result["preview"] = preview_data_uri(full)
        t4 = time.perf_counter()
        result["timings_ms"] = {
            "decode": _ms(t1 - t0), "preprocess": _ms(t2 - t1), "queue": _ms(info.queue_s),
            "inference": _ms(info.run_s), "postprocess": _ms(t4 - t3), "total": _ms(t4 - t0),
        }
        result["batch_size"] = info.size
        self.metrics.predictions.labels("sure" if result["model"]["sure"] else result["model"]["reason"]).inc()
        return result

    def ood_threshold(self) -> float | None:
        """The threshold of the features the served variant returns (int8 carries its own)."""
        return self.bundle.models["model"].ood_threshold(self.engine.variants.get("model", "fp32"))

    def unknown_threshold(self) -> float | None:
        return self.bundle.models["model"].unknown_threshold(self.engine.variants.get("model", "fp32"))

    def _answer(self, view_logits: np.ndarray, model_logits: np.ndarray, ood_score: float | None = None
                ) -> dict[str, Any]:
        """The answer to one photo. Sure only when none of REASONS applies: the view classifier does not call it
        `other` (not a car photo) or interior, the OOD score is within its threshold (else unfamiliar) and within
        the unknown-model one (else a car, but not one known), and some level's calibrated mass reaches
        min_confidence: the model-year, else the model over the years it cannot tell apart, else the make
        (carscope/common/levels.py)."""
        view_probs = softmax(view_logits, self.engine.models["view"].temperature)
        probs = softmax(model_logits, self.engine.models["model"].temperature)
        vi = int(np.argmax(view_probs))
        interior = self.interior_index is not None and vi == self.interior_index
        not_a_car = self.other_index is not None and vi == self.other_index
        k = min(self.config.top_k, len(self.labels))
        order = top_indices(probs, k)
        top = [self.describe_label(self.labels[i], float(probs[i])) for i in order]
        threshold = self.ood_threshold()
        unfamiliar = ood_score is not None and threshold is not None and ood_score > threshold
        unknown_t = self.unknown_threshold()
        unknown = not unfamiliar and ood_score is not None and unknown_t is not None and ood_score > unknown_t
        decision = decide(probs, self.hierarchy, self.config.min_confidence)
        reason = ("not_a_car" if not_a_car else "unfamiliar" if unfamiliar else "interior" if interior
                  else "unknown_model" if unknown else None if decision.level else "low_confidence")
        sure = reason is None
        answer = self.describe_decision(decision, top[0]) if sure else None
        notes = []
        if not_a_car:
            notes.append(NOT_A_CAR_NOTE)
        elif unfamiliar:
            notes.append(UNFAMILIAR_NOTE.format(score=ood_score, threshold=threshold))
        if interior:
            notes.append(INTERIOR_NOTE)
        if reason == "unknown_model":
            notes.append(UNKNOWN_MODEL_NOTE.format(score=ood_score, threshold=unknown_t))
        if reason == "low_confidence":
            notes.append(f"Not sure: not even the make reaches the {self.config.min_confidence:.0%} confidence "
                         f"threshold (the best model-year has {top[0]['confidence']:.0%}). The photo may not show a "
                         "car, or shows a model this service does not know. The candidates are listed instead of "
                         "an answer.")
        elif sure and answer["level"] != "model_year":
            notes.append(f"Answered at the {answer['level'].replace('_', '-')} level: "
                         + ("these model-years look alike in held-out photos, so the photo cannot tell them apart."
                            if answer.get("grouped") else "no single model-year reaches the confidence threshold."))
        if self.ood_scorer is None:
            notes.append(NO_OOD_NOTE)
            ood = {"checked": False, "method": None, "score": None, "threshold": None, "unfamiliar": None}
        else:
            ood = {"checked": True, "method": self.ood_meta["method"], "score": ood_score, "threshold": threshold,
                   "unfamiliar": bool(unfamiliar), "unknown_threshold": unknown_t, "unknown_model": bool(unknown)}
        best = top[0]["label"]
        level = answer["level"] if answer else None
        return {
            "view": {"label": self.view_labels[vi], "confidence": float(view_probs[vi]), "interior": bool(interior),
                     "not_a_car": bool(not_a_car),
                     "probabilities": {lab: float(p) for lab, p in zip(self.view_labels, view_probs, strict=True)}},
            "model": {"sure": bool(sure), "reason": reason, "level": level, "prediction": answer, "top": top,
                      "min_confidence": self.config.min_confidence},
            "ood": ood,
            "specs": self.specs.get(best) if level == "model_year" else None,
            "specs_range": self.specs_range(answer["labels"]) if level == "model" else None,
            "thumbs": self.bundle.thumbs(answer["labels"][0]) if level in ("model_year", "model") else {},
            "notes": notes,
        }

    def describe_decision(self, d, best: dict[str, Any]) -> dict[str, Any]:
        """An answer at its level: what it names, the model-years it covers and its confidence (a probability)."""
        h = self.hierarchy
        labels = [h.labels[i] for i in d.classes]
        out: dict[str, Any] = {"level": d.level, "confidence": d.confidence, "labels": labels}
        if d.level == "model_year":
            return {**best, **out}
        make = h.makes[d.make]
        out["make"] = make
        if d.level == "model":
            out["model"] = h.models[d.model][1]
            years = h.year_range(d.classes)
            out["years"] = list(years) if years else None
            out["name"] = h.model_name(d.classes)
            out["grouped"] = bool(h.group_of is not None and h.group_of[d.classes[0]] >= 0 and
                                  len(d.classes) == len(h.groups[h.group_of[d.classes[0]]]))
        else:
            out["name"] = make
        return out

    def specs_range(self, labels: list[str]) -> dict[str, Any]:
        """The specifications of a range of model-years: what they share, and per year where they differ."""
        rows = [(self.specs.get(lab) or {}) for lab in labels]
        skip = {"model_id", "page_url", "crawled_at", "year", "make", "model"}
        keys = [k for k in dict.fromkeys(k for r in rows for k in r) if k not in skip]
        shared, differ = {}, {}
        for k in keys:
            values = [r.get(k) for r in rows]
            if all(v == values[0] for v in values):
                if values[0] is not None:
                    shared[k] = values[0]
            else:
                differ[k] = {str(r.get("year", lab)): r.get(k) for lab, r in zip(labels, rows, strict=True)}
        return {"shared": shared, "differ": differ}

    def describe_label(self, label: str, confidence: float | None = None) -> dict[str, Any]:
        row = self.specs.get(label, {})
        parts = [row.get("year"), row.get("make"), row.get("model")]
        name = " ".join(str(p) for p in parts if p not in (None, "")) if any(parts) else label.replace("_", " ")
        out: dict[str, Any] = {"label": label, "name": name}
        for key in ("make", "model", "year"):
            if row.get(key) is not None:
                out[key] = row[key]
        if confidence is not None:
            out["confidence"] = confidence
        return out

    def describe(self, offset: int = 0, limit: int = CLASSES_PAGE) -> dict[str, Any]:
        """GET /api/v1/models: `classes` is the page [offset, offset + limit) of the served classes (all of them up
        to CLASSES_PAGE), with `classes_total` and `classes_next`, the next page's offset (None after the last):
        at 19,000 model-years the whole list is 3 MB of JSON per call."""
        total = len(self.labels)
        offset, limit = max(0, offset), max(0, min(limit, CLASSES_PAGE_MAX))
        page = self.labels[offset:offset + limit]
        models = {}
        for key, entry in self.bundle.models.items():
            meta = entry.meta
            models[key] = {
                "task": meta.get("task", key),
                "arch": meta.get("arch"),
                # the model classifier's labels come in the same page as `classes` (19,200 labels: 480 kB a call)
                "labels": entry.labels[offset:offset + limit] if key == "model" else entry.labels,
                "num_classes": len(entry.labels),
                "input": entry.input_spec,
                "temperature": entry.temperature,
                "variants": entry.variants(),
                "variant_metrics": {v: (meta.get("variants", {}).get(v) or {}).get("metrics", {})
                                    for v in entry.variants() if v != "fp32"},
                "metrics": meta.get("metrics", {}),
                "parity": meta.get("parity", {}),
            }
        ood = self.ood_meta
        return {
            "models": models,
            "levels": {"groups": self.hierarchy.group_labels(),
                       "names": [self.hierarchy.model_name(g) for g in self.hierarchy.groups]},
            "ood": ({"checked": True, "method": ood["method"], "threshold": self.ood_threshold(),
                     "unknown_threshold": self.unknown_threshold(), "unknown_tpr": ood.get("unknown_tpr"),
                     "tpr": ood.get("tpr"), "threshold_split": ood.get("threshold_split"),
                     "figures": ood.get("figures", {})} if ood else
                    {"checked": False, "note": NO_OOD_NOTE}),
            "not_a_car_class": self.other_index is not None,
            "classes": [self.describe_label(label) for label in page],
            "classes_total": total, "classes_offset": offset,
            "classes_next": offset + len(page) if offset + len(page) < total else None,
            "serving": {**self.engine.describe(), "ready": self.ready.is_set(), "max_wait_ms": self.config.max_wait_ms,
                        "min_confidence": self.config.min_confidence, "top_k": self.config.top_k,
                        "max_upload_bytes": self.config.max_upload_bytes, "max_pixels": self.config.max_pixels},
            "bundle": {"format_version": self.bundle.meta.get("format_version"),
                       "created_at": self.bundle.meta.get("created_at"), "tools": self.bundle.meta.get("tools", {})},
        }


def top_indices(p: np.ndarray, k: int) -> np.ndarray:
    """The k largest of p, largest first, ties by index: np.argsort(-p, kind="stable")[:k] without sorting all of
    p (a full sort of 19,000 probabilities a request costs more than the answer around it)."""
    n = len(p)
    if k <= 0:
        return np.zeros(0, dtype=np.intp)
    if 4 * k >= n:
        return np.argsort(-p, kind="stable")[:k]
    kth = np.partition(p, n - k)[n - k]  # the k-th largest value
    above = np.flatnonzero(p > kth)
    idx = np.sort(np.concatenate([above, np.flatnonzero(p == kth)[:k - len(above)]]))
    return idx[np.argsort(-p[idx], kind="stable")]


def _ms(seconds: float) -> float:
    return round(seconds * 1000.0, 3)


__all__ = ["Predictor", "NotReady", "ImageRejected", "INTERIOR_NOTE", "NOT_A_CAR_NOTE", "REASONS", "UNKNOWN_MODEL_NOTE"]
