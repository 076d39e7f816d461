"""Weighted mean of per-gene z-scores (``method="zmean"``).

Each gene is standardised over all observations, ``z = (x - mean) / sd`` (sd with
``ddof=1``; a constant gene has z = 0, as :func:`scanpy.pp.scale` treats it), and the score
is ``sum(w_g * z_g) / sum(|w_g|)`` with the signature's signed weights (``+1`` for unweighted
up genes, ``-1`` for down genes). Equal to the weighted mean of ``sc.pp.scale(adata).X`` over
the signature genes, without densifying the matrix.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp

from ._base import ScoreContext, ScoringMethod


class ZMean(ScoringMethod):
    """Weighted z-score mean. No options."""

    name = "zmean"
    reference = "Lee et al. 2008 PLoS Comput Biol (z-score combination), doi:10.1371/journal.pcbi.1000217"
    needs_stats = True

    def prepare(self, ctx: ScoreContext) -> None:
        mean = ctx.stats.mean
        sd = np.sqrt(ctx.stats.var(ddof=1))
        sd[sd == 0] = 1.0
        rows, cols, vals = [], [], []
        offset = np.zeros(len(ctx.matched))
        self._names = []
        for j, m in enumerate(ctx.matched):
            w = m.weights / np.abs(m.weights).sum()
            coef = w / sd[m.idx]
            rows.append(m.idx)
            cols.append(np.full(len(m.idx), j))
            vals.append(coef)
            offset[j] = -np.sum(coef * mean[m.idx])
            self._names.append(m.name)
        self._W = sp.csr_matrix((np.concatenate(vals), (np.concatenate(rows),
                                                        np.concatenate(cols))),
                                shape=(ctx.n_vars, len(ctx.matched)))
        self._offset = offset

    def columns(self) -> list[str]:
        return list(self._names)

    def linear(self):
        return self._W, self._offset

    def params(self) -> dict[str, Any]:
        return {"ddof": 1}
