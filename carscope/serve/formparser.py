"""multipart/form-data parsing for Flask with python-multipart (Starlette's parser) instead of Werkzeug's.

    class MyRequest(flask.Request): form_data_parser_class = FastFormDataParser   # carscope/serve/app.py's InMemoryRequest

Werkzeug 3.1 compiles two regular expressions around each request's boundary. Every upload has a new random
boundary, so Python's regex cache never hits: profiling `carscope serve` under load showed the compile as the
largest cost of a request outside the models and the image decode, held under the GIL. python-multipart finds
boundaries with `bytes.find` and parses the same body about ten times faster. What the app sees is unchanged:
`request.form` and `request.files` (FileStorage objects in memory), Werkzeug's limits on parts and on form
field memory, and a malformed body reads as an empty form (so the app answers 400 "no file", as before).
"""

from __future__ import annotations

import io
from typing import Any

from werkzeug.datastructures import FileStorage, Headers
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.formparser import FormDataParser
from werkzeug.http import parse_options_header

CHUNK = 64 * 1024


class _Part:
    __slots__ = ("headers", "chunks")

    def __init__(self):
        self.headers: list[tuple[str, str]] = []
        self.chunks: list[bytes] = []


class FastFormDataParser(FormDataParser):
    """Werkzeug's FormDataParser with the multipart body parsed by python-multipart, in memory."""

    file_fields: tuple[str, ...] = ("image",)  # parts read as files with or without a filename

    def _parse_multipart(self, stream, mimetype: str, content_length: int | None,
                         options: dict[str, str]) -> tuple[Any, Any, Any]:
        from python_multipart.exceptions import MultipartParseError
        from python_multipart.multipart import MultipartParser

        boundary = options.get("boundary", "").encode("ascii", "replace")
        if not boundary:
            raise ValueError("Missing boundary")
        parts: list[_Part] = []
        state: dict[str, Any] = {"part": None, "field": b"", "value": b""}

        def on_part_begin():
            if self.max_form_parts is not None and len(parts) >= self.max_form_parts:
                raise RequestEntityTooLarge()
            state["part"] = _Part()

        def on_header_field(data, start, end):
            state["field"] += data[start:end]

        def on_header_value(data, start, end):
            state["value"] += data[start:end]

        def on_header_end():
            state["part"].headers.append((state["field"].decode("latin-1"), state["value"].decode("latin-1")))
            state["field"], state["value"] = b"", b""

        def on_part_data(data, start, end):
            state["part"].chunks.append(data[start:end])

        def on_part_end():
            parts.append(state["part"])
            state["part"] = None

        parser = MultipartParser(boundary, {
            "on_part_begin": on_part_begin, "on_header_field": on_header_field, "on_header_value": on_header_value,
            "on_header_end": on_header_end, "on_part_data": on_part_data, "on_part_end": on_part_end,
        })
        try:
            while True:
                chunk = stream.read(CHUNK)
                if not chunk:
                    break
                parser.write(chunk)
            parser.finalize()
        except MultipartParseError as exc:
            raise ValueError(f"malformed multipart body ({exc})") from None
        last = state["part"]
        if last is not None and b"".join(last.chunks).rstrip(b"\r\n") == b"--" + boundary + b"--":
            # An empty file as Werkzeug's own encoder writes it: the closing boundary right after the part's
            # headers, sharing their CRLF. Werkzeug reads that as an empty part; so do we. Any other part still
            # open here is a truncated body, and is dropped.
            last.chunks = []
            parts.append(last)

        form, files = [], []
        for part in parts:
            headers = Headers(part.headers)
            disposition, params = parse_options_header(headers.get("Content-Disposition"))
            name = params.get("name")
            if disposition != "form-data" or name is None:
                continue
            data = b"".join(part.chunks)
            # A file field sent without a filename (`curl -F image=<photo.jpg` sends the photo as a plain form
            # value) is still the file: its bytes are kept as they came, never decoded as text.
            if "filename" in params or name in self.file_fields:
                files.append((name, FileStorage(io.BytesIO(data), filename=params.get("filename", ""), name=name,
                                                headers=headers)))
            else:
                if self.max_form_memory_size is not None and len(data) > self.max_form_memory_size:
                    raise RequestEntityTooLarge()
                form.append((name, data.decode("utf-8", "replace")))  # what browsers send forms in
        return stream, self.cls(form), self.cls(files)

