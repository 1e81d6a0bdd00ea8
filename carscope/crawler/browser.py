"""A Playwright (Chromium) pool for pages whose content JavaScript builds, e.g. the showroom's photo gallery.

    python - <<'EOF'
    import asyncio
    from carscope.crawler.browser import BrowserPool
    async def main():
        async def fetch(url, kind):  # the crawler passes its polite fetcher here
            raise RuntimeError("no network in this example")
        async with BrowserPool(fetch) as pool:
            r = await pool.render("http://example.invalid/", "<div id=g></div><script>g.innerHTML='<img src=a.jpg>'</script>")
            print(r.html)
    asyncio.run(main())
    EOF

- One browser (`/usr/bin/chromium` when present, else Playwright's own), `pages` pages rendering at once.
- Each page slot owns a browser context that is closed and replaced after `recycle_after` pages, so the
  renderer's memory stays flat however long the crawl.
- The crawler fetches the page's HTML itself (with its retries and status handling) and the browser gets it
  from memory; every other request the page makes is routed through the crawler's polite fetcher (robots,
  per-host limit, delay, User-Agent all apply), and fonts, media and images are never requested at all.
- After the document loads it waits for the adapter's `wait_for` selector, scrolls to the bottom until the
  height stops growing (lazy loaders fire), and returns the rendered HTML.
- `close()` shuts pages, contexts, the browser and the driver down, each step bounded by a timeout.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from collections import OrderedDict
from dataclasses import dataclass, field

from carscope.common.errors import CarscopeError

CHROMIUM_PATH = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-extensions", "--disable-dev-shm-usage",
                 "--mute-audio"]
BLOCKED_TYPES = frozenset({"font", "media", "image", "imageset", "texttrack", "manifest", "websocket",
                           "eventsource"})
CACHED_TYPES = frozenset({"script", "stylesheet"})

SCROLL_JS = """async (steps) => {
  let last = document.body ? document.body.scrollHeight : 0;
  for (let i = 0; i < steps; i++) {
    window.scrollTo(0, document.body ? document.body.scrollHeight : 0);
    await new Promise(r => setTimeout(r, 60));
    const h = document.body ? document.body.scrollHeight : 0;
    if (h === last) break;
    last = h;
  }
  window.scrollTo(0, 0);
}"""


@dataclass
class Rendered:
    url: str
    html: str | None
    error: str | None = None  # gallery_timeout, render_error, browser_closed, action_timeout
    captured: list = field(default_factory=list)  # (url, body bytes) of JSON the page fetched (capture_json)
    clicks: int = 0


def find_chromium(explicit: str | None = None) -> str | None:
    """The Chromium to launch: an explicit path, else /usr/bin/chromium, else None (Playwright's own)."""
    if explicit:
        return explicit if os.path.exists(explicit) else None
    if os.path.exists(CHROMIUM_PATH):
        return CHROMIUM_PATH
    return shutil.which("chromium") or shutil.which("chromium-browser")


def browser_available(explicit: str | None = None) -> bool:
    """Whether some Chromium can be launched (a system one, or Playwright's downloaded build)."""
    if explicit:
        return os.path.exists(explicit)
    if find_chromium():
        return True
    try:
        from pathlib import Path

        root = Path(os.environ.get("PLAYWRIGHT_BROWSERS_PATH") or Path.home() / ".cache" / "ms-playwright")
        return any(root.glob("chromium*/chrome-linux*/chrome")) or any(root.glob("chromium_headless_shell*/*/*"))
    except OSError:
        return False


class _Slot:
    def __init__(self):
        self.context = None
        self.page = None
        self.pages_done = 0
        self.inflight = 0  # requests of this slot's page being fetched by the crawler now
        self.capture = False
        self.captured: list[tuple[str, bytes]] = []


class BrowserPool:
    """`fetch(url, kind) -> crawler.fetch.Response` is the crawler's polite, retrying fetcher."""

    def __init__(self, fetch, *, pages: int = 2, recycle_after: int = 50, timeout_s: float = 15.0,
                 chromium_path: str | None = None, user_agent: str | None = None, scroll_steps: int = 20):
        self.fetch = fetch
        self.n_pages = pages
        self.recycle_after = recycle_after
        self.timeout_ms = timeout_s * 1000
        self.chromium_path = chromium_path
        self.user_agent = user_agent
        self.scroll_steps = scroll_steps
        self._pw = self._browser = None
        self._slots: asyncio.Queue | None = None
        self._all_slots: list[_Slot] = []
        self._driver_pids: list[int] = []
        self._start_error: CarscopeError | None = None
        self._documents: dict[str, str] = {}  # url -> HTML the crawler already fetched, served from memory
        self._asset_cache: OrderedDict[str, tuple[int, dict, bytes]] = OrderedDict()
        self._started = False
        self._start_lock = asyncio.Lock()
        self.rendered = 0
        self.contexts_created = 0
        self.subrequests = 0
        self.blocked = 0
        self.clicks = 0

    async def __aenter__(self) -> BrowserPool:
        await self.start()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()

    async def start(self) -> None:
        async with self._start_lock:
            if self._started:
                return
            if self._start_error is not None:  # failed once: do not relaunch for every waiting page
                raise self._start_error
            import psutil
            from playwright.async_api import Error as PWError
            from playwright.async_api import async_playwright

            exe = find_chromium(self.chromium_path)
            before = {c.pid for c in psutil.Process().children()}
            try:
                self._pw = await async_playwright().start()
                # the driver is the child process that appeared now; the browser runs under it
                self._driver_pids = [c.pid for c in psutil.Process().children() if c.pid not in before]
                self._browser = await self._pw.chromium.launch(executable_path=exe, args=CHROMIUM_ARGS,
                                                                headless=True, timeout=60_000)
            except PWError as exc:
                await self._stop_driver()
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                self._start_error = CarscopeError(f"cannot start Chromium ({exe or 'Playwright build'}): {first}")
                raise self._start_error from None
            self._slots = asyncio.Queue()
            for _ in range(self.n_pages):
                slot = _Slot()
                self._all_slots.append(slot)
                self._slots.put_nowait(slot)
            self._started = True

    async def _new_context(self, slot: _Slot):
        ctx = await self._browser.new_context(user_agent=self.user_agent, java_script_enabled=True,
                                              service_workers="block", viewport={"width": 1280, "height": 900})

        async def route(route, request):
            await self._route(route, request, slot)

        await ctx.route("**/*", route)
        self.contexts_created += 1
        return ctx

    async def _route(self, route, request, slot: _Slot | None = None) -> None:
        """Every request a page makes: blocked, served from memory, or fetched politely by the crawler."""
        try:
            rtype = request.resource_type
            pending = self._documents.get(request.url)
            if rtype == "document" and pending is not None:
                await route.fulfill(status=200, headers={"content-type": "text/html; charset=utf-8"}, body=pending)
                return
            if rtype in BLOCKED_TYPES or request.method != "GET" or rtype == "document":
                self.blocked += 1
                await route.abort("blockedbyclient")
                return
            cached = self._asset_cache.get(request.url) if rtype in CACHED_TYPES else None
            if cached is None:
                self.subrequests += 1
                if slot is not None:
                    slot.inflight += 1
                try:
                    resp = await self.fetch(request.url, "xhr" if rtype in ("xhr", "fetch") else "asset")
                finally:
                    if slot is not None:
                        slot.inflight -= 1
                if (slot is not None and slot.capture and rtype in ("xhr", "fetch") and resp.ok
                        and "json" in resp.headers.get("content-type", "")):
                    slot.captured.append((request.url, resp.body or b""))
                if resp.error is not None or resp.status is None:
                    await route.abort("blockedbyclient" if "robots" in (resp.error or "") or "offsite" in (
                        resp.error or "") else "failed")
                    return
                headers = {"content-type": resp.headers.get("content-type", "application/octet-stream")}
                cached = (resp.status, headers, resp.body or b"")
                if rtype in CACHED_TYPES and resp.ok:
                    self._asset_cache[request.url] = cached
                    if len(self._asset_cache) > 64:
                        self._asset_cache.popitem(last=False)
            status, headers, body = cached
            await route.fulfill(status=status, headers=headers, body=body)
        except Exception:  # the page closed under us (a timeout, a stop): nothing left to answer
            try:
                await route.abort("failed")
            except Exception:
                pass

    async def render(self, url: str, html: str, *, wait_for: str | None = None, scroll: bool = True,
                     actions: list | None = None, capture_json: bool = False) -> Rendered:
        """Load `html` as if served at `url`, run its scripts, wait, run the adapter's actions (clicks, scrolls,
        waits: carscope/crawler/extract/actions.py), scroll, return the resulting DOM (and the JSON it fetched)."""
        from playwright.async_api import Error as PWError
        from playwright.async_api import TimeoutError as PWTimeout

        from carscope.crawler.extract.actions import run_actions

        await self.start()
        slot: _Slot = await self._slots.get()
        healthy = False
        try:
            if slot.context is None or slot.pages_done >= self.recycle_after:
                await self._reset_slot(slot)
            slot.pages_done += 1
            page = slot.page  # one page per slot, navigated again and again: a new page costs a renderer
            slot.capture, slot.captured = capture_json, []
            self._documents[url] = html
            try:
                await page.goto(url, wait_until="domcontentloaded", timeout=self.timeout_ms)
            finally:
                self._documents.pop(url, None)
            if wait_for:
                try:
                    await page.wait_for_selector(wait_for, state="attached", timeout=self.timeout_ms)
                except PWTimeout:
                    return Rendered(url, None, "gallery_timeout")
            clicks = 0
            if actions:
                try:
                    clicks = await run_actions(page, actions, self.timeout_ms, SCROLL_JS, self.scroll_steps,
                                               busy=lambda: slot.inflight)
                except PWTimeout:
                    return Rendered(url, None, "action_timeout")
            if scroll:
                await page.evaluate(SCROLL_JS, self.scroll_steps)
            content = await page.content()
            self.rendered += 1
            self.clicks += clicks
            healthy = True
            return Rendered(url, content, captured=list(slot.captured), clicks=clicks)
        except PWTimeout:
            return Rendered(url, None, "render_timeout")
        except PWError as exc:
            return Rendered(url, None, "browser_closed" if "closed" in str(exc).lower() else "render_error")
        finally:
            if not healthy:  # a page in an unknown state is not reused
                slot.pages_done = self.recycle_after
            self._slots.put_nowait(slot)

    async def _reset_slot(self, slot: _Slot) -> None:
        if slot.context is not None:
            await _quietly(slot.context.close(), 10)  # closes its page too; the renderer's memory goes with it
            slot.context = slot.page = None
        slot.context = await self._new_context(slot)
        slot.page = await slot.context.new_page()
        slot.page.set_default_timeout(self.timeout_ms)
        slot.pages_done = 0

    def memory_rss(self, *, proportional: bool = False) -> int:
        """Resident memory of the Playwright driver and the browser processes it started, in bytes.

        Chromium's processes share libraries and memory, so summing RSS counts shared pages many times;
        `proportional=True` sums PSS instead (each shared page divided among its users; slower to read)."""
        import psutil

        total = 0
        for pid in self._driver_pids:
            try:
                root = psutil.Process(pid)
                procs = [root, *root.children(recursive=True)]
            except psutil.NoSuchProcess:
                continue
            for proc in procs:
                try:
                    total += proc.memory_full_info().pss if proportional else proc.memory_info().rss
                except (psutil.NoSuchProcess, psutil.AccessDenied):
                    pass
        return total

    async def close(self) -> None:
        for slot in self._all_slots:
            if slot.context is not None:
                await _quietly(slot.context.close(), 10)
                slot.context = None
        if self._browser is not None:
            await _quietly(self._browser.close(), 15)
            self._browser = None
        await self._stop_driver()
        self._started = False

    async def _stop_driver(self) -> None:
        if self._pw is not None:
            await _quietly(self._pw.stop(), 15)
            self._pw = None


async def _quietly(coro, timeout: float) -> None:
    try:
        await asyncio.wait_for(coro, timeout)
    except Exception:  # closing something already gone is not an error worth reporting
        pass
