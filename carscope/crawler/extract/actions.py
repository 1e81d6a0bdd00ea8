"""Browser actions per page type: what to do in Chromium before the page is read.

    [pages.vehicle]
    browser = true
    actions = [
      { click = "button.more-photos" },            # click until it is gone (at most `max`, default 50)
      { click = "a.next-slide", times = 3 },       # or exactly N times (fewer if it disappears)
      { scroll = true },                           # scroll to the bottom until the height stops growing
      { wait_for = "div.gallery figure" },         # wait until a selector is attached
      { wait = "networkidle" },                    # or until no request has been in flight for 500 ms
      { wait_ms = 300 },                           # or a fixed pause
    ]
    capture_json = true                            # keep the JSON responses the page fetched ([data] captured)

After each click the runner waits for the page to change (a DOM mutation) or for `timeout_ms`, so a
"load more" button that fetches and appends is clicked again only once its photos are in. Actions run after
`wait_for` and before the final `scroll`. Playwright is imported only when actions run.
"""

from __future__ import annotations

from dataclasses import dataclass

ACTION_KEYS = {"click": ("times", "max", "timeout_ms"), "scroll": (), "wait_for": ("timeout_ms",),
               "wait": ("timeout_ms",), "wait_ms": ()}
MAX_CLICKS = 50

# resolves once the DOM has had no mutation for `quiet` ms (false when `most` ms pass first)
QUIET_JS = """([quiet, most]) => new Promise(resolve => {
  const start = performance.now();
  let timer = null;
  const done = (ok) => { obs.disconnect(); clearTimeout(timer); resolve(ok); };
  const obs = new MutationObserver(() => {
    clearTimeout(timer);
    if (performance.now() - start > most) { done(false); return; }
    timer = setTimeout(() => done(true), quiet);
  });
  obs.observe(document.documentElement, {childList: true, subtree: true, attributes: true});
  timer = setTimeout(() => done(true), quiet);
})"""
QUIET_MS = 150
REQUEST_START_MS = 300


@dataclass
class Action:
    kind: str  # click / scroll / wait_for / wait / wait_ms
    target: object = None  # selector, "networkidle", milliseconds, True
    times: int = 0  # click: 0 = until the element is gone
    max: int = MAX_CLICKS
    timeout_ms: int | None = None

    def describe(self) -> str:
        if self.kind == "click":
            return f"click {self.target!r} " + (f"{self.times} times" if self.times else f"until gone (max {self.max})")
        return f"{self.kind} {self.target!r}"


def parse_actions(ck, tname: str, value) -> list[Action]:
    if not isinstance(value, list):
        ck.fail(tname, "actions", "expected a list of inline tables, e.g. [{ click = \"button.more\" }]")
    out = []
    for i, entry in enumerate(value):
        where = f"actions[{i}]"
        if not isinstance(entry, dict):
            ck.fail(tname, "actions", f"{where}: expected an inline table, got {entry!r}")
        kinds = [k for k in entry if k in ACTION_KEYS]
        if len(kinds) != 1:
            ck.fail(tname, "actions", f"{where}: needs exactly one of {', '.join(ACTION_KEYS)}")
        kind = kinds[0]
        for k in entry:
            if k != kind and k not in ACTION_KEYS[kind]:
                ck.fail(tname, "actions", f"{where}: unknown key '{k}' for a {kind} action")
        for k in ("times", "max", "timeout_ms"):
            if k in entry and (not isinstance(entry[k], int) or isinstance(entry[k], bool) or entry[k] < 0):
                ck.fail(tname, "actions", f"{where}: '{k}' must be a whole number >= 0, got {entry[k]!r}")
        act = Action(kind=kind, times=entry.get("times", 0), max=entry.get("max", MAX_CLICKS),
                     timeout_ms=entry.get("timeout_ms"))
        raw = entry[kind]
        if kind in ("click", "wait_for"):
            if not isinstance(raw, str) or not raw.strip():
                ck.fail(tname, "actions", f"{where}: '{kind}' must be a CSS selector")
            act.target = ck.selector(tname, "actions", raw)
        elif kind == "wait":
            if raw not in ("networkidle", "load", "domcontentloaded"):
                ck.fail(tname, "actions", f"{where}: 'wait' must be networkidle, load or domcontentloaded")
            act.target = raw
        elif kind == "wait_ms":
            if not isinstance(raw, int) or isinstance(raw, bool) or not 0 <= raw <= 30_000:
                ck.fail(tname, "actions", f"{where}: 'wait_ms' must be a whole number of milliseconds in 0..30000")
            act.target = raw
        else:
            if raw is not True:
                ck.fail(tname, "actions", f"{where}: 'scroll' must be true")
            act.target = True
        out.append(act)
    return out


async def _settle(page, busy, timeout_ms: float) -> None:
    """After a click: let the requests it caused finish, then wait for the DOM to stop changing."""
    import asyncio
    import time

    if busy is not None:
        t0 = time.monotonic()
        while busy() == 0 and (time.monotonic() - t0) * 1000 < REQUEST_START_MS:
            await asyncio.sleep(0.01)
        while busy() > 0 and (time.monotonic() - t0) * 1000 < timeout_ms:
            await asyncio.sleep(0.01)
    await page.evaluate(QUIET_JS, [QUIET_MS, timeout_ms])


async def run_actions(page, actions: list[Action], timeout_ms: float, scroll_js: str, scroll_steps: int,
                      busy=None) -> int:
    """Run `actions` on a Playwright page; returns the clicks made. `busy()`: requests of this page in flight.
    Raises Playwright's errors (the pool turns them into a render failure)."""
    clicks = 0
    for act in actions:
        t = act.timeout_ms if act.timeout_ms is not None else timeout_ms
        if act.kind == "click":
            for _ in range(act.times or act.max):
                loc = page.locator(act.target).first
                if await loc.count() == 0 or not await loc.is_visible():
                    break
                await loc.click(timeout=t)
                clicks += 1
                await _settle(page, busy, t)
        elif act.kind == "scroll":
            await page.evaluate(scroll_js, scroll_steps)
        elif act.kind == "wait_for":
            await page.wait_for_selector(act.target, state="attached", timeout=t)
        elif act.kind == "wait":
            await page.wait_for_load_state(act.target, timeout=t)
        elif act.kind == "wait_ms":
            await page.wait_for_timeout(act.target)
    return clicks
