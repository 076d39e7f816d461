"""``oi.tl.meta_analyze``: combine association results of several cohorts."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from .._utils import warn
from ..stats import bh_by_family, combine

__all__ = ["meta_analyze"]


def _stack(results) -> pd.DataFrame:
    if isinstance(results, pd.DataFrame):
        if "cohort" not in results.columns:
            raise ValueError("a single results table needs a 'cohort' column naming the cohort "
                             "of each row; or pass a list/dict of per-cohort tables.")
        return results.copy()
    if isinstance(results, Mapping):
        items = list(results.items())
    elif isinstance(results, Sequence) and not isinstance(results, str):
        items = [(f"cohort{i + 1}", r) for i, r in enumerate(results)]
    else:
        raise TypeError("results must be a list or dict of oi.tl.associate tables, or one "
                        f"table with a 'cohort' column; got {type(results).__name__}.")
    frames = []
    for name, r in items:
        if not isinstance(r, pd.DataFrame):
            raise TypeError(f"results[{name!r}] is a {type(r).__name__}, not a DataFrame.")
        frames.append(r.assign(cohort=str(name)))
    if not frames:
        raise ValueError("results is empty.")
    return pd.concat(frames, ignore_index=True)


def meta_analyze(
    results,
    by: Sequence[str] = ("signature", "group", "phenotype"),
    method: str = "random",
    *,
    effect: str = "effect",
    alpha: float = 0.05,
    family: str | Sequence[str] | None = None,
) -> pd.DataFrame:
    """Inverse-variance meta-analysis of :func:`osteoimmune.tl.associate` results.

    Fixed effect or DerSimonian–Laird random effects per ``by`` combination, with Cochran's
    Q, I² and tau² (same numbers as :func:`statsmodels.stats.meta_analysis.combine_effects`
    with ``method_re="dl"``). Spearman results are combined on the Fisher-z scale
    (``atanh(rho)`` with ``se = 1/sqrt(n - 3 - k)``) and transformed back to rho.

    Parameters
    ----------
    results : list, dict or pandas.DataFrame
        Per-cohort result tables (a dict names the cohorts; a list names them
        ``cohort1, cohort2, ...``) or one table with a ``cohort`` column.
    by : sequence of str
        Columns identifying one meta-analysed test.
    method : {"random", "fixed"}
        Combined estimate reported.
    effect : {"effect", "effect_std"}
        Combine raw effects (same score scale in every cohort) or standardised effects
        (cohorts scored or measured differently).
    alpha : float
        1 - confidence level.
    family : str, sequence of str or None
        Columns of the output defining BH families (default: all rows).

    Returns
    -------
    pandas.DataFrame
        ``by`` columns, ``model, method, k`` (cohorts combined), ``n_total``,
        ``n_per_cohort`` (``"name=n; ..."``), ``effect, se, ci_low, ci_high, z, pvalue,
        qvalue, Q, Q_pvalue, I2, tau2`` and ``cohorts``.

    Examples
    --------
    >>> res_a = oi.tl.associate(per_sample_a, donors_a, "bmd", ["age", "sex"])  # doctest: +SKIP
    >>> res_b = oi.tl.associate(per_sample_b, donors_b, "bmd", ["age", "sex"])  # doctest: +SKIP
    >>> oi.tl.meta_analyze({"cohort_a": res_a, "cohort_b": res_b})           # doctest: +SKIP
    """
    if method not in ("random", "fixed"):
        raise ValueError(f"method must be 'random' or 'fixed', got {method!r}.")
    if effect not in ("effect", "effect_std"):
        raise ValueError(f"effect must be 'effect' or 'effect_std', got {effect!r}.")
    se_col = "se" if effect == "effect" else "se_std"
    table = _stack(results)
    by = [by] if isinstance(by, str) else list(by)
    need = [*by, effect, se_col, "n", "cohort"]
    missing = [c for c in need if c not in table.columns]
    if missing:
        raise KeyError(f"results lack columns {missing}; pass tables from oi.tl.associate.")
    dup = table.duplicated([*by, "cohort"])
    if dup.any():
        raise ValueError(f"a cohort has several rows for the same {by}; add the column that "
                         "tells them apart to by= (e.g. 'model' or 'contrast').")
    rows = []
    mixed_models = []
    for key, sub in table.groupby(by, sort=True, dropna=False):
        key = key if isinstance(key, tuple) else (key,)
        models = sorted(sub["model"].astype(str).unique()) if "model" in sub else ["?"]
        if len(models) > 1:
            mixed_models.append(f"{key}: {models}")
        y = sub[effect].to_numpy(dtype=np.float64)
        s = sub[se_col].to_numpy(dtype=np.float64)
        fisher = models == ["spearman"]
        if fisher:
            y = np.arctanh(np.clip(y, -1 + 1e-15, 1 - 1e-15))
        ok = np.isfinite(y) & np.isfinite(s) & (s > 0)
        out = combine(y[ok], s[ok], method=method, alpha=alpha)
        if fisher:
            for c in ("effect", "ci_low", "ci_high"):
                out[c] = float(np.tanh(out[c]))
        used = sub.loc[ok]
        rows.append({**dict(zip(by, key)), "model": "/".join(models), "method": method,
                     **{k: out[k] for k in ("k",)},
                     "n_total": int(used["n"].sum()),
                     "n_per_cohort": "; ".join(f"{c}={int(n)}" for c, n
                                               in zip(used["cohort"], used["n"])),
                     **{k: out[k] for k in ("effect", "se", "ci_low", "ci_high", "z",
                                            "pvalue", "Q", "Q_pvalue", "I2", "tau2")},
                     "cohorts": ", ".join(used["cohort"].astype(str))})
    if mixed_models:
        warn("different models are combined for " + "; ".join(mixed_models[:5]) +
             "; their effects may not be on the same scale (use effect='effect_std' or one "
             "model per cohort).")
    res = pd.DataFrame(rows)
    res["qvalue"] = bh_by_family(res, family)
    cols = [*by, "model", "method", "k", "n_total", "n_per_cohort", "effect", "se", "ci_low",
            "ci_high", "z", "pvalue", "qvalue", "Q", "Q_pvalue", "I2", "tau2", "cohorts"]
    return res[cols]
