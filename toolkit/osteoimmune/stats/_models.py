"""Sample-level association models: OLS, logit, Spearman, permutation, mixed model.

Everything here works on plain numpy/pandas objects (no AnnData). Conventions:

* ``score`` is a signature score (per sample, or per cell for the mixed model);
* ``pheno`` is the phenotype coded as a number (binary phenotypes as 0 = reference level,
  1 = other level);
* ``covs`` is a DataFrame of covariates (numeric columns enter linearly, object, category
  and bool columns are dummy-coded with the statsmodels/patsy formula ``C()``).

For ``ols``, ``permutation`` and ``mixedlm`` the score is the response and the phenotype
a predictor (``score ~ pheno + covariates``): the effect is the change of the score per
unit of the phenotype, or between the two levels of a binary phenotype. For ``logit`` the
binary phenotype is the response (``pheno ~ score + covariates``): the effect is the log
odds ratio per unit of the score.
"""

from __future__ import annotations

import math
import warnings
from itertools import permutations

import numpy as np
import pandas as pd
import patsy
import scipy.stats as st
import statsmodels.formula.api as smf
from statsmodels.tools.sm_exceptions import ConvergenceWarning, PerfectSeparationWarning

__all__ = [
    "covariate_terms",
    "logit_test",
    "mixedlm_test",
    "ols_many",
    "ols_test",
    "permutation_test",
    "spearman_test",
]

RESULT_KEYS = ("n", "effect", "se", "ci_low", "ci_high", "effect_std", "se_std",
               "statistic", "pvalue")


def _is_categorical(s: pd.Series) -> bool:
    return (isinstance(s.dtype, pd.CategoricalDtype) or s.dtype == object
            or pd.api.types.is_bool_dtype(s) or pd.api.types.is_string_dtype(s))


def covariate_terms(covs: pd.DataFrame | None) -> tuple[pd.DataFrame, list[str]]:
    """Rename covariates to safe formula names and build their formula terms.

    Parameters
    ----------
    covs : pandas.DataFrame or None
        Covariates, one column each.

    Returns
    -------
    tuple
        ``(renamed, terms)``: the covariates renamed ``c0, c1, ...`` and the formula terms
        (``"c0"`` for numeric, ``"C(c1)"`` for categorical columns).
    """
    if covs is None or covs.shape[1] == 0:
        return pd.DataFrame(index=None if covs is None else covs.index), []
    renamed = covs.copy()
    renamed.columns = [f"c{i}" for i in range(covs.shape[1])]
    terms = []
    for c in renamed.columns:
        if _is_categorical(renamed[c]):
            renamed[c] = renamed[c].astype(str)
            terms.append(f"C({c})")
        else:
            renamed[c] = renamed[c].astype(np.float64)
            terms.append(c)
    return renamed, terms


def _covariate_matrix(covs: pd.DataFrame | None, n: int) -> np.ndarray:
    """Intercept + dummy-coded covariates as a dense (n × q) array."""
    renamed, terms = covariate_terms(covs)
    if not terms:
        return np.ones((n, 1))
    return np.asarray(patsy.dmatrix(" + ".join(terms), renamed, return_type="dataframe"),
                      dtype=np.float64)


def _sd(v: np.ndarray) -> float:
    return float(np.std(v, ddof=1)) if len(v) > 1 else float("nan")


def _pheno_scale(pheno: np.ndarray, binary: bool) -> float:
    return 1.0 if binary else _sd(pheno)


def _nan_result(n: int) -> dict:
    out = dict.fromkeys(RESULT_KEYS, float("nan"))
    out["n"] = n
    return out


def ols_test(score: np.ndarray, pheno: np.ndarray, covs: pd.DataFrame | None = None, *,
             binary: bool = False, robust: str | None = None, alpha: float = 0.05) -> dict:
    """OLS of ``score ~ pheno + covariates`` (statsmodels formula API).

    Parameters
    ----------
    score : numpy.ndarray
        One score per sample.
    pheno : numpy.ndarray
        Phenotype per sample (binary phenotypes coded 0/1).
    covs : pandas.DataFrame or None
        Covariates per sample (same order).
    binary : bool
        Whether ``pheno`` is a 0/1 contrast (sets the standardised effect).
    robust : {None, "HC0", "HC1", "HC2", "HC3"}
        Heteroscedasticity-consistent standard errors.
    alpha : float
        1 - confidence level of the interval.

    Returns
    -------
    dict
        ``n, effect, se, ci_low, ci_high, effect_std, se_std, statistic, pvalue``.
        ``effect_std`` is the effect in standard deviations of the score per standard
        deviation of a continuous phenotype (a standardised coefficient), or between the
        two levels of a binary one (a Cohen's d on the score's total SD).
    """
    score = np.asarray(score, dtype=np.float64)
    pheno = np.asarray(pheno, dtype=np.float64)
    n = len(score)
    renamed, terms = covariate_terms(covs)
    data = renamed.reset_index(drop=True) if terms else pd.DataFrame(index=range(n))
    data["score"] = score
    data["pheno"] = pheno
    formula = "score ~ " + " + ".join(["pheno", *terms])
    fit = smf.ols(formula, data).fit(cov_type=robust.upper() if robust else "nonrobust")
    b, se = float(fit.params["pheno"]), float(fit.bse["pheno"])
    lo, hi = (float(v) for v in fit.conf_int(alpha).loc["pheno"])
    scale = _pheno_scale(pheno, binary) / _sd(score)
    return {"n": n, "effect": b, "se": se, "ci_low": lo, "ci_high": hi,
            "effect_std": b * scale, "se_std": se * scale,
            "statistic": float(fit.tvalues["pheno"]), "pvalue": float(fit.pvalues["pheno"])}


def ols_many(scores: np.ndarray, pheno: np.ndarray, covs: pd.DataFrame | None = None, *,
             binary: bool = False, alpha: float = 0.05) -> list[dict]:
    """:func:`ols_test` (classical errors) for many score columns sharing one design.

    One least-squares solve for all columns; identical numbers to statsmodels OLS.

    Parameters
    ----------
    scores : numpy.ndarray
        ``(n_samples, n_scores)`` without missing values.
    pheno : numpy.ndarray
        Phenotype per sample (binary coded 0/1).
    covs : pandas.DataFrame or None
        Covariates per sample.
    binary : bool
        Whether ``pheno`` is a 0/1 contrast.
    alpha : float
        1 - confidence level.

    Returns
    -------
    list of dict
        One result per column, keys as :func:`ols_test`.
    """
    Y = np.asarray(scores, dtype=np.float64)
    if Y.ndim == 1:
        Y = Y[:, None]
    x = np.asarray(pheno, dtype=np.float64)
    n = len(x)
    X = np.column_stack([x, _covariate_matrix(covs, n)])
    XtX_inv = np.linalg.pinv(X.T @ X)
    B = XtX_inv @ (X.T @ Y)
    R = Y - X @ B
    df = n - np.linalg.matrix_rank(X)
    s2 = np.einsum("ij,ij->j", R, R) / df
    se = np.sqrt(XtX_inv[0, 0] * s2)
    b = B[0]
    with np.errstate(divide="ignore", invalid="ignore"):
        t = b / se
    p = 2 * st.t.sf(np.abs(t), df)
    q = st.t.ppf(1 - alpha / 2, df)
    sds = Y.std(axis=0, ddof=1)
    psc = _pheno_scale(x, binary)
    return [{"n": n, "effect": float(b[j]), "se": float(se[j]),
             "ci_low": float(b[j] - q * se[j]), "ci_high": float(b[j] + q * se[j]),
             "effect_std": float(b[j] * psc / sds[j]), "se_std": float(se[j] * psc / sds[j]),
             "statistic": float(t[j]), "pvalue": float(p[j])} for j in range(Y.shape[1])]


def logit_test(score: np.ndarray, pheno: np.ndarray, covs: pd.DataFrame | None = None, *,
               alpha: float = 0.05, **_: object) -> dict:
    """Logistic regression ``pheno ~ score + covariates`` for a 0/1 phenotype.

    Parameters
    ----------
    score : numpy.ndarray
        One score per sample.
    pheno : numpy.ndarray
        Binary phenotype coded 0 (reference level) / 1.
    covs : pandas.DataFrame or None
        Covariates per sample.
    alpha : float
        1 - confidence level of the (Wald) interval.

    Returns
    -------
    dict
        ``effect`` is the log odds ratio of the non-reference level per unit of score,
        ``effect_std`` per standard deviation of the score; Wald z statistic and p-value.
        All NaN (with a warning) under perfect separation or non-convergence.
    """
    score = np.asarray(score, dtype=np.float64)
    pheno = np.asarray(pheno, dtype=np.float64)
    n = len(score)
    renamed, terms = covariate_terms(covs)
    data = renamed.reset_index(drop=True) if terms else pd.DataFrame(index=range(n))
    data["score"] = score
    data["pheno"] = pheno
    formula = "pheno ~ " + " + ".join(["score", *terms])
    with warnings.catch_warnings():
        warnings.simplefilter("error", PerfectSeparationWarning)
        warnings.simplefilter("error", ConvergenceWarning)
        try:
            fit = smf.logit(formula, data).fit(disp=0, maxiter=200)
        except (PerfectSeparationWarning, ConvergenceWarning, np.linalg.LinAlgError,
                ValueError) as err:
            from .._utils import warn

            warn(f"logit did not converge ({type(err).__name__}: {err}); this usually means "
                 "perfect separation (the score splits the two groups exactly) or too few "
                 "samples per level. The result is reported as NaN; use model='ols' (score "
                 "difference between groups) or model='permutation' instead.")
            return _nan_result(n)
    b, se = float(fit.params["score"]), float(fit.bse["score"])
    lo, hi = (float(v) for v in fit.conf_int(alpha).loc["score"])
    sd = _sd(score)
    return {"n": n, "effect": b, "se": se, "ci_low": lo, "ci_high": hi,
            "effect_std": b * sd, "se_std": se * sd,
            "statistic": float(fit.tvalues["score"]), "pvalue": float(fit.pvalues["score"])}


def spearman_test(score: np.ndarray, pheno: np.ndarray, covs: pd.DataFrame | None = None, *,
                  alpha: float = 0.05, **_: object) -> dict:
    """Spearman rank correlation, partial on the covariates when there are any.

    Without covariates this is :func:`scipy.stats.spearmanr` (t-distribution p-value).
    With covariates it is the partial Spearman correlation: the ranks of score and
    phenotype are each residualised on the covariates (intercept + dummy coding), and the
    Pearson correlation of the residuals is tested with a t statistic on ``n - 2 - k``
    degrees of freedom (``k`` covariate columns).

    Parameters
    ----------
    score, pheno : numpy.ndarray
        Values per sample.
    covs : pandas.DataFrame or None
        Covariates per sample.
    alpha : float
        1 - confidence level of the Fisher-z interval (``se = 1/sqrt(n - 3 - k)``).

    Returns
    -------
    dict
        ``effect`` = ``effect_std`` = rho; ``se`` is the standard error of atanh(rho).
    """
    score = np.asarray(score, dtype=np.float64)
    pheno = np.asarray(pheno, dtype=np.float64)
    n = len(score)
    Z = _covariate_matrix(covs, n)
    k = Z.shape[1] - 1
    if k == 0:
        res = st.spearmanr(score, pheno)
        rho, p = float(res.statistic), float(res.pvalue)
        df = n - 2
    else:
        rs, rp = st.rankdata(score), st.rankdata(pheno)
        beta, *_ = np.linalg.lstsq(Z, np.column_stack([rs, rp]), rcond=None)
        r = np.column_stack([rs, rp]) - Z @ beta
        denom = math.sqrt(float(r[:, 0] @ r[:, 0]) * float(r[:, 1] @ r[:, 1]))
        rho = float(r[:, 0] @ r[:, 1]) / denom if denom > 0 else float("nan")
        df = n - 2 - k
        tval = rho * math.sqrt(df / max(1e-300, 1 - rho**2))
        p = float(2 * st.t.sf(abs(tval), df))
    tstat = rho * math.sqrt(df / max(1e-300, 1 - rho**2)) if np.isfinite(rho) else np.nan
    se_z = 1.0 / math.sqrt(n - 3 - k) if n - 3 - k > 0 else float("nan")
    zc = st.norm.ppf(1 - alpha / 2)
    z = math.atanh(np.clip(rho, -1 + 1e-15, 1 - 1e-15)) if np.isfinite(rho) else np.nan
    return {"n": n, "effect": rho, "se": se_z, "ci_low": float(np.tanh(z - zc * se_z)),
            "ci_high": float(np.tanh(z + zc * se_z)), "effect_std": rho, "se_std": se_z,
            "statistic": float(tstat), "pvalue": p}


def _orthonormal(Z: np.ndarray) -> np.ndarray:
    q, r = np.linalg.qr(Z)
    keep = np.abs(np.diag(r)) > 1e-10 * max(1.0, float(np.abs(r).max()))
    return q[:, keep]


def permutation_test(scores: np.ndarray, pheno: np.ndarray, covs: pd.DataFrame | None = None,
                     *, binary: bool = False, n_perm: int = 999,
                     random_state: int | np.random.Generator | None = 0,
                     exact: bool | None = None, alpha: float = 0.05,
                     max_exact: int = 40_320, chunk: int = 256) -> list[dict]:
    """Freedman–Lane permutation test of the phenotype coefficient, many scores at once.

    The statistic is the OLS t statistic of ``pheno`` in ``score ~ pheno + covariates``.
    Freedman–Lane (1983): fit the reduced model ``score ~ covariates``, permute its
    residuals across samples, add them back to the reduced fitted values and refit the full
    model; without covariates this is permuting the scores (equivalently the phenotype).
    All score columns share the same permutations. The two-sided p-value is
    ``(1 + #{|t*| >= |t|}) / (1 + n_perm)`` (Monte Carlo), or ``#{|t*| >= |t|} / n!``
    over all ``n!`` permutations (exact). Effect, standard error and confidence interval
    are those of the parametric OLS fit; only the p-value comes from the permutations.

    Parameters
    ----------
    scores : numpy.ndarray
        ``(n_samples, n_scores)`` scores without missing values.
    pheno : numpy.ndarray
        Phenotype per sample (binary coded 0/1).
    covs : pandas.DataFrame or None
        Covariates per sample.
    binary : bool
        Whether ``pheno`` is a 0/1 contrast (standardised effect).
    n_perm : int
        Monte-Carlo permutations.
    random_state : int, numpy.random.Generator or None
        Seed of the permutations.
    exact : bool or None
        Enumerate all permutations; ``None`` does so when ``n! <= n_perm``.
    alpha : float
        1 - confidence level of the interval.
    max_exact : int
        Largest ``n!`` enumerated.
    chunk : int
        Permutations evaluated per block (memory bound).

    Returns
    -------
    list of dict
        One result per score column (keys as :func:`ols_test`, plus ``n_perm`` and
        ``exact``).
    """
    from .._utils import check_random_state

    Y = np.asarray(scores, dtype=np.float64)
    if Y.ndim == 1:
        Y = Y[:, None]
    x = np.asarray(pheno, dtype=np.float64)
    n, S = Y.shape
    Z = _covariate_matrix(covs, n)
    Q = _orthonormal(Z)
    q = Q.shape[1]
    df = n - q - 1
    xr = x - Q @ (Q.T @ x)
    sxx = float(xr @ xr)
    E = Y - Q @ (Q.T @ Y)                      # reduced-model residuals (n × S)
    ee = np.einsum("ij,ij->j", E, E)           # invariant under permutation

    def tstats(bx: np.ndarray, qe2: np.ndarray) -> np.ndarray:
        b = bx / sxx
        rss = ee - qe2 - b**2 * sxx
        with np.errstate(divide="ignore", invalid="ignore"):
            return b / np.sqrt(np.maximum(rss, 0) / df / sxx)

    t_obs = tstats(xr @ E, np.zeros(S))
    nfact = math.factorial(n) if n <= 12 else None
    if exact is None:
        exact = nfact is not None and nfact <= n_perm
    if exact:
        if nfact is None or nfact > max_exact:
            raise ValueError(f"exact=True needs all {n}! permutations (more than "
                             f"{max_exact}); use exact=False with n_perm Monte-Carlo "
                             "permutations.")
        perm_iter = np.array(list(permutations(range(n))), dtype=np.intp)
    else:
        rng = check_random_state(random_state)
        perm_iter = np.array([rng.permutation(n) for _ in range(int(n_perm))], dtype=np.intp)
    B = len(perm_iter)
    count = np.zeros(S)
    tol = 1e-10 * np.maximum(1.0, np.abs(t_obs))
    for start in range(0, B, chunk):
        P = perm_iter[start:start + chunk]
        Ep = E[P]                                   # (b, n, S)
        bx = np.einsum("i,bis->bs", xr, Ep)
        QtE = np.einsum("iq,bis->bqs", Q, Ep)
        t = tstats(bx, np.einsum("bqs,bqs->bs", QtE, QtE))
        count += (np.abs(t) >= np.abs(t_obs) - tol).sum(axis=0)
    pvals = count / B if exact else (count + 1) / (B + 1)
    out = ols_many(Y, x, covs, binary=binary, alpha=alpha)
    for j, r in enumerate(out):
        r["pvalue"] = float(pvals[j])
        r["n_perm"] = B
        r["exact"] = bool(exact)
    return out


def mixedlm_test(score: np.ndarray, pheno: np.ndarray, groups: np.ndarray,
                 covs: pd.DataFrame | None = None, *, binary: bool = False,
                 pheno_sd: float | None = None, alpha: float = 0.05, **_: object) -> dict:
    """Linear mixed model ``score ~ pheno + covariates + (1 | sample)`` on cell-level scores.

    Parameters
    ----------
    score : numpy.ndarray
        Score per cell.
    pheno : numpy.ndarray
        Phenotype of each cell's sample (binary coded 0/1).
    groups : numpy.ndarray
        Sample id of each cell (random intercept).
    covs : pandas.DataFrame or None
        Sample-level covariates repeated per cell.
    binary : bool
        Whether ``pheno`` is a 0/1 contrast.
    pheno_sd : float or None
        SD of the phenotype across samples (for the standardised effect); computed from the
        cells when None.
    alpha : float
        1 - confidence level of the Wald interval.

    Returns
    -------
    dict
        Keys as :func:`ols_test` plus ``n_cells`` (``n`` counts samples); REML fit, Wald z
        p-value for the phenotype coefficient. ``effect_std`` uses the cell-level SD of
        the score.
    """
    score = np.asarray(score, dtype=np.float64)
    pheno = np.asarray(pheno, dtype=np.float64)
    groups = np.asarray(groups)
    n_samples = len(pd.unique(groups))
    renamed, terms = covariate_terms(covs)
    data = (renamed.reset_index(drop=True) if terms
            else pd.DataFrame(index=range(len(score))))
    data["score"] = score
    data["pheno"] = pheno
    data["sample_"] = groups
    formula = "score ~ " + " + ".join(["pheno", *terms])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        fit = smf.mixedlm(formula, data, groups=data["sample_"]).fit(reml=True)
    conv = [w for w in caught if issubclass(w.category, ConvergenceWarning)]
    if conv or not fit.converged:
        from .._utils import warn

        warn(f"mixedlm: the fit reported a convergence problem ({conv[0].message if conv else 'not converged'}); "
             "treat its p-value with care, or aggregate per sample and use model='ols'.")
    b, se = float(fit.fe_params["pheno"]), float(fit.bse_fe["pheno"])
    lo, hi = (float(v) for v in fit.conf_int(alpha).loc["pheno"])
    psd = pheno_sd if pheno_sd is not None else _sd(pheno)
    scale = (1.0 if binary else psd) / _sd(score)
    return {"n": n_samples, "n_cells": len(score), "effect": b, "se": se, "ci_low": lo,
            "ci_high": hi, "effect_std": b * scale, "se_std": se * scale,
            "statistic": float(fit.tvalues["pheno"]), "pvalue": float(fit.pvalues["pheno"])}
