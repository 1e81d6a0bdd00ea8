"""Settings of a serving process: one dataclass, checked once, shared by the CLI, the app factory and tests.

    python -c "from carscope.serve.config import ServeConfig; print(ServeConfig.from_any({'max_batch': 8}))"
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

from carscope.common.errors import CarscopeError


@dataclass(frozen=True)
class ServeConfig:
    providers: str = "auto"  # auto | cpu | cuda
    variant: str = "auto"  # auto | fp32 | int8 | fp16; auto: the fastest export validated for the device (engine.py)
    max_batch: int = 16  # = the default waitress thread count: one batch can hold every request in flight
    max_wait_ms: float = 2.0  # a batch is held open at most this long, and only for requests known to be coming
    min_confidence: float = 0.5  # calibrated top-1 below this: "not sure", show candidates; 0.5 = likelier right than wrong
    top_k: int = 5
    max_upload_mb: float = 10.0  # a 12 MP phone JPEG is 3-6 MB
    max_pixels: int = 50_000_000  # decoded pixels; above this the header is enough to refuse (decompression bombs)
    workers: int = 0  # batches run at once (batcher worker threads sharing the sessions); 0 = auto (carscope/serve/engine.py)
    intra_op_threads: int = 0  # onnxruntime threads of the process, shared out between the workers; 0 = its cores
    alone: str = "auto"  # how a batch that runs alone uses every thread: auto | sequential | parallel | off (engine.py)
    request_timeout_s: float = 30.0  # a request waits at most this long for its batch, then 503
    max_queue_ms: float = 1000.0  # a POST whose predicted wait in the queue exceeds this is refused at once, 503 (0: never)
    access_log: bool = False  # one line a request on the "carscope.access" logger (carscope/serve/app.py)
    background_load: bool = False  # True: create_app returns at once and /readyz is 503 until sessions are warm
    warmup: bool = True
    verify: bool = True  # check the bundle's sha256s at start-up (a mismatch refuses to start)

    @classmethod
    def from_any(cls, config: ServeConfig | Mapping[str, Any] | None) -> ServeConfig:
        if config is None:
            return cls().validated()
        if isinstance(config, ServeConfig):
            return config.validated()
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(config) - known)
        if unknown:
            raise CarscopeError(f"unknown serve setting(s): {', '.join(unknown)}")
        try:
            defaults = cls()
            return cls(**{k: _cast(type(getattr(defaults, k)), v) for k, v in config.items()}).validated()
        except (TypeError, ValueError) as exc:
            raise CarscopeError(f"bad serve setting: {exc}") from None

    def validated(self) -> ServeConfig:
        from carscope.serve.engine import ALONE_CHOICES, PROVIDER_CHOICES, VARIANTS

        if self.providers not in PROVIDER_CHOICES:
            raise CarscopeError(f"--providers must be one of {', '.join(PROVIDER_CHOICES)}, not '{self.providers}'")
        if self.variant not in VARIANTS:
            raise CarscopeError(f"--variant must be one of {', '.join(VARIANTS)}, not '{self.variant}'")
        if not 1 <= self.max_batch <= 1024:
            raise CarscopeError(f"--max-batch must be between 1 and 1024, not {self.max_batch}")
        if not 0 <= self.max_wait_ms <= 1000:
            raise CarscopeError(f"--max-wait-ms must be between 0 and 1000, not {self.max_wait_ms}")
        if not 0 <= self.min_confidence <= 1:
            raise CarscopeError(f"--min-confidence must be between 0 and 1, not {self.min_confidence}")
        if not 1 <= self.top_k <= 100:
            raise CarscopeError(f"top_k must be between 1 and 100, not {self.top_k}")
        if not 0 < self.max_upload_mb <= 1024:
            raise CarscopeError(f"--max-upload-mb must be in (0, 1024], not {self.max_upload_mb}")
        if self.max_pixels < 64:
            raise CarscopeError(f"max_pixels must be at least 64, not {self.max_pixels}")
        if not 0 <= self.workers <= 64:
            raise CarscopeError(f"--workers must be between 0 (auto) and 64, not {self.workers}")
        if self.alone not in ALONE_CHOICES:
            raise CarscopeError(f"--alone must be one of {', '.join(ALONE_CHOICES)}, not '{self.alone}'")
        if self.intra_op_threads < 0:
            raise CarscopeError(f"--ort-threads must be >= 0, not {self.intra_op_threads}")
        if not 0 <= self.max_queue_ms <= 3_600_000:
            raise CarscopeError(f"--max-queue-ms must be between 0 (never refuse) and 3600000, not {self.max_queue_ms:g}")
        if self.request_timeout_s <= 0:
            raise CarscopeError("request_timeout_s must be positive")
        return self

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _cast(kind: type, value: Any) -> Any:
    """Settings may come from strings (env, forms); a bool of "false" must not be True."""
    if kind is bool and isinstance(value, str):
        if value.lower() in ("1", "true", "yes", "on"):
            return True
        if value.lower() in ("0", "false", "no", "off"):
            return False
        raise ValueError(f"not a boolean: {value!r}")
    if kind is int and isinstance(value, float) and not value.is_integer():
        raise ValueError(f"not an integer: {value!r}")
    return kind(value)
