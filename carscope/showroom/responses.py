"""What every showroom page answers with, shared by the server and the layout modules (which the server loads by
name, so they must not import it): the app's state key, HTML and 404 responses, integer query parameters, and the
photo bytes with their ETag.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

from aiohttp import web

from carscope.showroom import pages

if TYPE_CHECKING:
    from carscope.showroom.server import Showroom

SHOWROOM = web.AppKey("showroom", object)



def state_of(request: web.Request) -> Showroom:
    return request.app[SHOWROOM]


def html_response(text: str, status: int = 200, headers: dict | None = None) -> web.Response:
    return web.Response(text=text, status=status, content_type="text/html", charset="utf-8", headers=headers)


def not_found_response(message: str = "Page not found") -> web.Response:
    return html_response(pages.not_found(message), status=404)


def query_int(request: web.Request, name: str, default: int) -> int | None:
    """An integer query parameter (`default` when absent), or None when it is not a number."""
    try:
        return int(request.query.get(name, str(default)))
    except ValueError:
        return None


async def photo_response(request: web.Request, pid: str, width: int, cdn: bool = False) -> web.StreamResponse:
    """The bytes of photo `pid` at `width` (320 or 640), whatever URL a layout gives them; `cdn`: a /cdn/ copy."""
    state = state_of(request)
    p = state.catalog.photos.get(pid)
    if p is None or width not in (320, 640) or (cdn and not p.dup):
        return not_found_response("No such photo")
    data = await state.photo_bytes(pid, width)
    etag = state.etags.get((pid, width))
    if etag is None:
        etag = state.etags[(pid, width)] = '"' + hashlib.sha256(data).hexdigest()[:32] + '"'
    headers = {"ETag": etag, "Cache-Control": "public, max-age=86400, immutable"}
    if etag in request.headers.get("If-None-Match", ""):
        return web.Response(status=304, headers=headers)
    return web.Response(body=data, content_type="image/jpeg", headers=headers)


def base_url(request: web.Request) -> str:
    return f"{request.scheme}://{request.host}"
