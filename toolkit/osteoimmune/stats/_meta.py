"""Inverse-variance meta-analysis: fixed effect and DerSimonian–Laird random effects."""

from __future__ import annotations

import numpy as np
import scipy.stats as st

__all__ = ["combine"]


def combine(effects, ses, method: str = "random", alpha: float = 0.05) -> dict:
    """Combine per-cohort effects with inverse-variance weights.

    Fixed effect: ``w_i = 1/se_i^2``, ``theta = sum(w_i y_i)/sum(w_i)``,
    ``se = 1/sqrt(sum(w_i))``. Cochran's ``Q = sum(w_i (y_i - theta_FE)^2)`` on ``k - 1``
    degrees of freedom; ``I^2 = max(0, (Q - (k-1))/Q)``. DerSimonian–Laird:
    ``tau^2 = max(0, (Q - (k-1)) / (sum(w) - sum(w^2)/sum(w)))`` and random-effects
    weights ``1/(se_i^2 + tau^2)``. Same numbers as
    :func:`statsmodels.stats.meta_analysis.combine_effects` (``method_re="dl"``).

    Parameters
    ----------
    effects, ses : array-like of float
        Per-cohort estimates and standard errors (missing or non-positive SEs excluded).
    method : {"random", "fixed"}
        Which combined estimate to report (heterogeneity statistics are always given).
    alpha : float
        1 - confidence level of the normal interval.

    Returns
    -------
    dict
        ``k, effect, se, ci_low, ci_high, z, pvalue, Q, Q_pvalue, I2, tau2``.
    """
    if method not in ("random", "fixed"):
        raise ValueError(f"method must be 'random' or 'fixed', got {method!r}.")
    y = np.asarray(effects, dtype=np.float64)
    s = np.asarray(ses, dtype=np.float64)
    ok = np.isfinite(y) & np.isfinite(s) & (s > 0)
    y, s = y[ok], s[ok]
    k = len(y)
    nan = float("nan")
    if k == 0:
        return dict(k=0, effect=nan, se=nan, ci_low=nan, ci_high=nan, z=nan, pvalue=nan,
                    Q=nan, Q_pvalue=nan, I2=nan, tau2=nan)
    w = 1.0 / s**2
    fe = float(np.sum(w * y) / np.sum(w))
    Q = float(np.sum(w * (y - fe) ** 2))
    dfq = k - 1
    if k > 1:
        c = float(np.sum(w) - np.sum(w**2) / np.sum(w))
        tau2 = max(0.0, (Q - dfq) / c) if c > 0 else 0.0
        I2 = max(0.0, (Q - dfq) / Q) if Q > 0 else 0.0
        q_p = float(st.chi2.sf(Q, dfq))
    else:
        tau2, I2, q_p = 0.0, nan, nan
    if method == "fixed":
        est, se = fe, float(1.0 / np.sqrt(np.sum(w)))
    else:
        wr = 1.0 / (s**2 + tau2)
        est, se = float(np.sum(wr * y) / np.sum(wr)), float(1.0 / np.sqrt(np.sum(wr)))
    zc = st.norm.ppf(1 - alpha / 2)
    z = est / se
    return dict(k=k, effect=est, se=se, ci_low=est - zc * se, ci_high=est + zc * se, z=z,
                pvalue=float(2 * st.norm.sf(abs(z))), Q=Q, Q_pvalue=q_p, I2=I2, tau2=tau2)
