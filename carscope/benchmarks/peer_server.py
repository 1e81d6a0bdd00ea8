"""The peer: a FastAPI + uvicorn + onnxruntime server in one file, as a competent user would write it to serve a
bundle. `carscope bench serve` measures `carscope serve` against it in the same run.

    python -m carscope.benchmarks.peer_server --bundle demo-work/bundle --port 0 [--variant int8]
    curl -F image=@car.jpg http://127.0.0.1:PORT/api/v1/predict

One process, uvicorn's defaults (its event loop, its HTTP parser, its access log), FastAPI's thread pool for the
blocking endpoint (a plain `def`, as FastAPI's documentation says for blocking work). The bundle's view and model
sessions (onnxruntime's default session options, the same variant as serve runs) are loaded once at start. Each
upload is decoded with Pillow, preprocessed per the bundle's recorded spec (JPEG draft when the spec asks for
it, shorter side resized with its interpolation, centre crop, mean/std), then the view model and the model
classifier run at batch 1 and the answer is JSON with the calibrated top classes. No OOD check, no specs, no
batching, no limits: what a first server does. It prints "listening on URL" once bound and answers /readyz, like
every server carscope/common/servers.py starts.
"""

# No `from __future__ import annotations`: FastAPI reads the endpoint's annotations (UploadFile) at definition.
import sys


def peer_argv(bundle, variant: str = "auto") -> list[str]:
    """The command that starts the peer on a free port."""
    return [sys.executable, "-m", "carscope.benchmarks.peer_server", "--bundle", str(bundle), "--port", "0",
            "--variant", variant]


def load_models(bundle_dir, variant: str = "auto"):
    """{"view"|"model": (session, input name, logits output name, labels, temperature, input spec)}."""
    import onnxruntime as ort

    from carscope.export.bundle import load as load_bundle

    bundle = load_bundle(bundle_dir, verify=False)
    models = {}
    for key in ("view", "model"):
        entry = bundle.models[key]
        int8 = entry.meta.get("variants", {}).get("int8")
        chosen = variant if variant in entry.variants() else "fp32"  # the view model may have no int8 export
        if variant == "auto":
            chosen = "int8" if int8 and not int8.get("forced") else "fp32"  # serve's rule on the CPU
        session = ort.InferenceSession(str(entry.path(chosen)), providers=["CPUExecutionProvider"])
        models[key] = (session, session.get_inputs()[0].name, session.get_outputs()[0].name, entry.labels,
                       entry.temperature, entry.input_spec)
    return models


def preprocess(data: bytes, spec: dict):
    """Upload bytes -> (1, 3, crop, crop) float32, per the bundle's spec."""
    import io

    import numpy as np
    from PIL import Image, ImageOps

    image = Image.open(io.BytesIO(data))
    size = int(spec["resize"])
    if spec.get("jpeg_draft") and image.format == "JPEG":
        image.draft("RGB", (size, size))
    image = ImageOps.exif_transpose(image).convert("RGB")
    w, h = image.size
    scale = size / min(w, h)
    image = image.resize((max(size, int(w * scale)), max(size, int(h * scale))),
                         getattr(Image.Resampling, str(spec.get("interpolation", "bilinear")).upper()))
    crop = spec["crop"] if isinstance(spec["crop"], int) else spec["crop"][0]
    left, top = (image.width - crop) // 2, (image.height - crop) // 2
    image = image.crop((left, top, left + crop, top + crop))
    x = (np.asarray(image, dtype=np.float32) / 255.0 - np.asarray(spec["mean"], np.float32)) / np.asarray(
        spec["std"], np.float32)
    return x.transpose(2, 0, 1)[None].copy()


def create_app(models, top_k: int = 5):
    import numpy as np
    from fastapi import FastAPI, File, UploadFile

    app = FastAPI(title="peer")

    def classify(key: str, x) -> list[dict]:
        session, inp, out, labels, temperature, _ = models[key]
        logits = session.run([out], {inp: x})[0][0].astype(np.float64) / temperature
        p = np.exp(logits - logits.max())
        p /= p.sum()
        order = np.argsort(-p)[:top_k]
        return [{"label": labels[i], "confidence": float(p[i])} for i in order]

    @app.post("/api/v1/predict")
    def predict(image: UploadFile = File(...)):
        data = image.file.read()
        view_spec, model_spec = models["view"][5], models["model"][5]
        xv = preprocess(data, view_spec)
        xm = xv if model_spec == view_spec else preprocess(data, model_spec)
        view = classify("view", xv)
        return {"view": view[0], "model": {"top": classify("model", xm)}}

    @app.get("/readyz")
    def ready():
        return {"status": "ready"}

    return app


def main(argv: list[str]) -> int:
    import argparse
    import socket

    import uvicorn

    p = argparse.ArgumentParser(prog="peer-server")
    p.add_argument("--bundle", required=True)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--variant", default="auto", choices=("auto", "fp32", "int8"))
    a = p.parse_args(argv)
    app = create_app(load_models(a.bundle, a.variant))
    # Bound here, so that --port 0 can say which port it got. proto=IPPROTO_TCP as uvicorn's own bind gets it from
    # getaddrinfo: asyncio sets TCP_NODELAY only on such sockets, and without it every answer waited ~40 ms for a
    # delayed ACK (Nagle).
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((a.host, a.port))
    sock.listen(2048)  # uvicorn's default backlog
    print(f"listening on http://{a.host}:{sock.getsockname()[1]}", flush=True)
    uvicorn.Server(uvicorn.Config(app)).run(sockets=[sock])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
