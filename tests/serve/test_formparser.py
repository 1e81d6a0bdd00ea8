"""carscope/serve/formparser.py: python-multipart behind Flask's request.files/request.form, with Werkzeug's limits."""

from __future__ import annotations

import io
import os

import pytest
from werkzeug.exceptions import RequestEntityTooLarge

from carscope.serve import formparser
from carscope.serve.formparser import FastFormDataParser

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


# -- the limits and part rules at their edges, for `make mutate` of carscope/serve/formparser.py ---------------------------
def test_part_and_memory_limits_at_their_edges():
    three = body(*[(f"f{i}", None, b"v") for i in range(3)])
    assert len(parse(three, FastFormDataParser(max_form_parts=3))[0]) == 3  # exactly the limit: read
    with pytest.raises(RequestEntityTooLarge):
        parse(body(*[(f"f{i}", None, b"v") for i in range(4)]), FastFormDataParser(max_form_parts=3))
    assert parse(body(("note", None, b"v" * 50)), FastFormDataParser(max_form_memory_size=50))[0]["note"] == "v" * 50
    with pytest.raises(RequestEntityTooLarge):
        parse(body(("note", None, b"v" * 51)), FastFormDataParser(max_form_memory_size=50))
    unlimited = FastFormDataParser(max_form_parts=None, max_form_memory_size=None)
    assert len(parse(body(*[(f"f{i}", None, b"v" * 1000) for i in range(50)]), unlimited)[0]) == 50


def test_which_parts_are_files_and_which_are_fields():
    raw = body(("image", None, b"\xff\xd8raw photo"), ("other", "x.bin", b"\x00\x01"), ("note", None, b"hi \xff"))
    form, files = parse(raw)
    assert files["image"].read() == b"\xff\xd8raw photo" and files["image"].filename == ""  # no filename sent
    assert files["other"].filename == "x.bin" and files["other"].read() == b"\x00\x01"
    assert dict(form) == {"note": "hi \ufffd"}  # fields are text; bad UTF-8 replaced, not an error
    assert FastFormDataParser.file_fields == ("image",)


def test_parts_without_a_name_or_form_data_are_skipped_not_the_end():
    raw = (f"--{BOUNDARY}\r\nContent-Disposition: form-data\r\n\r\nnameless\r\n"
           f"--{BOUNDARY}\r\nContent-Disposition: attachment; name=\"att\"\r\n\r\nnot form data\r\n"
           f"--{BOUNDARY}\r\nX-Other: 1\r\n\r\nno disposition\r\n"
           f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nkept\r\n"
           f"--{BOUNDARY}--\r\n").encode()
    form, files = parse(raw)
    assert dict(form) == {"note": "kept"} and dict(files) == {}


def test_empty_or_odd_bodies_and_boundaries():
    assert parse(b"") == ({}, {})
    assert parse(body(("note", None, b"v")), boundary="bö") == ({}, {})  # a non-ASCII boundary: no match, no error
    with pytest.raises(ValueError, match="Missing boundary"):
        FastFormDataParser()._parse_multipart(io.BytesIO(b"x"), "multipart/form-data", 1, {})
    assert parse(body(("note", None, b"v")), boundary="") == ({}, {})  # Werkzeug reads the error as an empty form


@pytest.mark.parametrize("chunk", [1, 3, 1 << 16])
def test_empty_file_from_werkzeugs_encoder_in_any_chunking(monkeypatch, chunk):
    monkeypatch.setattr(formparser, "CHUNK", chunk)
    raw = (f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nv\r\n"
           f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"a.jpg\"\r\n"
           f"Content-Type: image/jpeg\r\n\r\n--{BOUNDARY}--\r\n").encode()
    form, files = parse(raw)
    assert files["image"].read() == b"" and files["image"].filename == "a.jpg" and form["note"] == "v"


def test_a_file_that_looks_like_the_closing_boundary_is_kept():
    data = f"--{BOUNDARY}--".encode()
    form, files = parse(body(("image", "a.jpg", data)))
    assert files["image"].read() == data and len(files.getlist("image")) == 1
