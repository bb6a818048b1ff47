"""mp3fix: restore heavily compressed music (16-64 kbit/s MP3) with a stochastic GAN.

``import mp3fix`` stays cheap: the library API (``Restorer``, ``FileResult``,
``DEFAULT_SEED``) and the typed errors are imported on first access, so the CLI's
``--help`` and ``--version`` never load onnxruntime.
"""

from __future__ import annotations

import importlib
from importlib import metadata
from typing import TYPE_CHECKING, Any

try:
    __version__ = metadata.version("mp3fix")
except metadata.PackageNotFoundError:  # a source checkout that is not installed
    __version__ = "0.1.0"

_LAZY = {
    "Restorer": "mp3fix.restore",
    "FileResult": "mp3fix.restore",
    "DEFAULT_SEED": "mp3fix.restore",
    "Mp3fixError": "mp3fix.errors",
    "DecodeError": "mp3fix.errors",
    "OutputError": "mp3fix.errors",
    "ModelError": "mp3fix.errors",
    "DeviceError": "mp3fix.errors",
}

__all__ = [
    "DEFAULT_SEED",
    "DecodeError",
    "DeviceError",
    "FileResult",
    "ModelError",
    "Mp3fixError",
    "OutputError",
    "Restorer",
    "__version__",
]

if TYPE_CHECKING:
    from mp3fix.errors import DecodeError, DeviceError, ModelError, Mp3fixError, OutputError
    from mp3fix.restore import DEFAULT_SEED, FileResult, Restorer


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'mp3fix' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
