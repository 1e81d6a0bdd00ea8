"""carscope: crawl car catalogs, train car-model classifiers, export them to ONNX and serve them.

The command line is `carscope --help`; each stage lives in its own package. The Python API is one function:

    import carscope
    rec = carscope.load("bundle/")     # carscope/serve/api.py: nothing heavy is imported before this call
    print(rec.predict("car.jpg"))
"""

__version__ = "0.1.0"


def load(bundle, **options):
    """A bundle loaded and warm: `carscope.serve.api.load` (docs/python.md)."""
    from carscope.serve.api import load as _load

    return _load(bundle, **options)
