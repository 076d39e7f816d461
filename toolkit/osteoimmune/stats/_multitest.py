"""Multiple-testing correction."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

__all__ = ["bh_adjust", "bh_by_family"]


def bh_adjust(pvalues: Sequence[float] | np.ndarray) -> np.ndarray:
    """Benjamini–Hochberg q-values; NaN p-values stay NaN and do not count as tests.

    Parameters
    ----------
    pvalues : array-like of float
        Raw p-values.

    Returns
    -------
    numpy.ndarray
        q-values in the input order (same as ``statsmodels.stats.multitest.multipletests``
        with ``method="fdr_bh"`` on the non-missing p-values).
    """
    p = np.asarray(pvalues, dtype=np.float64)
    q = np.full(p.shape, np.nan)
    ok = np.isfinite(p)
    m = int(ok.sum())
    if m == 0:
        return q
    pv = p[ok]
    order = np.argsort(pv, kind="mergesort")
    ranked = pv[order] * m / np.arange(1, m + 1)
    ranked = np.minimum.accumulate(ranked[::-1])[::-1]
    out = np.empty(m)
    out[order] = np.minimum(ranked, 1.0)
    q[ok] = out
    return q


def bh_by_family(table: pd.DataFrame, family: str | Sequence[str] | None = None,
                 pvalue: str = "pvalue") -> np.ndarray:
    """BH q-values of ``table[pvalue]``, within each family of tests.

    Parameters
    ----------
    table : pandas.DataFrame
        Results with a p-value column.
    family : str, sequence of str or None
        Column(s) defining the families; ``None`` treats all rows as one family.
    pvalue : str
        Name of the p-value column.

    Returns
    -------
    numpy.ndarray
        q-values aligned with the rows of ``table``.
    """
    p = table[pvalue].to_numpy(dtype=np.float64)
    if family is None or (not isinstance(family, str) and len(family) == 0):
        return bh_adjust(p)
    cols = [family] if isinstance(family, str) else list(family)
    missing = [c for c in cols if c not in table.columns]
    if missing:
        raise KeyError(f"family columns {missing} are not result columns; choose from "
                       f"{list(table.columns)}.")
    q = np.full(len(table), np.nan)
    for _, idx in table.groupby(cols, sort=False, dropna=False).indices.items():
        q[idx] = bh_adjust(p[idx])
    return q
