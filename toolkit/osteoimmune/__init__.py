"""osteoimmune: gene-signature scoring and sample-level association for osteoimmunology.

Namespaces follow scanpy: :mod:`osteoimmune.signatures`, :mod:`osteoimmune.pp`,
:mod:`osteoimmune.tl`, :mod:`osteoimmune.pl` and :mod:`osteoimmune.datasets`.
"""

from __future__ import annotations

from . import datasets, pl, pp, signatures, tl
from ._version import __version__

__all__ = ["__version__", "datasets", "pl", "pp", "signatures", "tl"]
