"""`carscope export`: two trained runs -> a checked ONNX serving bundle.

    carscope export --view-run runs/view --model-run runs/model --data dataset --out bundle --int8

Exits 0 with the bundle written, 2 on bad input (one line), 1 when the exported graph does not match PyTorch
(the parity numbers in the message). Nothing is left at --out unless the export succeeded. An int8 variant
that costs more than 1 point of test top-1 is left out of the bundle (the numbers printed and recorded in
bundle.json under "refused"); --force keeps it.
"""

from __future__ import annotations

import argparse


def add_parser(sub) -> None:
    p = sub.add_parser("export", help="export trained runs to an ONNX bundle", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--view-run", required=True, help="run directory of `carscope train view`")
    p.add_argument("--model-run", required=True, help="run directory of `carscope train model`")
    p.add_argument("--data", required=True, help="the dataset the runs were trained on (the model run's)")
    p.add_argument("--view-data", default=None, metavar="DATASET",
                   help="the view run's dataset, when it is another one (e.g. an import of exterior photos only, "
                        "with a view run trained on a crawl); default: --data")
    p.add_argument("--out", required=True, help="bundle directory to write (an earlier bundle there is replaced)")
    p.add_argument("--int8", action="store_true", help="also write static-QDQ int8 variants (CPU); left out when top-1 drops > 1 point")
    p.add_argument("--fp16", action="store_true", help="also write float16 variants (CUDA provider)")
    p.add_argument("--force", action="store_true",
                   help="keep an int8/fp16 variant even when it costs more accuracy than allowed")
    p.add_argument("--opset", type=int, default=None, help="ONNX opset (default 18; at least 18)")
    p.add_argument("--eval-photos", type=int, default=1000,
                   help="at most this many test-split photos for parity and int8 accuracy (default: %(default)s)")
    p.add_argument("--calib-photos", type=int, default=128,
                   help="train-split photos to calibrate int8 on, at least 100 (default: %(default)s)")
    p.add_argument("--thumbs", type=int, default=3,
                   help="thumbnails per class and view, fewer when the classes would need more than --thumbs-max "
                        "(default: %(default)s)")
    p.add_argument("--thumbs-max", type=int, default=20_000, metavar="N",
                   help="thumbnails in the bundle at most; past N/2 classes, one exterior photo each "
                        "(default: %(default)s)")
    p.add_argument("--ood", choices=["auto", "mahalanobis", "knn", "none"], default="auto",
                   help="the model classifier's out-of-distribution score, fitted on its train-split features "
                        "(auto: the better of the two on synthetic frames; none: no OOD check)")
    p.add_argument("--ood-tpr", type=float, default=0.98, metavar="RATE",
                   help="share of held-out in-distribution photos the OOD threshold keeps (default: %(default)s)")
    p.add_argument("--unknown-tpr", type=float, default=0.90, metavar="RATE",
                   help="share of held-out photos of known model-years the unknown-model threshold keeps: a car photo "
                        "scoring above it is answered 'a car, but not one I know' (0: no such check; default: "
                        "%(default)s)")
    p.add_argument("--no-levels", action="store_true",
                   help="do not look for model-years the classifier cannot tell apart (every answer names a model-year "
                        "or nothing)")
    p.add_argument("--exporter", choices=["auto", "dynamo", "torchscript"], default="auto",
                   help="ONNX exporter (auto: dynamo, falling back to TorchScript with the reason recorded)")


def run(args) -> int:
    from carscope.export.pipeline import export_bundle

    export_bundle(args.view_run, args.model_run, args.data, args.out, view_data=args.view_data, int8=args.int8,
                  fp16=args.fp16,
                  force=args.force, opset=args.opset, eval_photos=args.eval_photos,
                  calib_photos=args.calib_photos, thumbs_per_view=args.thumbs, thumbs_max=args.thumbs_max,
                  exporter=args.exporter,
                  ood_method=args.ood, ood_tpr=args.ood_tpr, unknown_tpr=args.unknown_tpr or None,
                  levels=not args.no_levels, log=lambda msg: print(msg, flush=True))
    return 0
