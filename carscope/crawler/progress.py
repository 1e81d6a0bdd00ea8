"""The progress display of a crawl or an import: tqdm bars (pages, images) on a terminal; otherwise, when
logging, a status line on stderr every 10 s.

    python -c "from carscope.crawler.progress import Progress; help(Progress)"

It also keeps the run's own tallies the limits read (`pages_done`, `images_stored`: `--max-pages`,
`--max-images`), starting from what the frontier already holds (a resumed run counts on).
"""

from __future__ import annotations

import sys
import time

from carscope.crawler.frontier import IMAGE, PAGE

LOG_EVERY_S = 10.0


class Progress:
    def __init__(self, config, frontier, *, kinds: tuple[str, ...] = (PAGE, IMAGE), image_total: int | None = None):
        counts = frontier.counts()
        self.pages_done = counts.get(PAGE, {}).get("done", 0)
        self.images_stored = counts["images_stored"]
        self.run_images = 0
        self.dups = 0
        self.errors = {PAGE: 0, IMAGE: 0}
        self.enabled = sys.stderr.isatty() if config.progress is None else bool(config.progress)
        self.log = config.log and not self.enabled
        self.last_log = time.monotonic()
        self.t0 = time.monotonic()
        self.bars = None
        if self.enabled:
            from tqdm import tqdm

            made = {
                PAGE: lambda pos: tqdm(desc="pages ", unit="page", initial=self.pages_done, position=pos,
                                       dynamic_ncols=True),
                IMAGE: lambda pos: tqdm(desc="images", unit="img", initial=self.images_stored, position=pos,
                                        total=image_total, dynamic_ncols=True),
            }
            self.bars = {kind: made[kind](pos) for pos, kind in enumerate(kinds)}

    def _tick(self) -> None:
        if self.bars is not None:
            if PAGE in self.bars:
                self.bars[PAGE].set_postfix(errors=self.errors[PAGE], refresh=False)
            self.bars[IMAGE].set_postfix(dups=self.dups, errors=self.errors[IMAGE], refresh=False)
        elif self.log and time.monotonic() - self.last_log >= LOG_EVERY_S:
            self.last_log = time.monotonic()
            rate = self.run_images / max(1e-9, self.last_log - self.t0)
            print(f"crawl: {self.pages_done} pages, {self.images_stored} images ({rate:.1f}/s), {self.dups} duplicates, "
                  f"{self.errors[PAGE] + self.errors[IMAGE]} failed", file=sys.stderr, flush=True)

    def page_done(self) -> None:
        self.pages_done += 1
        if self.bars is not None and PAGE in self.bars:
            self.bars[PAGE].update(1)
        self._tick()

    def image_stored(self) -> None:
        self.images_stored += 1
        self.run_images += 1
        if self.bars is not None:
            self.bars[IMAGE].update(1)
        self._tick()

    def image_dup(self) -> None:
        self.dups += 1
        self._tick()

    def error(self, kind: str) -> None:
        self.errors[kind] = self.errors.get(kind, 0) + 1
        self._tick()

    def close(self) -> None:
        if self.bars is not None:
            for bar in self.bars.values():
                bar.close()
