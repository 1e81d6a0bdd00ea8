"""Serve a bundle through onnxruntime in a Flask app run by waitress (`carscope serve`). Never imports torch."""
