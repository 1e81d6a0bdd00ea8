"""`carscope demo`: showroom -> crawl -> train -> export -> serve, on the CPU, on the embedded showroom.

    carscope demo                      # the demo size; then open http://127.0.0.1:8080
    carscope demo --scale tiny --check # a minute-long smoke run that ends with one checked prediction

Every stage runs as its own `carscope` command (so what the demo does is exactly what a user would type) and
writes into --workdir. A stage is recorded in `<workdir>/demo-state.json` only once its command exited 0,
and every command writes its artifact atomically, so a Ctrl-C at any point leaves nothing half-written and
a re-run picks up where it stopped (the crawl resumes; finished stages are reused unless --fresh).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

from carscope.common.servers import ServerProcess

DRAIN_WAIT_S = 12.0  # after Ctrl-C, how long the web app may take to answer its requests in flight (serve --grace 10)
# The scales: the showroom's size and the training budget. "demo" is sized to reach a serving app in well
# under 15 minutes on a 2-core laptop; "tiny" is for the end-to-end test.
# The training recipe at the demo scale is train's own per-task default (carscope/train/options.py), so the demo trains
# exactly what `carscope train` would.
SCALES = {
    "demo": {"makes": 6, "models_per_make": 4, "years": "2022-2023", "photos": 24, "train": []},
    # tiny: a tiny net without heavy augmentation, so a few dozen photos are enough to learn something
    "tiny": {"makes": 2, "models_per_make": 2, "years": "2023-2023", "photos": 20,
             "train": ["--arch", "tinynet", "--img-size", "64", "--epochs", "20", "--batch-size", "8",
                       "--auto-augment", "none", "--min-scale", "0.8", "--color-jitter", "0"]},
}


def add_parser(sub) -> None:
    p = sub.add_parser("demo", help="run the whole pipeline on the embedded showroom", description=__doc__,
                       formatter_class=__import__("argparse").RawDescriptionHelpFormatter)
    p.add_argument("--workdir", default="demo-work", help="where the dataset, runs and bundle go (default: %(default)s)")
    p.add_argument("--scale", choices=sorted(SCALES), default="demo")
    p.add_argument("--fresh", action="store_true", help="start over instead of reusing finished stages")
    p.add_argument("--host", default="127.0.0.1", help="address the web app listens on")
    p.add_argument("--port", type=int, default=8080, help="port of the web app (default: %(default)s; 0: any free port)")
    p.add_argument("--browser", choices=["auto", "always", "never"], default="auto",
                   help="crawl galleries with Chromium (auto: when the site needs it and a browser is present)")
    p.add_argument("--arch", default=None, help="architecture for both classifiers (default: the CPU default)")
    p.add_argument("--check", action="store_true",
                   help="after the app is up, send it one photo, check the answer, stop and exit (0 if right)")
    p.add_argument("--no-serve", action="store_true", help="stop after the export")


def run(args) -> int:
    from carscope.common.errors import CarscopeError

    if not args.no_serve:
        _require_free_port(args.host, args.port)
    work = Path(args.workdir)
    if args.fresh and work.exists():
        shutil.rmtree(work)
    try:
        work.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CarscopeError(f"cannot create work directory {work}: {exc.strerror}") from None
    scale = SCALES[args.scale]
    settings = {"scale": args.scale, "arch": args.arch, **scale}
    state = _State(work / "demo-state.json", settings)

    dataset, view_run, model_run, bundle = work / "dataset", work / "runs" / "view", work / "runs" / "model", work / "bundle"
    t_start = time.perf_counter()
    stages = [
        ("crawl", lambda: _crawl(args, scale, dataset, state)),
        ("train view", lambda: _carscope("train", "view", "--data", dataset, "--out", view_run,
                                         "--device", "cpu", *scale["train"], *_arch(args), fresh_dir=view_run)),
        ("train model", lambda: _carscope("train", "model", "--data", dataset, "--out", model_run,
                                          "--view-run", view_run, "--device", "cpu", *scale["train"], *_arch(args),
                                          fresh_dir=model_run)),
        ("export", lambda: _carscope("export", "--view-run", view_run, "--model-run", model_run, "--data", dataset,
                                     "--out", bundle, "--int8", fresh_dir=bundle)),
    ]
    for i, (name, step) in enumerate(stages, 1):
        if state.done(name):
            _say(f"[{i}/{len(stages) + 1}] {name}: done before, reusing (use --fresh to redo)")
            continue
        _say(f"[{i}/{len(stages) + 1}] {name} ...")
        t0 = time.perf_counter()
        step()
        state.mark(name, seconds=round(time.perf_counter() - t0, 1))
        _say(f"[{i}/{len(stages) + 1}] {name}: finished in {time.perf_counter() - t0:.0f} s")
    _say(f"pipeline ready in {time.perf_counter() - t_start:.0f} s; artifacts under {work}/")
    _summarise(view_run, model_run, bundle)
    if args.no_serve:
        return 0
    _say(f"[{len(stages) + 1}/{len(stages) + 1}] serve")
    return _serve(args, bundle, model_run, dataset)


class _State:
    """Which stages finished, for which settings; a change of settings starts over."""

    def __init__(self, path: Path, settings: dict):
        self.path, self.settings = path, settings
        data = json.loads(path.read_text()) if path.exists() else {}
        if data.get("settings") != settings:
            if data:
                _say("demo settings changed since the last run: starting over")
                for sub in ("dataset", "runs", "bundle"):
                    shutil.rmtree(path.parent / sub, ignore_errors=True)
            data = {"settings": settings, "stages": {}}
        self.data = data

    def done(self, name: str) -> bool:
        return name in self.data["stages"]

    def mark(self, name: str, **info) -> None:
        self.data["stages"][name] = info
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.data, indent=2) + "\n")
        os.replace(tmp, self.path)


def _arch(args) -> list[str]:
    return ["--arch", args.arch] if args.arch else []


def _say(msg: str) -> None:
    print(f"demo: {msg}", flush=True)


def _carscope(*argv, fresh_dir: Path | None = None, check: bool = True) -> int:
    """Run one `carscope` command in a child process; a failure stops the demo with its exit status."""
    from carscope.common.errors import CarscopeError

    if fresh_dir is not None and fresh_dir.exists():  # a stage that did not finish: redo it from scratch
        shutil.rmtree(fresh_dir)
    if fresh_dir is not None:
        fresh_dir.parent.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "carscope", *map(str, argv)]
    proc = subprocess.run(cmd)
    if check and proc.returncode != 0:
        if proc.returncode in (130, -2):
            raise KeyboardInterrupt
        raise CarscopeError(f"`carscope {argv[0]}` failed with exit status {proc.returncode}; see its message above",
                            exit_code=proc.returncode if proc.returncode > 0 else 1)
    return proc.returncode


def _crawl(args, scale: dict, dataset: Path, state: _State) -> None:
    """Start the showroom on a free loopback port, crawl it (resuming an interrupted crawl), stop it."""
    argv = [sys.executable, "-m", "carscope", "showroom", "--port", "0", "--makes", str(scale["makes"]),
            "--models-per-make", str(scale["models_per_make"]), "--years", scale["years"],
            "--photos", str(scale["photos"]), "--seed", "0"]
    with ServerProcess(argv, "the showroom", ready_path="/", ready_timeout=60, stderr="inherit") as showroom:
        base = showroom.url
        _say(f"showroom serving {scale['makes']} makes x {scale['models_per_make']} models x {scale['years']} at {base}")
        resume = ["--resume"] if (dataset / "crawl.sqlite").exists() else []
        _carscope("crawl", "--start-url", base + "/", "--out", dataset, "--browser", args.browser,
                  "--delay", "0", *resume)


def _serve(args, bundle: Path, model_run: Path, dataset: Path) -> int:
    argv = [sys.executable, "-m", "carscope", "serve", "--bundle", str(bundle), "--host", args.host,
            "--port", str(args.port)]
    # the server's own word for its URL, so --port 0 works too; its output is echoed for the user
    with ServerProcess(argv, "the web app", ready_path="/readyz", ready_timeout=120, echo=True,
                       stderr="inherit") as server:
        url, proc = server.url, server.proc
        try:
            _say(f"the web app is up: open {url}/ and upload a car photo")
            _say(f"  try a photo from {dataset}/images/, or the API: curl -F image=@PHOTO.jpg {url}/api/v1/predict")
            if args.check:
                return _check_prediction(url, model_run, dataset)
            _say("Ctrl-C to stop")
            return proc.wait()
        except KeyboardInterrupt:
            # The server got the same Ctrl-C (one process group) and is answering its requests in flight; a
            # SIGTERM now would be its second signal, which stops it at once. So let it finish; a second Ctrl-C
            # cuts it short.
            try:
                proc.wait(DRAIN_WAIT_S)
            except subprocess.TimeoutExpired:
                pass
            return 130


def _check_prediction(url: str, model_run: Path, dataset: Path) -> int:
    """Send every held-out exterior photo of the model run through the app's API and compare the served top-1
    with the label: passes when at least one is right and the served accuracy matches what was measured on
    the same photos (within one photo) for the export the app runs: training's figure for fp32, export's for
    int8, i.e. crawl -> train -> export -> serve agree end to end."""
    import urllib.request

    import pandas as pd

    splits = pd.read_parquet(model_run / "splits.parquet")
    test = splits[splits["split"] == "test"]
    right = sure = sure_right = 0
    for _, row in test.iterrows():
        answer = _post_image(url + "/api/v1/predict", (dataset / row["path"]).read_bytes())
        hit = answer["model"]["top"][0]["label"] == row["label"]
        right += hit
        sure += answer["model"]["sure"]
        # right at its level: the model-year, or among the years (or makes) the answer covers
        sure_right += answer["model"]["sure"] and row["label"] in answer["model"]["prediction"]["labels"]
    report = json.loads((model_run / "report.json").read_text())
    trained, measured_by = _test_top1(report), "training"
    with urllib.request.urlopen(url + "/api/v1/models", timeout=30) as resp:
        models = json.loads(resp.read())
    variant = models["serving"].get("variants", {}).get("model", "fp32")
    if variant != "fp32":
        metrics = models["models"]["model"].get("variant_metrics", {}).get(variant, {})
        if metrics.get("split") == "test" and metrics.get(f"top1_{variant}") is not None:
            trained, measured_by = float(metrics[f"top1_{variant}"]), f"export ({variant})"
    served = right / max(len(test), 1)
    agree = trained is None or abs(served - trained) <= 1 / max(len(test), 1) + 1e-9
    expected = "unknown" if trained is None else f"{trained:.1%}"
    _say(f"check: {right} of {len(test)} held-out photos served right (top-1 {served:.1%}; "
         f"{measured_by} measured {expected}): {'right' if right and agree else 'WRONG'}")
    _say(f"check: {sure} of {len(test)} held-out photos answered sure ({sure / max(len(test), 1):.1%}), "
         f"{sure_right} of them right at their level ({sure_right / max(sure, 1):.1%})")
    refused = _check_not_cars(url)
    return 0 if right and agree and refused else 1


def _check_not_cars(url: str) -> bool:
    """A blank frame, a noise frame and a drawn non-car image (a showroom dealer logo, from a seed the demo's
    showroom does not use) must come back not sure, refused as not a car photo: `not_a_car` (the view classifier)
    or `unfamiliar` (the OOD check; the tiny scale's weak view classifier sometimes leaves a blank frame to it)."""
    import io

    import numpy as np
    from PIL import Image

    from carscope.showroom.offline import non_car_images

    def jpeg(img) -> bytes:
        buf = io.BytesIO()
        img.save(buf, "JPEG", quality=90)
        return buf.getvalue()

    logo = next(data for _, data in non_car_images(makes=1, models_per_make=1, years=(2023, 2023), photos=1,
                                                   seed=4242, others=8, subjects=("logo",)))
    frames = {"blank": jpeg(Image.new("RGB", (640, 480), (0, 0, 0))),
              "noise": jpeg(Image.fromarray(np.random.default_rng(0).integers(0, 256, (480, 640, 3), np.uint8))),
              "drawn logo": logo}
    answers = {name: _post_image(url + "/api/v1/predict", data)["model"] for name, data in frames.items()}
    ok = all(a["reason"] in ("not_a_car", "unfamiliar") for a in answers.values())
    _say("check: not car photos: " + ", ".join(f"{name} {a['reason'] or 'SURE'}" for name, a in answers.items())
         + f": {'right' if ok else 'WRONG'}")
    return ok


def _test_top1(report: dict) -> float | None:
    test = report.get("test", report)
    acc = test.get("top1", test.get("accuracy"))
    return float(acc) if acc is not None else None


def _post_image(url: str, data: bytes) -> dict:
    import urllib.request
    import uuid

    boundary = uuid.uuid4().hex
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"photo.jpg\"\r\n"
            f"Content-Type: image/jpeg\r\n\r\n").encode() + data + f"\r\n--{boundary}--\r\n".encode()
    req = urllib.request.Request(url, data=body, headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.loads(resp.read())


def _summarise(view_run: Path, model_run: Path, bundle: Path) -> None:
    for name, run in (("view", view_run), ("model", model_run)):
        report = run / "report.json"
        if report.exists():
            r = json.loads(report.read_text())
            acc = _test_top1(r)
            if acc is not None:
                _say(f"{name} classifier: test top-1 {acc:.1%} on {r.get('test', r).get('n', '?')} held-out photos")
    meta = bundle / "bundle.json"
    ood = json.loads(meta.read_text())["models"]["model"].get("ood") if meta.exists() else None
    if ood:
        figs = ood.get("figures", {})
        _say(f"OOD check: {ood['method']}, threshold set to keep {ood['tpr']:.0%} of the val photos; it refuses "
             f"{figs.get('test', {}).get('flagged', 0):.1%} of the test photos and "
             f"{figs.get('synthetic', {}).get('flagged', 0):.1%} of {figs.get('synthetic', {}).get('photos', 0)} "
             "synthetic frames")


def _require_free_port(host: str, port: int) -> None:
    from carscope.common.errors import CarscopeError

    if port == 0:  # any free port: nothing to check
        return
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as waitress binds: a TIME_WAIT port is free
        try:
            s.bind((host, port))
        except OSError:
            raise CarscopeError(f"port {port} on {host} is busy; stop what uses it or pass --port") from None
