"""serve/formparser.py: python-multipart behind Flask's request.files/request.form, with Werkzeug's limits."""

from __future__ import annotations

import io
import os

import pytest
from werkzeug.exceptions import RequestEntityTooLarge

from serve import formparser
from serve.formparser import FastFormDataParser

BOUNDARY = "b0undary-7f3a"


def body(*parts: tuple[str, str | None, bytes], boundary: str = BOUNDARY) -> bytes:
    out = b""
    for name, filename, data in parts:
        disp = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename is not None else "")
        ctype = "Content-Type: image/jpeg\r\n" if filename is not None else ""
        out += f"--{boundary}\r\nContent-Disposition: {disp}\r\n{ctype}\r\n".encode() + data + b"\r\n"
    return out + f"--{boundary}--\r\n".encode()


def parse(raw: bytes, parser: FastFormDataParser | None = None, boundary: str = BOUNDARY):
    parser = parser or FastFormDataParser()
    _, form, files = parser.parse(io.BytesIO(raw), "multipart/form-data", len(raw), {"boundary": boundary})
    return form, files


@pytest.mark.parametrize("chunk", [1, 7, 4096, 1 << 20])
def test_file_and_fields_survive_any_chunking(monkeypatch, chunk):
    monkeypatch.setattr(formparser, "CHUNK", chunk)
    photo = os.urandom(3000) + b"\r\n--" + BOUNDARY[:-1].encode() + b"\r\n" + os.urandom(100)  # near-boundaries
    form, files = parse(body(("note", None, "café".encode()), ("image", "car.jpg", photo)))
    assert form["note"] == "café"
    storage = files["image"]
    assert storage.filename == "car.jpg" and storage.mimetype == "image/jpeg" and storage.read() == photo


def test_truncated_body_has_no_file():
    raw = body(("image", "car.jpg", b"x" * 500))
    assert parse(raw[:300])[1] == {}  # the part never ended: dropped, and the app answers 400 "no file"


def test_garbage_reads_as_an_empty_form():
    assert parse(b"this is not multipart at all") == ({}, {})


def test_empty_file_from_werkzeugs_encoder():
    raw = (f"\r\n--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"a.jpg\"\r\n"
           f"Content-Type: image/jpeg\r\n\r\n--{BOUNDARY}--\r\n").encode()
    assert parse(raw)[1]["image"].read() == b""


def test_werkzeug_limits_hold():
    many = body(*[(f"f{i}", None, b"v") for i in range(5)])
    with pytest.raises(RequestEntityTooLarge):
        parse(many, FastFormDataParser(max_form_parts=3))
    with pytest.raises(RequestEntityTooLarge):
        parse(body(("note", None, b"v" * 100)), FastFormDataParser(max_form_memory_size=50))
    assert parse(body(("image", "a.jpg", b"v" * 100)), FastFormDataParser(max_form_memory_size=50))[1]  # files: no
