"""Checks of the input expression scale."""

from __future__ import annotations

from dataclasses import dataclass

import numba as nb
import numpy as np


@dataclass(frozen=True)
class ScaleReport:
    """What the values of an expression matrix look like.

    ``kind`` is one of ``"counts"`` (non-negative integers), ``"log_normalized"`` (sparse,
    non-integer, max below 50: normalize_total + log1p), ``"log_intensity"`` (dense log-scale
    microarray intensities or log expression of bulk samples), ``"linear"`` (non-integer
    values above 50: normalised but not log-transformed), ``"scaled"`` (negative values:
    centred or z-scored data) or ``"empty"``.
    """

    kind: str
    max: float
    min: float
    zero_fraction: float
    integer_fraction: float
    n_checked: int

    @property
    def is_bulk_like(self) -> bool:
        return self.kind == "log_intensity"


@nb.njit(nogil=True, cache=True)
def _value_summary(data):
    """Finite non-zero values of ``data``: their number, how many are whole numbers,
    their maximum and minimum (one pass, no copy)."""
    n = 0
    n_int = 0
    vmax = -np.inf
    vmin = np.inf
    for p in range(data.shape[0]):
        x = np.float64(data[p])
        if np.isfinite(x) and x != 0:
            n += 1
            n_int += x == np.floor(x)
            vmax = max(vmax, x)
            vmin = min(vmin, x)
    return n, n_int, vmax, vmin


def detect_scale(data: np.ndarray, n_rows: int, n_cols: int) -> ScaleReport:
    """Classify the scale of expression values from the stored values of ``n_rows`` rows.

    Parameters
    ----------
    data
        Stored (non-zero) values of the rows checked.
    n_rows, n_cols
        Size of the block they come from (to compute the fraction of zeros).
    """
    vals = np.asarray(data).ravel()
    if vals.dtype.kind not in "fiu":
        vals = vals.astype(np.float64)
    n, n_int, vmax, vmin = _value_summary(vals)
    total = max(n_rows * n_cols, 1)
    if n == 0:
        return ScaleReport("empty", 0.0, 0.0, 1.0, 1.0, n_rows)
    zero_frac = 1.0 - n / total
    int_frac = n_int / n
    vmax, vmin = float(vmax), float(vmin)
    if vmin < 0:
        kind = "scaled"
    elif int_frac == 1.0 and vmax > 1:
        kind = "counts"
    elif vmax > 50:
        kind = "linear"
    elif zero_frac < 0.2:
        kind = "log_intensity"
    else:
        kind = "log_normalized"
    return ScaleReport(kind, vmax, vmin, zero_frac, int_frac, n_rows)


_FIX_COUNTS_CELLS = (
    "normalise and log-transform first: sc.pp.normalize_total(adata, target_sum=1e4); "
    "sc.pp.log1p(adata) (or store them in a layer and pass layer=...)"
)
_FIX_COUNTS_BULK = (
    "normalise bulk RNA-seq counts first with oi.pp.normalize_bulk(adata) (CPM + log1p)"
)


def scale_error(report: ScaleReport, method: str, where: str, obs_word: str) -> str | None:
    """Message for a scale the method cannot use, or None when the scale is fine."""
    if report.kind == "counts":
        fix = _FIX_COUNTS_BULK if obs_word == "samples" else _FIX_COUNTS_CELLS
        return (
            f"{where} looks like raw counts (all {report.n_checked} checked {obs_word} hold "
            f"whole numbers, max {report.max:g}), but method={method!r} expects "
            f"log-normalised expression: {fix}. If the values really are log-scale, pass "
            "allow_counts=True."
        )
    if report.kind == "linear":
        return (
            f"{where} looks normalised but not log-transformed (non-integer values up to "
            f"{report.max:g}); method={method!r} expects log-scale expression: apply "
            "sc.pp.log1p(adata) (single cell) or log2(x + 1) (intensities), or pass "
            "allow_counts=True to score as is."
        )
    return None
