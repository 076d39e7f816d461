"""``oi.tl.associate``: sample-level association of signature scores with phenotypes."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from .._utils import warn
from ..stats import (
    bh_by_family,
    logit_test,
    mixedlm_test,
    ols_many,
    ols_test,
    permutation_test,
    prepare_phenotype,
    spearman_test,
)
from ..stats._models import RESULT_KEYS

__all__ = ["associate"]

MODELS = ("ols", "logit", "spearman", "permutation", "mixedlm")
LONG_COLUMNS = {"sample", "signature", "value"}

_PSEUDOREP = (
    "Cells of one sample are not independent replicates of a sample-level phenotype: a "
    "regression on cells counts every cell as a replicate, so its p-values are far too small "
    "(with a handful of donors it reports p < 1e-20 for effects that do not exist; see "
    "tests/test_calibration.py). Aggregate per sample first with oi.tl.aggregate(adata, "
    "scores, sample_key=...) and pass that table, or keep the cells and use "
    "model='mixedlm' with sample_key=... (random intercept per sample)."
)


def _names(values, limit: int = 10) -> str:
    values = [str(v) for v in values]
    more = f" … (+{len(values) - limit} more)" if len(values) > limit else ""
    return ", ".join(values[:limit]) + more


def _as_list(x) -> list:
    if x is None:
        return []
    return [x] if isinstance(x, str) else list(x)


def _wide_tables(per_sample: pd.DataFrame, signatures, groups) -> dict[str, pd.DataFrame]:
    """``{group: samples × signatures}`` from a long or a wide per-sample table."""
    if LONG_COLUMNS.issubset(per_sample.columns):
        long = per_sample.copy()
        if "group" not in long.columns:
            long["group"] = "all"
        long["sample"] = long["sample"].astype(str)
        long["group"] = long["group"].astype(str)
        long["signature"] = long["signature"].astype(str)
        dup = long.duplicated(["sample", "group", "signature"])
        if dup.any():
            ex = long.loc[dup, ["sample", "group", "signature"]].head(3).to_dict("records")
            raise ValueError(
                "the long per-sample table has several rows for the same sample × group × "
                f"signature (e.g. {ex}); it must hold one value per sample (as "
                "oi.tl.aggregate returns). If these are cell-level scores: " + _PSEUDOREP)
        if not pd.api.types.is_numeric_dtype(long["value"]):
            raise ValueError("the 'value' column of the per-sample table is not numeric "
                             f"(dtype {long['value'].dtype}); convert it, e.g. "
                             "per_sample['value'] = pd.to_numeric(per_sample['value']).")
        out = {}
        for g, sub in long.groupby("group", sort=True):
            out[g] = sub.pivot(index="sample", columns="signature", values="value")
    else:
        wide = per_sample
        if wide.index.has_duplicates:
            dup = wide.index[wide.index.duplicated()].unique()
            raise ValueError(
                f"the per-sample table has duplicated index ids ({_names(dup, 5)}), so its "
                "rows are not samples (cell-level scores?). " + _PSEUDOREP)
        cols = list(wide.columns) if signatures is None else _as_list(signatures)
        unknown = [c for c in cols if c not in wide.columns]
        if unknown:
            raise KeyError(f"signatures {unknown} are not columns of the per-sample table.")
        nonnum = [c for c in cols if not pd.api.types.is_numeric_dtype(wide[c])]
        if nonnum:
            raise ValueError(
                f"columns {nonnum} of the per-sample table are not numeric. Pass a samples × "
                "signatures table of scores (index = sample ids), the long table of "
                "oi.tl.aggregate, or signatures=[...] to choose the score columns.")
        table = wide[cols].astype(np.float64)
        table.index = table.index.astype(str)
        table.columns = table.columns.astype(str)
        out = {"all": table}
    if signatures is not None:
        sigs = [str(s) for s in _as_list(signatures)]
        for g in out:
            present = [s for s in sigs if s in out[g].columns]
            out[g] = out[g][present]
        if not any(out[g].shape[1] for g in out):
            raise KeyError(f"none of the signatures {sigs} is in the per-sample table.")
    if groups is not None:
        groups = [str(g) for g in _as_list(groups)]
        unknown = [g for g in groups if g not in out]
        if unknown:
            raise KeyError(f"groups {unknown} are not in the per-sample table (groups: "
                           f"{sorted(out)}).")
        out = {g: out[g] for g in groups}
    return out


def _subset_problem(design, phenotype: str) -> str | None:
    if len(np.unique(design.pheno)) < 2:
        return f"{phenotype!r} is constant among them"
    for c in design.covariates.columns:
        if design.covariates[c].nunique() < 2:
            return f"covariate {c!r} is constant among them"
    if len(design.pheno) < design.n_params + 2:
        return f"{design.n_params} parameters need at least {design.n_params + 2} samples"
    return None


def associate(
    per_sample: pd.DataFrame,
    phenotypes: pd.DataFrame,
    phenotype: str | Sequence[str],
    covariates: Sequence[str] = (),
    model: str = "ols",
    *,
    reference=None,
    robust: str | bool | None = None,
    n_perm: int = 999,
    exact: bool | None = None,
    random_state: int | None = 0,
    family: str | Sequence[str] | None = None,
    alpha: float = 0.05,
    signatures: Sequence[str] | None = None,
    groups: Sequence[str] | None = None,
    sample_key: str | None = None,
    groupby: str | None = None,
) -> pd.DataFrame:
    """Test signature scores against a sample-level phenotype, with covariates.

    The unit of replication is the sample (donor, mouse, bulk library), never the cell.

    Parameters
    ----------
    per_sample : pandas.DataFrame
        One of: the long table of :func:`osteoimmune.tl.aggregate` (``sample, group,
        signature, value``); a samples × signatures table (index = sample ids; e.g. scores
        of bulk samples straight from :func:`osteoimmune.tl.score`); or, for
        ``model="mixedlm"`` only, cell-level scores with a ``sample_key`` column (and an
        optional ``groupby`` column).
    phenotypes : pandas.DataFrame
        One row per sample, indexed by sample id, with the phenotype and covariates.
        Ids are matched as strings.
    phenotype : str or sequence of str
        Column(s) to test: continuous (BMD, T-score, age) or binary (``"OVX"/"sham"``,
        ``"low_BMD"/"high_BMD"``, 0/1, bool).
    covariates : sequence of str
        Adjustment columns; numeric enter linearly, object/category/bool are dummy-coded
        (statsmodels formula ``C()``). Not used by ``spearman`` without covariates (with
        covariates it becomes a partial Spearman correlation).
    model : {"ols", "logit", "spearman", "permutation", "mixedlm"}
        ``ols``: ``score ~ phenotype + covariates`` (effect = score change per unit of the
        phenotype, or between the two levels of a binary one). ``logit``: ``phenotype ~
        score + covariates`` for a binary phenotype (effect = log odds ratio per unit of
        score). ``spearman``: rank correlation (partial on covariates). ``permutation``:
        the OLS model with a Freedman–Lane permutation p-value (residuals of ``score ~
        covariates`` are permuted; without covariates the scores are permuted), exact
        when ``n! <= n_perm``. ``mixedlm``: cell-level ``score ~ phenotype + covariates +
        (1 | sample)`` (REML; needs ``sample_key``).
    reference : object or None
        Reference level of a binary phenotype (effect = other level − reference). Default:
        first category of a categorical column, else the smallest/first sorted level; the
        ``contrast`` column states it.
    robust : {None, "HC0", "HC1", "HC2", "HC3"} or bool
        Heteroscedasticity-robust standard errors for ``ols`` (``True`` = ``"HC3"``).
    n_perm : int
        Permutations of ``model="permutation"``.
    exact : bool or None
        Enumerate all permutations (default: when ``n! <= n_perm``).
    random_state : int or None
        Seed of the permutations.
    family : str, sequence of str or None
        Result columns defining the families of the Benjamini–Hochberg correction;
        ``None``: all tests of the call form one family.
    alpha : float
        1 - confidence level of the intervals.
    signatures, groups : sequence of str or None
        Restrict the tests to these signatures / groups.
    sample_key, groupby : str or None
        Columns of a cell-level table (``model="mixedlm"``).

    Returns
    -------
    pandas.DataFrame
        One row per signature × group × phenotype: ``signature, group, phenotype,
        contrast, model, n`` (samples; ``n_cells`` too for mixedlm), ``effect, se, ci_low,
        ci_high`` (raw scale), ``effect_std, se_std`` (standardised: score SDs per SD of a
        continuous phenotype or between binary levels; log OR per score SD for logit; rho
        for spearman), ``statistic, pvalue, qvalue`` (plus ``n_perm, exact`` for
        permutation). Tests that cannot run (too few samples in a group) are NaN.

    Raises
    ------
    ValueError
        Cell-level input with a model other than ``mixedlm`` (pseudo-replication), unknown
        model, constant phenotype, too few samples, a phenotype that does not fit the
        model; see :func:`osteoimmune.stats.prepare_phenotype` for the phenotype checks.

    Examples
    --------
    Continuous phenotype (BMD) adjusted for age and sex, on per-donor means per cell type:

    >>> per_sample = oi.tl.aggregate(adata, scores, sample_key="donor",
    ...                              groupby="cell_type")                  # doctest: +SKIP
    >>> res = oi.tl.associate(per_sample, donors, phenotype="bmd",
    ...                       covariates=["age", "sex"], model="ols")       # doctest: +SKIP

    Differential scores between conditions (no continuous phenotype): a binary phenotype
    with a stated reference level. OVX vs sham mice, permutation p-values:

    >>> mice = pd.DataFrame({"surgery": ["OVX", "OVX", "OVX", "sham", "sham", "sham"]},
    ...                     index=["m1", "m2", "m3", "m4", "m5", "m6"])     # doctest: +SKIP
    >>> res = oi.tl.associate(per_mouse, mice, "surgery", reference="sham",
    ...                       model="permutation")                          # doctest: +SKIP
    >>> res[["signature", "contrast", "effect", "pvalue"]]  # contrast "OVX vs sham" # doctest: +SKIP

    Trained vs naive macrophages of a bulk experiment (scores of samples, no cells):

    >>> bulk_scores = oi.tl.score(bulk, lib, method="zmean")               # doctest: +SKIP
    >>> oi.tl.associate(bulk_scores, samples, "treatment", reference="naive") # doctest: +SKIP
    """
    if model not in MODELS:
        raise ValueError(f"model={model!r} is not one of {MODELS}; choose one of them.")
    if not isinstance(per_sample, pd.DataFrame):
        raise TypeError("per_sample must be a pandas DataFrame (the output of "
                        f"oi.tl.aggregate or a samples × signatures table), got "
                        f"{type(per_sample).__name__}.")
    if robust is True:
        robust = "HC3"
    if robust in (False, None):
        robust = None
    elif model != "ols":
        raise ValueError(f"robust= applies to model='ols', not {model!r}.")
    elif str(robust).upper() not in ("HC0", "HC1", "HC2", "HC3"):
        raise ValueError(f"robust={robust!r} must be one of HC0, HC1, HC2, HC3 (or True).")
    if model == "mixedlm" and sample_key is None:
        raise ValueError("model='mixedlm' fits cell-level scores with a random intercept per "
                         "sample: pass the cell-level table (cells × signatures plus a sample "
                         "column) and sample_key='<that column>'. For per-sample tables use "
                         "model='ols'.")
    if sample_key is not None and model != "mixedlm":
        raise ValueError(f"sample_key= marks a cell-level table, which model={model!r} cannot "
                         "use. " + _PSEUDOREP)
    if not 0 < float(alpha) < 1:
        raise ValueError(f"alpha must lie in (0, 1) (1 - confidence level), got {alpha!r}; "
                         "e.g. alpha=0.05 for 95% intervals.")
    if model == "permutation" and int(n_perm) < 1:
        raise ValueError(f"n_perm must be positive, got {n_perm}.")
    phenos = _as_list(phenotype)
    if not phenos:
        raise ValueError("phenotype= names no column.")
    covariates = _as_list(covariates)
    rows: list[dict] = []
    skipped: list[str] = []
    if model == "mixedlm":
        rows = _associate_cells(per_sample, phenotypes, phenos, covariates, reference,
                                sample_key, groupby, signatures, groups, alpha, skipped)
    else:
        tables = _wide_tables(per_sample, signatures, groups)
        all_samples = pd.Index(sorted(set().union(*[t.index for t in tables.values()])))
        for ph in phenos:
            design = prepare_phenotype(phenotypes, ph, covariates, all_samples,
                                       reference=reference, model=model,
                                       what="per-sample scores")
            for g, table in tables.items():
                table = table.loc[table.index.isin(design.samples)]
                rows.extend(_test_group(table, design, ph, g, model, robust, n_perm, exact,
                                        random_state, alpha, skipped))
    if skipped:
        warn(f"{len(skipped)} test(s) could not run and are NaN: {_names(skipped, 8)}.")
    res = pd.DataFrame(rows)
    if res.empty:
        raise ValueError("no test could be run (no signature × group with enough samples).")
    res["qvalue"] = bh_by_family(res, family)
    front = ["signature", "group", "phenotype", "contrast", "model", "n"]
    extra = ["n_cells"] if "n_cells" in res.columns else []
    tail = ["n_perm", "exact"] if "n_perm" in res.columns else []
    order = front + extra + [k for k in RESULT_KEYS if k != "n"] + ["qvalue"] + tail
    res = res[order]
    res.attrs["params"] = {"model": model, "covariates": covariates, "robust": robust,
                           "n_perm": int(n_perm) if model == "permutation" else None,
                           "random_state": random_state, "family": family, "alpha": alpha}
    return res


def _row(sig, g, ph, design, model, result) -> dict:
    return {"signature": sig, "group": g, "phenotype": ph, "contrast": design.contrast,
            "model": model, **result}


def _test_group(table: pd.DataFrame, design, ph, g, model, robust, n_perm, exact,
                random_state, alpha, skipped) -> list[dict]:
    rows = []
    fns = {"ols": ols_test, "logit": logit_test, "spearman": spearman_test}
    notna = table.notna()
    patterns: dict[tuple, list[str]] = {}
    for sig in table.columns:
        patterns.setdefault(tuple(notna[sig].to_numpy()), []).append(sig)
    by_sig: dict[str, dict] = {}
    for pattern, sigs in patterns.items():
        samples = table.index[np.array(pattern, dtype=bool)]
        sub = design.subset(samples) if len(samples) else None
        problem = "no samples" if sub is None else _subset_problem(sub, ph)
        if problem:
            for sig in sigs:
                skipped.append(f"{sig}/{g}/{ph} ({len(samples)} samples: {problem})")
                by_sig[sig] = {k: np.nan for k in ("effect", "se", "ci_low", "ci_high",
                                                  "effect_std", "se_std", "statistic",
                                                  "pvalue")} | {"n": len(samples)}
            continue
        Y = table.loc[samples, sigs].to_numpy(dtype=np.float64)
        const = np.nanstd(Y, axis=0) == 0
        if model == "ols" and robust is None:
            res = ols_many(Y, sub.pheno, sub.covariates,
                           binary=sub.binary, alpha=alpha)
        elif model == "permutation":
            res = permutation_test(Y, sub.pheno, sub.covariates, binary=sub.binary,
                                   n_perm=n_perm, random_state=random_state, exact=exact,
                                   alpha=alpha)
        else:
            res = []
            for j in range(len(sigs)):
                if const[j]:
                    res.append(None)
                    continue
                kw = {"binary": sub.binary, "alpha": alpha}
                if model == "ols":
                    kw["robust"] = robust
                res.append(fns[model](Y[:, j], sub.pheno, sub.covariates, **kw))
        for j, sig in enumerate(sigs):
            if const[j]:
                skipped.append(f"{sig}/{g}/{ph} (score constant across samples)")
                res[j] = {k: np.nan for k in RESULT_KEYS} | {"n": len(samples)}
            by_sig[sig] = res[j]
    for sig in table.columns:
        rows.append(_row(sig, g, ph, design, model, by_sig[sig]))
    return rows


def _associate_cells(cells: pd.DataFrame, phenotypes, phenos, covariates, reference,
                     sample_key, groupby, signatures, groups, alpha, skipped) -> list[dict]:
    for key, role in ((sample_key, "sample_key"), (groupby, "groupby")):
        if key is not None and key not in cells.columns:
            raise KeyError(f"{role}={key!r} is not a column of the cell-level table "
                           f"(columns: {list(cells.columns)}).")
    meta_cols = [sample_key] + ([groupby] if groupby else [])
    if signatures is None:
        sigs = [c for c in cells.columns if c not in meta_cols
                and pd.api.types.is_numeric_dtype(cells[c])
                and not (str(c).endswith("_pval") and str(c)[:-5] in cells.columns)]
    else:
        sigs = _as_list(signatures)
        unknown = [s for s in sigs if s not in cells.columns]
        if unknown:
            raise KeyError(f"signatures {unknown} are not columns of the cell-level table.")
    if not sigs:
        raise ValueError("the cell-level table has no numeric score column.")
    sample = cells[sample_key].astype(str)
    grp = cells[groupby].astype(str) if groupby else pd.Series("all", index=cells.index)
    if groups is not None:
        wanted = [str(g) for g in _as_list(groups)]
        unknown = [g for g in wanted if g not in set(grp)]
        if unknown:
            raise KeyError(f"groups {unknown} are not in column {groupby!r}.")
    else:
        wanted = sorted(grp.unique())
    rows = []
    for ph in phenos:
        design = prepare_phenotype(phenotypes, ph, covariates, sample.unique(),
                                   reference=reference, model="mixedlm",
                                   what="cell-level scores")
        pos = design.samples.get_indexer(sample)
        keep_cells = pos >= 0
        pheno_sd = 1.0 if design.binary else float(np.std(design.pheno, ddof=1))
        for g in wanted:
            in_g = keep_cells & (grp.to_numpy() == g)
            for sig in sigs:
                vals = cells[sig].to_numpy(dtype=np.float64)
                m = in_g & np.isfinite(vals)
                samples_here = pd.unique(sample.to_numpy()[m])
                sub = design.subset(samples_here) if len(samples_here) else None
                problem = _subset_problem(sub, ph) if sub is not None else "no cells"
                if problem:
                    skipped.append(f"{sig}/{g}/{ph} ({problem})")
                    r = {k: np.nan for k in RESULT_KEYS} | {"n": len(samples_here),
                                                             "n_cells": int(m.sum())}
                else:
                    p = pos[m]
                    covs = design.covariates.iloc[p] if covariates else None
                    r = mixedlm_test(vals[m], design.pheno[p], sample.to_numpy()[m], covs,
                                     binary=design.binary, pheno_sd=pheno_sd, alpha=alpha)
                rows.append(_row(sig, g, ph, design, "mixedlm", r))
    return rows
