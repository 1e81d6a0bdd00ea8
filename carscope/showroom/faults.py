"""Which request gets which transient fault: a pure function of (seed, URL, attempt number).

    python -c "from carscope.showroom.faults import FaultPlan; from carscope.showroom.config import parse_faults; \
p = FaultPlan(parse_faults('5xx=0.5'), seed=0); print([p.draw('/', a) for a in (1, 2, 3)])"

Drawing from a hash (not from a shared RNG) keeps the faults reproducible whatever order or concurrency the
crawler uses. A URL faults on at most its first MAX_FAULTY_ATTEMPTS attempts, so retrying 3+ times always
gets through.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from carscope.showroom.config import MAX_FAULTY_ATTEMPTS, Faults


@dataclass(frozen=True)
class Fault:
    kind: str  # 5xx / 429 / slow / truncate / redirect / soft
    status: int = 0  # 500 or 503 for 5xx
    http_date: bool = False  # 429: Retry-After as an HTTP-date instead of seconds
    hops: int = 0  # redirect: chain length 1-3
    keep: float = 1.0  # truncate: fraction of the body that is sent


def _uniforms(seed: int, url: str, attempt: int) -> tuple[float, float]:
    h = hashlib.sha256(f"{seed}|{url}|{attempt}".encode()).digest()
    return int.from_bytes(h[:8], "big") / 2**64, int.from_bytes(h[8:16], "big") / 2**64


class FaultPlan:
    def __init__(self, faults: Faults, seed: int):
        self.faults = faults
        self.seed = seed
        f = faults
        self._bands = [("5xx", f.r5xx), ("429", f.r429), ("slow", f.slow), ("truncate", f.truncate),
                       ("redirect", f.redirect), ("soft", f.soft)]  # soft last: the others' draws stay as they were
        self.active = f.transient_total > 0

    def draw(self, url: str, attempt: int) -> Fault | None:
        """The fault for the `attempt`-th request (1-based) of `url` (path and query), or None."""
        if not self.active or attempt > MAX_FAULTY_ATTEMPTS:
            return None
        u, v = _uniforms(self.seed, url, attempt)
        edge = 0.0
        for kind, rate in self._bands:
            edge += rate
            if u < edge:
                if kind == "5xx":
                    return Fault(kind, status=503 if v < 0.4 else 500)
                if kind == "429":
                    return Fault(kind, status=429, http_date=v < 0.5)
                if kind == "redirect":
                    return Fault(kind, hops=1 + int(v * 3))
                if kind == "truncate":
                    return Fault(kind, keep=0.2 + 0.6 * v)
                return Fault(kind)
        return None
