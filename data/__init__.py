"""flushback.data: bars and point-in-time external series, sources, the local store."""

from flushback.data.errors import (
    BiasDetected,
    ConfigError,
    DataError,
    FlushbackError,
    SourceUnavailable,
    StaleDataError,
    StoreError,
)

__all__ = [
    "BiasDetected",
    "ConfigError",
    "DataError",
    "FlushbackError",
    "SourceUnavailable",
    "StaleDataError",
    "StoreError",
]
