"""`carscope crawl --shard K/N`: split one site's crawl between N machines by model-year.

    carscope crawl --start-url https://cars.example/ --out ds-1 --shard 1/3     # machine 1
    carscope crawl --start-url https://cars.example/ --out ds-2 --shard 2/3     # machine 2 ...
    carscope dataset merge ds-1 ds-2 ds-3 --out dataset                          # then one dataset

A catalog is one host, so splitting by host would leave all of it on one machine. The unit of work is the
model-year instead: a page whose URL names one (the adapter's `match` pattern has `year`, `make` and `model`
groups) belongs to shard `shard_of(model_id, N)`, and only that shard fetches it and its photos. Pages that
name no model-year (home, make and model listings) are fetched by every shard: they are few, and each shard
needs them to find its own model-years. The hash is stable across machines, Python versions and runs
(blake2b of the model id, never Python's salted `hash()`), so a resumed shard keeps its share.

Each shard is polite on its own: N shards send up to N x --per-host requests to the site at once. Divide
--per-host, or raise --delay, when the site asks for less.
"""

from __future__ import annotations

import hashlib

from carscope.common.errors import CarscopeError


def parse_shard(text: str) -> tuple[int, int]:
    """'2/3' -> (2, 3); K counts from 1. CarscopeError (one line) for anything else."""
    k_text, sep, n_text = str(text).strip().partition("/")
    try:
        if not sep:
            raise ValueError
        k, n = int(k_text), int(n_text)
    except ValueError:
        raise CarscopeError(f"expected K/N such as 1/3, got '{text}'") from None
    return check_shard(k, n)


def check_shard(k: int, n: int) -> tuple[int, int]:
    """(k, n) when 1 <= k <= n, else CarscopeError (one line)."""
    if n < 1 or not 1 <= k <= n:
        raise CarscopeError(f"K must be between 1 and N (shards count from 1), got {k}/{n}")
    return k, n


def shard_of(model_id: str, n: int) -> int:
    """Which of n shards (1..n) owns a model-year."""
    digest = hashlib.blake2b(model_id.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") % n + 1


def shard_text(shard: tuple[int, int] | None) -> str | None:
    return None if shard is None else f"{shard[0]}/{shard[1]}"
