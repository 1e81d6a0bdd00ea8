"""carscope: crawl car catalogs, train car-model classifiers, export them to ONNX and serve them.

The package itself is only the command line (`carscope --help`); each stage lives in its own package.
"""

__version__ = "0.1.0"
