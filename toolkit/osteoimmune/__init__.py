"""osteoimmune: gene-signature scoring and sample-level association for osteoimmunology.

Namespaces follow scanpy: :mod:`osteoimmune.signatures`, :mod:`osteoimmune.pp`,
:mod:`osteoimmune.tl`, :mod:`osteoimmune.pl` and :mod:`osteoimmune.datasets`.

``pl`` (matplotlib, seaborn) and ``datasets`` (pooch, readers) are imported on first use,
so that ``import osteoimmune`` stays quick for scripts and workers that only score.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from . import pp, signatures, tl
from ._version import __version__

if TYPE_CHECKING:  # pragma: no cover
    from . import datasets, pl

__all__ = ["__version__", "datasets", "pl", "pp", "signatures", "tl"]

_LAZY = ("datasets", "pl")


def __getattr__(name: str):
    if name in _LAZY:
        module = importlib.import_module(f".{name}", __name__)
        globals()[name] = module
        return module
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
