"""`carscope predict`'s rows: one photo's answer as a flat row, and the answers of many photos in input order. Shared
by the local engine (carscope/serve/predict_cli.py) and the Ray actors (carscope/serve/predict_ray.py).

    python -c "from pathlib import Path; from carscope.serve.rows import row_for; print(list(row_for(Path(), None, None, 3)))"
"""

from __future__ import annotations

from pathlib import Path

WINDOW_PER_JOB = 4  # photos submitted ahead per job: enough to keep batches full, few enough to stream in order


def row_for(path: Path, result: dict | None, error: tuple[str, str] | None, top_k: int) -> dict:
    """One output row: the photo, its view, the answer (`sure`, its `level`, its name and confidence, or the
    `reason` when not sure), the top-1 model-year (with make, model, year), the OOD score and threshold (None for a bundle without an OOD check) and the top-k."""
    row = {"path": str(path), "ok": error is None, "error_code": error[0] if error else None,
           "error": error[1] if error else None}
    view = (result or {}).get("view") or {}
    model = (result or {}).get("model") or {}
    top = model.get("top") or []
    best = top[0] if top else {}
    row.update({
        "view": view.get("label"), "view_confidence": view.get("confidence"), "interior": view.get("interior"),
        "sure": model.get("sure"), "reason": model.get("reason"), "level": model.get("level"),
        "answer": (model.get("prediction") or {}).get("name"),
        "answer_confidence": (model.get("prediction") or {}).get("confidence"), "label": best.get("label"),
        "name": best.get("name"), "make": best.get("make"),
        "model": best.get("model"), "year": best.get("year"), "confidence": best.get("confidence"),
    })
    ood = (result or {}).get("ood") or {}
    row.update({"ood_score": ood.get("score"), "ood_threshold": ood.get("threshold")})
    for i in range(top_k):
        cand = top[i] if i < len(top) else {}
        row[f"top{i + 1}_label"] = cand.get("label")
        row[f"top{i + 1}_confidence"] = cand.get("confidence")
    return row


def predict_rows(recognizer, photos: list[Path], jobs: int):
    """(path, the app's answer as a dict, error) for each photo, in order, with `jobs` photos in flight, through
    the Python API's Recognizer (carscope/serve/api.py)."""
    from collections import deque
    from concurrent.futures import ThreadPoolExecutor

    from carscope.serve.api import PhotoRejected

    def one(path: Path):
        try:
            data = path.read_bytes()
        except OSError as exc:
            return path, None, ("unreadable", f"cannot read the file ({exc.strerror or type(exc).__name__})")
        try:  # an empty file too: the decoder refuses it (empty_file)
            return path, recognizer.predict(data).to_dict(), None
        except PhotoRejected as exc:
            return path, None, (exc.code, str(exc))

    window: deque = deque()
    pool = ThreadPoolExecutor(jobs, thread_name_prefix="carscope-predict")
    try:
        for path in photos:
            window.append(pool.submit(one, path))
            if len(window) >= WINDOW_PER_JOB * jobs:
                yield window.popleft().result()
        while window:
            yield window.popleft().result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
