"""flushback.data: bars and point-in-time external series, sources, the local store.

The public API is imported lazily so ``import flushback.data.errors`` (the CLI) stays light::

    from flushback.data import load_frame      # or flushback.data.load (the same function)
    af = load_frame("BTC-USD", "1d", data_dir="../shared/data")
    af.frame, af.fingerprints, af.known_at
"""

from __future__ import annotations

from typing import Any

from flushback.data.errors import (
    BiasDetected,
    ConfigError,
    DataError,
    FlushbackError,
    SourceUnavailable,
    StaleDataError,
    StoreError,
)

_LAZY = {
    "load": "flushback.data.assemble",
    "load_frame": "flushback.data.assemble",
    "load_dataset": "flushback.data.assemble",
    "DEFAULT_EXTERNALS": "flushback.data.assemble",
    "load_basket": "flushback.data.basket",
    "AssembledFrame": "flushback.data.frames",
    "bar_interval": "flushback.data.frames",
    "resample_bars": "flushback.data.frames",
    "fill_gaps": "flushback.data.frames",
    "DatasetInfo": "flushback.data.datasets",
    "DatasetSpec": "flushback.data.datasets",
    "catalog": "flushback.data.datasets",
    "fingerprint": "flushback.data.datasets",
    "validate_bars": "flushback.data.validate",
    "validate_external": "flushback.data.validate",
}

__all__ = [
    "BiasDetected",
    "ConfigError",
    "DataError",
    "FlushbackError",
    "SourceUnavailable",
    "StaleDataError",
    "StoreError",
    *_LAZY,
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'flushback.data' has no attribute {name!r}")
