"""UCell (``method="ucell"``): Mann-Whitney U statistic on per-observation gene ranks.

Semantics of R UCell >= 2.7.6 (Andreatta & Carmona 2021): genes are ranked by decreasing
value with ties averaged (zeros share their average rank); ranks above ``max_rank`` are set
to ``max_rank``; ``U = 1 - (sum(r) - n(n+1)/2) / (n * max_rank - n(n+1)/2)``. A requested gene
absent from the data counts in ``n`` with rank ``max_rank`` (UCell's ``impute``). Signed
sets: ``score = max(0, U_up - w_neg * U_down)``; a set without up genes scores 0.
``max_rank`` is capped at the number of genes, as R UCell does; on such tiny gene spaces
pyUCell differs (it puts every zero at ``max_rank``), and osteoimmune follows R.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ._base import ScoreContext, ScoringMethod
from ._kernels import ucell_chunk, ucell_chunk_f32
from ._source import Chunk


class UCell(ScoringMethod):
    """UCell.

    Parameters
    ----------
    max_rank
        Rank cap (UCell's ``maxRank``), default 1500.
    w_neg
        Weight of the negative (down) part.
    missing_genes
        ``"impute"`` (UCell default: missing genes count with rank ``max_rank``) or
        ``"skip"`` (ignore them).
    """

    name = "ucell"
    reference = "Andreatta & Carmona 2021 Comput Struct Biotechnol J, doi:10.1016/j.csbj.2021.06.043"
    needs_stats = False
    accepts_counts = True

    def __init__(self, max_rank: int = 1500, w_neg: float = 1.0,
                 missing_genes: str = "impute") -> None:
        if int(max_rank) < 1:
            raise ValueError(f"max_rank must be >= 1, got {max_rank}.")
        if missing_genes not in ("impute", "skip"):
            raise ValueError("missing_genes must be 'impute' or 'skip'.")
        self.max_rank_opt = int(max_rank)
        self.w_neg = float(w_neg)
        self.missing_genes = missing_genes

    def prepare(self, ctx: ScoreContext) -> None:
        self.n_genes = ctx.n_vars
        self.max_rank = min(self.max_rank_opt, ctx.n_vars)
        ptr = [0]
        genes, signs = [], []
        miss_p, miss_n = [], []
        self._names = []
        for m in ctx.matched:
            genes.append(m.idx)
            signs.append(np.where(m.weights < 0, -1, 1))
            ptr.append(ptr[-1] + len(m.idx))
            imp = self.missing_genes == "impute"
            miss_p.append(m.n_missing_up if imp else 0)
            miss_n.append(m.n_missing_down if imp else 0)
            self._names.append(m.name)
        self._ptr = np.asarray(ptr, dtype=np.int64)
        self._genes = np.concatenate(genes).astype(np.int64)
        self._signs = np.concatenate(signs).astype(np.int64)
        self._miss_p = np.asarray(miss_p, dtype=np.int64)
        self._miss_n = np.asarray(miss_n, dtype=np.int64)

    def columns(self) -> list[str]:
        return list(self._names)

    def score_chunk(self, chunk: Chunk) -> np.ndarray:
        if chunk.data.dtype == np.float32:
            return ucell_chunk_f32(chunk.indptr, chunk.indices, chunk.data,
                                   chunk.data.view(np.uint32), self.n_genes,
                                   float(self.max_rank), self._ptr, self._genes, self._signs,
                                   self._miss_p, self._miss_n, self.w_neg)
        return ucell_chunk(chunk.indptr, chunk.indices, chunk.data, self.n_genes,
                           float(self.max_rank), self._ptr, self._genes, self._signs,
                           self._miss_p, self._miss_n, self.w_neg)

    def params(self) -> dict[str, Any]:
        return {"max_rank": self.max_rank, "w_neg": self.w_neg,
                "missing_genes": self.missing_genes}
