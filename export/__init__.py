"""Export trained runs to ONNX and write the serving bundle (see `export/bundle.py` for the format)."""
