"""Tiny runs for the export tests, made directly (no `carscope train`): a dataset of drawn JPEGs, and two
tinynet runs trained for a few seconds on it so that their predictions mean something (int8 accuracy is only
a fair test on a model that has learnt the classes)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from carscope.crawler import dataset as dsmod

MODELS = ["2023_acme_roadster", "2023_acme_hauler", "2023_bolt_zip"]
IMG = 32  # crop; tinynet's four stride-2 blocks leave 2x2 at this size
PER_VIEW = {"exterior": 16, "interior": 10, "unknown": 4}  # per model-year


def _draw(rng, model_idx: int, view: str):
    """Exterior: light sky, a body whose colour says the model. Interior: dark cabin, a coloured dash strip."""
    from PIL import Image

    h, w = 48, 64
    colours = [(220, 40, 40), (40, 180, 60), (50, 80, 230)]
    c = np.array(colours[model_idx % len(colours)], dtype=np.float64)
    if view == "interior" or (view == "unknown" and rng.random() < 0.5):
        img = np.full((h, w, 3), 30.0) + rng.normal(0, 6, (h, w, 3))
        img[int(h * 0.55):int(h * 0.7), :] = c * 0.8
    else:
        img = np.full((h, w, 3), [170.0, 200.0, 235.0]) + rng.normal(0, 6, (h, w, 3))
        x0 = int(rng.integers(4, 16))
        img[int(h * 0.4):int(h * 0.8), x0:x0 + 40] = c
    return Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))


def make_dataset(root: Path, models=MODELS, seed: int = 0) -> Path:
    """A dataset in the crawl format (carscope/crawler/dataset.py): specs, images table and content-addressed JPEGs."""
    import hashlib
    import io

    rng = np.random.default_rng(seed)
    root.mkdir(parents=True)
    specs, images = [], []
    for mi, model_id in enumerate(models):
        year, make, *name = model_id.split("_")
        specs.append({"model_id": model_id, "make": make.title(), "model": " ".join(name).title(),
                      "year": int(year), "msrp_usd": 20000 + 1000 * mi, "body_style": "Sedan", "seats": 5})
        for view, n in PER_VIEW.items():
            for _ in range(n):
                buf = io.BytesIO()
                _draw(rng, mi, view).save(buf, "JPEG", quality=90)
                data = buf.getvalue()
                sha = hashlib.sha256(data).hexdigest()
                rel = dsmod.image_relpath(sha)
                (root / rel).parent.mkdir(parents=True, exist_ok=True)
                (root / rel).write_bytes(data)
                images.append({"sha256": sha, "path": rel, "model_id": model_id, "view_hint": view, "width": 64,
                               "height": 48, "bytes": len(data), "source_url": f"http://x/{sha}.jpg",
                               "page_url": "http://x/", "crawled_at": "2024-01-01T00:00:00Z"})
    dsmod.write_table(pd.DataFrame(specs), root / dsmod.SPECS_FILE)
    dsmod.write_table(pd.DataFrame(images), root / dsmod.IMAGES_FILE)
    return root


def make_run(run_dir: Path, task: str, data: Path, *, steps: int = 60, seed: int = 0, **overrides) -> Path:
    """A run in the train format (carscope/train/checkpoint.py): best.pt, splits.parquet, config.json."""
    import torch

    from carscope.export.photos import batches
    from carscope.train import checkpoint
    from carscope.train.models import create_model

    torch.manual_seed(seed)
    images = dsmod.load(data).images
    if task == "view":
        images = images[images["view_hint"].isin(checkpoint.VIEW_LABELS)]
        labels = list(checkpoint.VIEW_LABELS)
        label_col = images["view_hint"].astype(str)
    else:  # like train: the model-year classifier learns from exterior (and unlabelled) photos only
        images = images[images["view_hint"] != "interior"]
        labels = sorted(images["model_id"].astype(str).unique())
        label_col = images["model_id"].astype(str)
    rng = np.random.default_rng(seed)
    split = np.where(rng.random(len(images)) < 0.6, "train", np.where(rng.random(len(images)) < 0.3, "val", "test"))
    splits = pd.DataFrame({"sha256": images["sha256"].astype(str).to_numpy(),
                           "path": images["path"].astype(str).to_numpy(), "label": label_col.to_numpy(),
                           "split": split, "source": "crawl"})
    spec = checkpoint.make_preprocess_spec(IMG)
    model = create_model("tinynet", len(labels), dropout=0.0)
    if steps:
        train = splits[splits["split"] == "train"]
        x = torch.from_numpy(np.concatenate(list(batches([str(data / p) for p in train["path"]], spec, 64))))
        y = torch.tensor([labels.index(v) for v in train["label"]])
        opt = torch.optim.Adam(model.parameters(), lr=1e-2)
        model.train()
        for _ in range(steps):
            idx = torch.randint(0, len(x), (32,))
            loss = torch.nn.functional.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    model.eval()
    run_dir.mkdir(parents=True)
    state = {"format_version": checkpoint.FORMAT_VERSION, "task": task, "arch": "tinynet",
             "arch_kwargs": {"dropout": 0.0}, "labels": labels, "preprocess": spec, "temperature": 1.5,
             "model": model.state_dict(), "epoch": 0, "args": {"data": str(data)},
             "metrics": {"val_top1": 0.9, "val_loss": 0.3}}
    state.update(overrides)
    checkpoint.save(state, run_dir / "best.pt")
    dsmod.write_table(splits, run_dir / "splits.parquet", columns={})
    (run_dir / "config.json").write_text(json.dumps({"task": task, "data": str(data), "arch": "tinynet"}))
    return run_dir


@pytest.fixture(scope="session", autouse=True)
def _modest_threads():
    import torch

    torch.set_num_threads(1)  # the machine is shared; one thread also avoids OpenMP stalls under load


@pytest.fixture(scope="session")
def tiny(tmp_path_factory):
    """(dataset, view run, model run), shared by the whole session (read-only)."""
    root = tmp_path_factory.mktemp("tiny")
    data = make_dataset(root / "dataset")
    return data, make_run(root / "runs" / "view", "view", data), make_run(root / "runs" / "model", "model", data)


@pytest.fixture(scope="session")
def bundle(tiny, tmp_path_factory):
    """One export with every variant asked for, shared read-only by the tests that inspect a bundle."""
    from carscope.export.pipeline import export_bundle

    data, view, model = tiny
    out = tmp_path_factory.mktemp("export") / "bundle"
    logs: list[str] = []
    export_bundle(view, model, data, out, int8=True, fp16=True, log=logs.append)
    return out, logs
