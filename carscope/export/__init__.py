"""Export trained runs to ONNX and write the serving bundle (see `carscope/export/bundle.py` for the format).

    carscope export --view-run runs/view --model-run runs/model --data dataset --out bundle --int8

In-process: `from carscope.export.pipeline import export_bundle`. Importing this package imports nothing heavy.
"""


def export_bundle(*args, **kwargs):
    """`export.pipeline.export_bundle`, imported when called (it pulls in torch and onnxruntime)."""
    from carscope.export.pipeline import export_bundle as _export_bundle

    return _export_bundle(*args, **kwargs)
