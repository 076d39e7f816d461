"""AUCell (``method="aucell"``), decoupler 2.x semantics.

Genes that are zero in every observation are dropped first. Each observation ranks the
remaining genes by decreasing value; ties are broken by a fixed permutation of the genes
(``numpy.random.default_rng(0).choice(n, n, replace=False)``, as decoupler does). The
score is the area under the recovery curve of the signature's genes within the top ``n_up``
ranks, normalised by its maximum: ``sum_{r < n_up} (n_up - r) / sum_{k=1}^{min(n, n_up-1)}
(n_up - k)`` (Aibar et al. 2017). Default ``n_up = max(2, ceil(0.05 * n_genes))``.
An observation with no expressed gene scores 0.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .._utils import warn
from ._base import GeneStats, ScoreContext, ScoringMethod
from ._kernels import aucell_chunk, aucell_chunk_f32
from ._source import Chunk

#: an empty ``seen`` table: the float32 kernel then does not look for unseen genes
_NO_WATCH = np.zeros(0, dtype=np.int32)


def default_n_up(n_genes: int, n_up=None) -> int:
    """decoupler's rule: 5 % of the genes (at least 2), or ``ceil(n_up)`` when given."""
    if n_up is None:
        n_up = int(np.clip(np.ceil(0.05 * n_genes), 2, n_genes))
    else:
        n_up = int(np.ceil(n_up))
    if not (n_genes >= n_up > 1):
        raise ValueError(f"n_up={n_up} must lie between 2 and the number of expressed genes "
                         f"({n_genes}).")
    return n_up


def gene_codes(kept: np.ndarray, perm_pos: np.ndarray, set_ptr: np.ndarray,
               set_genes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-gene tables of the float32 AUCell kernel.

    Returns
    -------
    gene_code, gs_ptr, gs_set
        ``2 * tie-break position + (gene in a set)`` per gene (-1: never expressed), and
        the sets of each gene as CSR (``gs_set[gs_ptr[g]:gs_ptr[g + 1]]``).
    """
    n_vars = kept.shape[0]
    # int32 when it fits: a smaller table for the kernel's per-value lookup (measured
    # 3.3 against 4.1 ns per value for building a row's keys)
    code = np.full(n_vars, -1, dtype=np.int32 if 2 * n_vars + 1 < 2**31 else np.int64)
    code[kept] = 2 * perm_pos
    set_of = np.repeat(np.arange(len(set_ptr) - 1), np.diff(set_ptr))
    code[set_genes] |= 1
    order = np.argsort(set_genes, kind="stable")
    gs_set = set_of[order].astype(np.int64)
    gs_ptr = np.zeros(n_vars + 1, dtype=np.int64)
    np.cumsum(np.bincount(set_genes, minlength=n_vars), out=gs_ptr[1:])
    return code, gs_ptr, gs_set


class AUCell(ScoringMethod):
    """AUCell.

    Parameters
    ----------
    n_up
        Number of top-ranked genes in the recovery curve (default 5 % of expressed genes).
    """

    name = "aucell"
    reference = "Aibar et al. 2017 Nat Methods, doi:10.1038/nmeth.4463; decoupler.mt.aucell"
    needs_stats = True
    stats_level = "expressed"
    accepts_counts = True

    def __init__(self, n_up: int | float | None = None) -> None:
        self.n_up_opt = n_up

    def prepare(self, ctx: ScoreContext) -> None:
        kept = ctx.stats.nnz > 0
        n_kept = int(kept.sum())
        kept_pos = np.full(ctx.n_vars, -1, dtype=np.int64)
        kept_pos[kept] = np.arange(n_kept)
        perm = np.random.default_rng(seed=0).choice(np.arange(n_kept), n_kept, replace=False)
        perm_pos = np.empty(n_kept, dtype=np.int64)
        perm_pos[perm] = np.arange(n_kept)
        self.n_up = default_n_up(n_kept, self.n_up_opt)
        ptr = [0]
        genes = []
        max_auc = []
        self._names = []
        dropped = []
        for m in ctx.matched:
            g = m.idx[kept[m.idx]]
            if len(g) < len(m.idx):
                dropped.append(f"{m.name} ({len(m.idx) - len(g)})")
            if np.any(m.weights < 0):
                warn(f"Signature {m.name!r} has a negative (down) part; AUCell ranks all its "
                     "genes together. Use method='ucell' for signed signatures.")
            genes.append(g)
            ptr.append(ptr[-1] + len(g))
            n = len(g)
            x_th = np.arange(1, n + 1)
            x_th = x_th[x_th < self.n_up]
            max_auc.append(float(np.sum(np.diff(np.append(x_th, self.n_up)) * x_th)) if n else 1.0)
            self._names.append(m.name)
        if dropped:
            warn("Genes that are zero in every observation are left out of AUCell sets: "
                 + ", ".join(dropped))
        self._kept_pos = kept_pos
        self._perm_pos = perm_pos
        self._perm_gene = np.flatnonzero(kept)[perm].astype(np.int64)  # perm position -> gene
        self._n_kept = n_kept
        self._ptr = np.asarray(ptr, dtype=np.int64)
        self._genes = np.concatenate(genes).astype(np.int64) if genes else np.zeros(0, np.int64)
        self._max_auc = np.asarray(max_auc, dtype=np.float64)
        self._gene_code, self._gs_ptr, self._gs_set = gene_codes(
            kept, perm_pos, self._ptr, self._genes)

    def columns(self) -> list[str]:
        return list(self._names)

    def score_chunk(self, chunk: Chunk) -> np.ndarray:
        return self.score_chunk_counted(chunk)[0]

    def score_chunk_counted(self, chunk: Chunk, seen: np.ndarray | None = None
                            ) -> tuple[np.ndarray, int | None, np.ndarray | None]:
        if chunk.data.dtype == np.float32 and self._n_kept < 2**31:
            n_nonfinite = np.zeros(1, dtype=np.int64)
            watching = seen is not None and seen.size > 0
            watched = np.empty(chunk.indptr.shape[0] - 1 if watching else 0, dtype=np.uint8)
            if not watching:
                seen = _NO_WATCH
            out = aucell_chunk_f32(chunk.indptr, chunk.indices, chunk.data,
                                   chunk.data.view(np.uint32), self._kept_pos, self._perm_pos,
                                   self._perm_gene, self._n_kept, self.n_up, self._ptr,
                                   self._genes, self._max_auc, self._gene_code,
                                   self._gs_ptr, self._gs_set, n_nonfinite, seen, watched)
            return out, int(n_nonfinite[0]), watched if watching else None
        return aucell_chunk(chunk.indptr, chunk.indices, chunk.data, self._kept_pos,
                            self._perm_pos, self._n_kept, self.n_up, self._ptr, self._genes,
                            self._max_auc), None, None

    def assumed_stats(self, n_obs: int, n_vars: int) -> GeneStats:
        """Every gene expressed somewhere: true of any gene-filtered data set."""
        nan = np.full(n_vars, np.nan)
        return GeneStats(n_obs=n_obs, n_vars=n_vars, sum=nan, sumsq=nan,
                         nnz=np.ones(n_vars, dtype=np.int64), sum_native=nan)

    def assumption_holds(self, assumed: GeneStats, actual: GeneStats) -> bool:
        # prepare() reads only which genes are expressed (nnz > 0)
        return bool(np.array_equal(assumed.nnz > 0, actual.nnz > 0))

    def params(self) -> dict[str, Any]:
        return {"n_up": self.n_up, "n_expressed_genes": self._n_kept,
                "tie_break": "default_rng(0) gene permutation (decoupler)"}
