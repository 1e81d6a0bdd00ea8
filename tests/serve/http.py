"""A minimal keep-alive HTTP client for serve's tests (the standard library's http.client; no requests)."""

from __future__ import annotations

import http.client
import json
import uuid


def multipart(field: str, data: bytes, filename: str = "photo.jpg", content_type: str = "image/jpeg"):
    boundary = uuid.uuid4().hex
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"; filename=\"{filename}\"\r\n"
            f"Content-Type: {content_type}\r\n\r\n").encode() + data + f"\r\n--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


class Client:
    def __init__(self, url: str, timeout: float = 30):
        host, port = url.removeprefix("http://").split(":")
        self.conn = http.client.HTTPConnection(host, int(port), timeout=timeout)

    def request(self, method: str, path: str, body: bytes | None = None, headers: dict | None = None):
        self.conn.request(method, path, body=body, headers=headers or {})
        resp = self.conn.getresponse()
        data = resp.read()
        return resp.status, dict(resp.getheaders()), data

    def predict(self, image: bytes, path: str = "/api/v1/predict"):
        body, ctype = multipart("image", image)
        status, headers, data = self.request("POST", path, body, {"Content-Type": ctype})
        return status, (json.loads(data) if headers.get("Content-Type", "").startswith("application/json") else data)

    def close(self):
        self.conn.close()
