"""Seurat / scanpy module score (``method="module"``).

Score = mean expression of the signature genes minus the mean of control genes drawn from
the same expression bins, exactly as :func:`scanpy.tl.score_genes` computes it (Tirosh 2016;
Satija 2015): gene means over all observations (accumulated in the data's precision),
``bins = rank(mean, method="min") // round(n_genes / (n_bins - 1))``; for each signature the
generator is re-seeded with ``random_state``; for every bin that holds a signature gene, in
ascending order, ``ctrl_size`` genes are drawn without replacement from the bin (all of them
if the bin is not larger), signature genes are removed, and the union is the control set.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from .._utils import warn
from ._base import ScoreContext, ScoringMethod


class ModuleScore(ScoringMethod):
    """Module score with matched control genes.

    Parameters
    ----------
    ctrl_size
        Control genes drawn per expression bin.
    n_bins
        Number of expression bins.
    gene_pool
        Genes allowed as controls (default: all genes).
    """

    name = "module"
    reference = "Tirosh et al. 2016 Science, doi:10.1126/science.aad0501; scanpy.tl.score_genes"
    needs_stats = True
    stats_level = "native"
    accepts_counts = False

    def __init__(self, ctrl_size: int = 50, n_bins: int = 25, gene_pool=None) -> None:
        if int(ctrl_size) < 1:
            raise ValueError(f"ctrl_size must be >= 1, got {ctrl_size}.")
        if int(n_bins) < 2:
            raise ValueError(f"n_bins must be >= 2, got {n_bins}.")
        self.ctrl_size = int(ctrl_size)
        self.n_bins = int(n_bins)
        self.gene_pool = gene_pool

    def prepare(self, ctx: ScoreContext) -> None:
        names = ctx.var_names
        means = pd.Series(ctx.stats.mean_native, index=np.arange(ctx.n_vars))
        if self.gene_pool is not None:
            pool = names.get_indexer(pd.Index(self.gene_pool))
            pool = np.sort(pool[pool >= 0])
            if pool.size == 0:
                raise ValueError("gene_pool shares no gene with the data.")
            means = means.iloc[pool]
        means = means[np.isfinite(means.to_numpy())]
        n_items = int(np.round(len(means) / (self.n_bins - 1)))
        if n_items < 1:
            raise ValueError(
                f"Too few genes ({len(means)}) for n_bins={self.n_bins}; lower n_bins."
            )
        cut = (means.rank(method="min") // n_items).to_numpy()
        cut_index = means.index.to_numpy()
        cut_of = pd.Series(cut, index=cut_index)
        seed = ctx.random_state
        cols_rows: list[np.ndarray] = []
        cols_vals: list[np.ndarray] = []
        self._names = []
        self._n_ctrl = []
        for m in ctx.matched:
            sig = np.unique(m.idx)  # scanpy uses the set of genes
            sig_in_pool = sig[np.isin(sig, cut_index)]
            rs = np.random.RandomState(seed) if seed is not None else np.random.RandomState()
            ctrl: set[int] = set()
            sig_set = set(sig.tolist())
            for c in np.unique(cut_of.loc[sig_in_pool].to_numpy()):
                r_genes = cut_index[cut == c]  # var order
                if self.ctrl_size < len(r_genes):
                    r_genes = r_genes[rs.choice(len(r_genes), self.ctrl_size, replace=False)]
                ctrl.update(g for g in r_genes.tolist() if g not in sig_set)
            if not ctrl:
                raise RuntimeError(
                    f"Signature {m.name!r}: no control genes found in any expression bin; "
                    "the data set has too few genes outside the signature."
                )
            ctrl_arr = np.array(sorted(ctrl), dtype=np.int64)
            rows = np.concatenate([sig, ctrl_arr])
            vals = np.concatenate([np.full(len(sig), 1.0 / len(sig)),
                                   np.full(len(ctrl_arr), -1.0 / len(ctrl_arr))])
            cols_rows.append(rows)
            cols_vals.append(vals)
            self._names.append(m.name)
            self._n_ctrl.append(len(ctrl_arr))
            if np.any(m.weights < 0):
                warn(f"Signature {m.name!r} has a negative (down) part; the module score uses "
                     "all its genes with equal weight. Use method='ucell' or 'zmean' for "
                     "signed signatures.")
        k = len(cols_rows)
        cols = np.concatenate([np.full(len(r), j) for j, r in enumerate(cols_rows)])
        self._W = sp.csr_matrix((np.concatenate(cols_vals), (np.concatenate(cols_rows), cols)),
                                shape=(ctx.n_vars, k))
        self._offset = np.zeros(k)

    def columns(self) -> list[str]:
        return list(self._names)

    def linear(self):
        return self._W, self._offset

    def params(self) -> dict[str, Any]:
        return {"ctrl_size": self.ctrl_size, "n_bins": self.n_bins,
                "n_control_genes": dict(zip(self._names, self._n_ctrl))}
