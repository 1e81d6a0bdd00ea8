"""The HTTP fetcher: one aiohttp session, every request through the politeness gate, bodies streamed with a cap.

    python - <<'EOF'
    import asyncio
    from carscope.crawler.config import CrawlConfig; from carscope.crawler.fetch import HttpFetcher; from carscope.crawler.politeness import Politeness
    async def main():
        cfg = CrawlConfig("http://127.0.0.1:8700/", "dataset")
        async with HttpFetcher(cfg, Politeness(cfg, {"127.0.0.1:8700"})) as http:
            print((await http.fetch_retrying("http://127.0.0.1:8700/", kind="page")).status)
    asyncio.run(main())
    EOF

`fetch()` makes one attempt (following redirects itself, each hop checked for scope and robots.txt and
counted against its host) and returns a `Response` whose `error` is a short reason instead of raising:
failures are values here, the frontier decides what they mean through `Politeness.classify`.
"""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import dataclass, field

from carscope.crawler.politeness import Politeness, parse_retry_after
from carscope.crawler.urls import canonicalize

ACCEPT = {
    "page": ("text/html", "application/xhtml+xml"),
    "image": ("image/", "application/octet-stream", "binary/octet-stream"),  # CDNs often say octet-stream;
    # the decoder is the real check
    "json": ("application/json", "text/json", "+json", "text/plain", "text/javascript"),
    "sitemap": (),  # XML, gzip, text/plain: the parser (its magic bytes, its root element) is the check
    "robots": (),  # anything goes: many servers send robots.txt as text/html or octet-stream
    "asset": (),
    "xhr": (),  # a page script's fetch(): JSON, an HTML fragment, text: the script decides
}
ACCEPT_HEADER = {
    "page": "text/html,application/xhtml+xml;q=0.9,*/*;q=0.5",
    "image": "image/avif,image/webp,image/jpeg,image/png,image/*;q=0.8",
    "json": "application/json,*/*;q=0.5",
    "robots": "text/plain,*/*;q=0.5",
    "sitemap": "application/xml,text/xml,application/gzip;q=0.9,*/*;q=0.5",
    "asset": "*/*",
    "xhr": "*/*",
}
CHUNK = 64 * 1024


@dataclass
class Response:
    url: str  # what was asked for
    final_url: str  # after redirects
    status: int | None = None
    headers: dict[str, str] = field(default_factory=dict)  # lower-case names
    body: bytes | None = None
    error: str | None = None  # short reason when the attempt failed below HTTP or was refused
    retry_after: float | None = None
    sha256: str | None = None  # of the body, computed while streaming (images)
    redirects: int = 0

    @property
    def ok(self) -> bool:
        return self.error is None and self.status is not None and 200 <= self.status < 300

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "").split(";")[0].strip().lower()

    def text(self) -> str:
        """The body as text, in the charset its Content-Type names (UTF-8 otherwise), bad bytes replaced."""
        return (self.body or b"").decode(charset(self.headers.get("content-type", "")), errors="replace")


def charset(content_type: str) -> str:
    """The codec a Content-Type header names (`text/html; charset=ISO-8859-1` -> iso8859-1), UTF-8 otherwise."""
    import codecs

    for part in content_type.split(";")[1:]:
        k, _, v = part.strip().partition("=")
        if k.lower() == "charset" and v:
            try:
                return codecs.lookup(v.strip().strip('"')).name
            except LookupError:
                break
    return "utf-8"


class HttpFetcher:
    """Async context manager owning the aiohttp session."""

    def __init__(self, config, politeness: Politeness, *, counters: dict | None = None):
        self.config = config
        self.politeness = politeness
        self.session = None
        self.counters = counters if counters is not None else {}

    async def __aenter__(self) -> HttpFetcher:
        import aiohttp

        timeout = aiohttp.ClientTimeout(total=self.config.timeout, connect=self.config.connect_timeout,
                                        sock_read=self.config.timeout)
        # the connector's own limits stay above the gate's, so the gate is the only place that queues
        connector = aiohttp.TCPConnector(limit=self.config.concurrency + 8, limit_per_host=0,
                                         ttl_dns_cache=300, enable_cleanup_closed=True)
        self.session = aiohttp.ClientSession(timeout=timeout, connector=connector, auto_decompress=True,
                                             headers={"User-Agent": self.config.user_agent}, trust_env=False)
        return self

    async def __aexit__(self, *exc) -> None:
        if self.session is not None:
            await self.session.close()
            self.session = None

    def _count(self, name: str) -> None:
        self.counters[name] = self.counters.get(name, 0) + 1

    async def robots(self, robots_url: str) -> tuple[int | None, str | None, str | None]:
        """robots.txt with retries; (status, text, error). Not itself subject to robots rules."""
        resp = await self.fetch_retrying(robots_url, kind="robots", check_robots=False,
                                         max_bytes=512 * 1024)  # Google reads the first 500 KiB
        if resp.ok:
            return resp.status, (resp.body or b"").decode("utf-8", errors="replace"), None
        return resp.status, None, resp.error

    async def fetch(self, url: str, *, kind: str = "page", max_bytes: int | None = None,
                    check_robots: bool = True, follow_redirects: bool = True, hash_body: bool = False,
                    headers: dict[str, str] | None = None) -> Response:
        """One attempt at `url`, redirects followed (up to config.max_redirects), each hop polite. `headers`: a
        refresh's conditional ones (If-None-Match, If-Modified-Since); a 304 comes back as it is, with no body."""
        if max_bytes is None:
            max_bytes = self.config.max_image_bytes if kind == "image" else self.config.max_page_bytes
        current, hops = url, 0
        while True:
            refusal = self.politeness.in_scope(current)
            if refusal is not None:
                return Response(url, current, error=refusal if hops == 0 else f"redirect_{refusal}", redirects=hops)
            if check_robots:
                await self.politeness.ensure_robots(current, self.robots)
                if not self.politeness.robots_allows(current):
                    return Response(url, current, error="robots_disallowed" if hops == 0 else "redirect_robots",
                                    redirects=hops)
            resp = await self._once(url, current, kind, max_bytes, hash_body, headers if hops == 0 else None)
            resp.redirects = hops
            if resp.error is not None or resp.status is None or not (300 <= resp.status < 400) \
                    or resp.status == 304 or not follow_redirects:
                return resp
            location = resp.headers.get("location")
            target = canonicalize(location, current) if location else None
            if target is None:
                resp.error = "bad_redirect"
                return resp
            hops += 1
            if hops > self.config.max_redirects:
                resp.error = "too_many_redirects"
                return resp
            current = target

    async def _once(self, url: str, current: str, kind: str, max_bytes: int, hash_body: bool,
                    extra: dict[str, str] | None = None) -> Response:
        import aiohttp

        out = Response(url, current)
        headers = {"Accept": ACCEPT_HEADER.get(kind, "*/*"), **(extra or {})}
        async with self.politeness.slot(current):
            try:
                async with self.session.get(current, headers=headers, allow_redirects=False) as r:
                    out.status = r.status
                    out.headers = {k.lower(): v for k, v in r.headers.items()}
                    self._count(f"status_{r.status}")
                    out.retry_after = parse_retry_after(r.headers.get("Retry-After"))
                    if 300 <= r.status < 400 or r.status >= 400:
                        # error and redirect bodies are not needed; a short read keeps the connection reusable
                        if (r.content_length or 0) <= 64 * 1024:
                            await r.read()
                        return out
                    ctype = out.content_type
                    wanted = ACCEPT.get(kind, ())
                    if wanted and ctype and not any(w in ctype for w in wanted):
                        out.error = "bad_content_type"
                        return out
                    if r.content_length is not None and r.content_length > max_bytes:
                        out.error = "too_large"
                        return out
                    digest = hashlib.sha256() if hash_body else None
                    chunks, size = [], 0
                    async for chunk in r.content.iter_chunked(CHUNK):
                        size += len(chunk)
                        if size > max_bytes:
                            out.error = "too_large"
                            return out
                        chunks.append(chunk)
                        if digest is not None:
                            digest.update(chunk)
                    out.body = b"".join(chunks)
                    if digest is not None:
                        out.sha256 = digest.hexdigest()
            except (asyncio.TimeoutError, TimeoutError):
                out.error = "timeout"
            except aiohttp.ClientPayloadError:
                out.error = "truncated"  # Content-Length promised more than arrived, or a broken chunked body
            except aiohttp.ServerDisconnectedError:
                out.error = "server_disconnected"
            except (aiohttp.ClientConnectionError, OSError):
                out.error = "connection_error"
            except aiohttp.ClientResponseError as exc:
                out.status, out.error = exc.status or out.status, "bad_response"
            except aiohttp.ClientError:
                out.error = "client_error"
        if out.error:
            self._count(f"error_{out.error}")
        return out

    async def fetch_retrying(self, url: str, *, kind: str = "asset", check_robots: bool = True,
                             max_bytes: int | None = None, follow_redirects: bool = True) -> Response:
        """`fetch` with the politeness layer's retry policy applied in place (for robots.txt, scripts, JSON:
        things that are not frontier items)."""
        attempt = 0
        while True:
            attempt += 1
            resp = await self.fetch(url, kind=kind, max_bytes=max_bytes, check_robots=check_robots,
                                    follow_redirects=follow_redirects)
            verdict = self.politeness.classify(resp, attempt)
            if verdict.action != "retry":
                return resp
            self._count("retries")
            await asyncio.sleep(verdict.delay)
