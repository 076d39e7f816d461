"""Scoring engine: one module per method on a shared chunked runner."""

from __future__ import annotations

from ._base import GeneStats, ScoreContext, ScoringMethod
from ._runner import compute_gene_stats, run_method
from ._source import MatrixSource
from .aucell import AUCell
from .module import ModuleScore
from .scdrs import ScDRS
from .ucell import UCell
from .zmean import ZMean

METHODS: dict[str, type[ScoringMethod]] = {
    "module": ModuleScore,
    "aucell": AUCell,
    "ucell": UCell,
    "zmean": ZMean,
    "scdrs": ScDRS,
}

__all__ = ["METHODS", "GeneStats", "MatrixSource", "ScoreContext", "ScoringMethod",
           "compute_gene_stats", "run_method"]
