"""The seed-style server: Flask + torch eager as the original app worked, the baseline `bench serve` compares
`carscope serve` with. A child process of the benchmark, started through carscope/common/servers.py:

    python -m carscope.benchmarks.seed_server --bundle demo-work/bundle --port 0 [--model-run demo-work/runs/model]

One global model loaded at start, each upload saved to one shared file, torchvision transforms per request, one
request at a time (werkzeug, threaded=False). It prints "listening on URL" once bound and answers /readyz.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def seed_argv(bundle, model_run=None) -> list[str]:
    """The command that starts the seed-style server on a free port."""
    argv = [sys.executable, "-m", "carscope.benchmarks.seed_server", "--bundle", str(bundle), "--port", "0"]
    return argv + (["--model-run", str(model_run)] if model_run else [])


def main(argv: list[str]) -> int:
    """Flask + torch eager like the original app: global model loaded at start, one shared upload file,
    torchvision transforms per request, one request at a time (werkzeug, threaded=False)."""
    import argparse
    import tempfile

    p = argparse.ArgumentParser(prog="seed-server")
    p.add_argument("--bundle", required=True)
    p.add_argument("--model-run", default=None)
    p.add_argument("--port", type=int, default=0)
    a = p.parse_args(argv)

    import torch
    from flask import Flask, jsonify, request
    from PIL import Image
    from werkzeug.serving import make_server

    from carscope.export.bundle import load as load_bundle
    from carscope.train.presets import eval_transform

    bundle = load_bundle(a.bundle, verify=False)
    entry = bundle.models["model"]
    model, preprocess, labels = seed_model(entry, a.model_run)
    transform = eval_transform(preprocess)
    specs = bundle.specs()
    upload = Path(tempfile.mkdtemp(prefix="seed-")) / "upload.jpg"  # the seed's single shared file
    app = Flask("seed")

    @app.post("/api/v1/predict")
    def predict():
        request.files["image"].save(upload)
        img = Image.open(upload).convert("RGB")
        with torch.no_grad():
            probs = torch.softmax(model(transform(img).unsqueeze(0)), dim=1)[0]
        conf, idx = probs.topk(min(5, len(labels)))
        top = [{"label": labels[i], "confidence": float(c)} for c, i in zip(conf.tolist(), idx.tolist(), strict=True)]
        row = specs[specs["model_id"] == top[0]["label"]] if "model_id" in specs else specs.iloc[:0]
        return jsonify(model={"top": top}, specs=json.loads(row.to_json(orient="records")))

    @app.get("/readyz")
    def ready():
        return "ok"

    server = make_server("127.0.0.1", a.port, app, threaded=False)
    print(f"listening on http://127.0.0.1:{server.server_port}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


def seed_model(entry, model_run: str | None):
    """The run's checkpoint when there is one; else the bundle's arch with random weights (the same compute)."""
    from carscope.train.models import create_model, model_from_checkpoint

    run = model_run or entry.meta.get("source", {}).get("run")
    if run and Path(run).exists():
        from carscope.train.checkpoint import load_run

        state = load_run(run, task="model")
        return model_from_checkpoint(state), state["preprocess"], list(state["labels"])
    model = create_model(entry.meta.get("arch", ""), len(entry.labels))
    return model.eval(), entry.input_spec, entry.labels


def seed_possible(bundle, model_run: str | None) -> str | None:
    """None if the seed-style server can be built, else why not."""
    from carscope.common.errors import CarscopeError
    from carscope.train.models import check_arch

    run = model_run or bundle.models["model"].meta.get("source", {}).get("run")
    if run and Path(run).exists():
        return None
    try:
        check_arch(str(bundle.models["model"].meta.get("arch")))  # carscope's, torchvision's or a timm name
    except CarscopeError:
        return "no --model-run and the bundle's arch is not one carscope/train/models.py builds"
    return None


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
