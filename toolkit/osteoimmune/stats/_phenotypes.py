"""Validation and coding of a sample phenotype table."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .._utils import warn

__all__ = ["PhenotypeDesign", "prepare_phenotype"]


def _names(values, limit: int = 10) -> str:
    values = [str(v) for v in values]
    more = f" … (+{len(values) - limit} more)" if len(values) > limit else ""
    return ", ".join(values[:limit]) + more


@dataclass
class PhenotypeDesign:
    """A validated phenotype with its covariates, aligned on the samples kept.

    Attributes
    ----------
    samples : pandas.Index
        Sample ids used (as strings), in the order of the other fields.
    pheno : numpy.ndarray
        Phenotype as numbers (binary: 0 = reference level, 1 = the other level).
    covariates : pandas.DataFrame
        Covariates, index = ``samples``.
    binary : bool
        Whether the phenotype is a two-level contrast.
    contrast : str
        What a positive effect means, e.g. ``"OVX vs sham"`` or ``"per unit of bmd"``.
    levels : tuple
        ``(reference, other)`` for a binary phenotype, empty otherwise.
    n_params : int
        Parameters of ``score ~ phenotype + covariates`` (intercept included).
    """

    name: str
    samples: pd.Index
    pheno: np.ndarray
    covariates: pd.DataFrame
    binary: bool
    contrast: str
    levels: tuple = ()
    n_params: int = 2
    dropped: dict = field(default_factory=dict)

    def subset(self, samples: Sequence[str]) -> PhenotypeDesign:
        """The design restricted to ``samples`` (a subset of :attr:`samples`)."""
        pos = self.samples.get_indexer(pd.Index(samples))
        if (pos < 0).any():
            raise KeyError("subset() got sample ids outside the design.")
        return PhenotypeDesign(self.name, self.samples[pos], self.pheno[pos],
                               self.covariates.iloc[pos], self.binary, self.contrast,
                               self.levels, self.n_params, self.dropped)


def _is_cat(s: pd.Series) -> bool:
    return (isinstance(s.dtype, pd.CategoricalDtype) or s.dtype == object
            or pd.api.types.is_bool_dtype(s) or pd.api.types.is_string_dtype(s))


def prepare_phenotype(phenotypes: pd.DataFrame | pd.Series, phenotype: str,
                      covariates: Sequence[str] = (), sample_ids: Sequence | None = None, *,
                      reference=None, model: str = "ols",
                      what: str = "per-sample scores") -> PhenotypeDesign:
    """Validate a phenotype table and code one phenotype for association.

    Parameters
    ----------
    phenotypes : pandas.DataFrame or pandas.Series
        One row per sample, indexed by sample id.
    phenotype : str
        Column to test.
    covariates : sequence of str
        Columns to adjust for; object, category and bool columns are dummy-coded.
    sample_ids : sequence or None
        Samples present in the scores; ids are matched as strings. Samples of the scores
        missing from the table are dropped with a warning naming them.
    reference : object or None
        Reference level of a binary phenotype (the effect is other − reference). Default:
        the first category of a categorical column, else the smallest value (``0``,
        ``False``, or the first label in sorted order).
    model : str
        The model that will use it (``logit`` requires a binary phenotype).
    what : str
        How the caller names its table in messages.

    Returns
    -------
    PhenotypeDesign

    Raises
    ------
    TypeError, KeyError, ValueError
        Not a DataFrame, unknown columns, duplicated ids, no overlap, constant phenotype or
        covariate, a string phenotype with more than two levels, too few samples for the
        number of parameters.
    """
    if isinstance(phenotypes, pd.Series):
        phenotypes = phenotypes.to_frame(phenotypes.name or phenotype)
    if not isinstance(phenotypes, pd.DataFrame):
        raise TypeError("phenotypes must be a pandas DataFrame indexed by sample id, got "
                        f"{type(phenotypes).__name__}; e.g. pd.read_csv(path, index_col=0).")
    covariates = [covariates] if isinstance(covariates, str) else list(covariates)
    cols = [phenotype, *covariates]
    missing = [c for c in cols if c not in phenotypes.columns]
    if missing:
        raise KeyError(f"columns {missing} are not in the phenotype table (columns: "
                       f"{list(phenotypes.columns)}); check the names or add the columns.")
    if phenotype in covariates:
        raise ValueError(f"{phenotype!r} is both the phenotype and a covariate; remove it "
                         "from covariates.")
    if len(set(covariates)) != len(covariates):
        raise ValueError(f"duplicated covariates: {covariates}.")
    table = phenotypes[cols].copy()
    table.index = pd.Index(phenotypes.index.astype(str), name="sample")
    dup = table.index[table.index.duplicated()].unique()
    if len(dup):
        raise ValueError(f"the phenotype table has duplicated sample ids ({_names(dup)}); "
                         "keep one row per sample (e.g. phenotypes.groupby(level=0).first()).")
    dropped: dict = {}
    if sample_ids is not None:
        ids = pd.Index(pd.Index(sample_ids).astype(str).unique())
        unknown = ids.difference(table.index, sort=False)
        known = ids[ids.isin(table.index)]
        if len(known) == 0:
            hint = ""
            if pd.Index(table.index).str.fullmatch(r"-?\d+\.0").any():
                hint = (" Ids are matched as strings and the phenotype index holds floats "
                        "('1.0' is not '1'): convert it, e.g. "
                        "phenotypes.index = phenotypes.index.astype(int).astype(str).")
            raise ValueError(
                f"no sample id of the {what} is in the phenotype table index (scores: "
                f"{_names(ids, 5)}; phenotypes: {_names(table.index, 5)}). Index the "
                "phenotype table by the same sample ids (e.g. phenotypes.set_index('donor'))."
                + hint)
        if len(unknown):
            dropped["no_phenotype_row"] = list(unknown)
            warn(f"{len(unknown)} sample(s) of the {what} have no row in the phenotype table "
                 f"and are left out: {_names(unknown)}. Add them to the table to use them.")
        table = table.loc[known]
    na = table.index[table.isna().any(axis=1)]
    if len(na):
        bad = [c for c in cols if table.loc[na, c].isna().any()]
        dropped["missing_values"] = list(na)
        warn(f"{len(na)} sample(s) have missing values in {bad} and are left out "
             f"(complete cases): {_names(na)}. Impute or fill them to keep these samples.")
        table = table.drop(index=na)
    n = len(table)
    if n == 0:
        raise ValueError(f"no sample has a complete phenotype row for {cols}.")
    y = table[phenotype]
    levels_all = pd.unique(y)
    if len(levels_all) < 2:
        first = levels_all[0].item() if isinstance(levels_all[0], np.generic) else levels_all[0]
        raise ValueError(f"phenotype {phenotype!r} is constant ({first!r}) across the "
                         f"{n} samples; nothing can be associated with it. Check the column "
                         "or the samples kept.")
    binary = _is_cat(y) or len(levels_all) == 2
    levels: tuple = ()
    if binary:
        if len(levels_all) > 2:
            if not isinstance(y.dtype, pd.CategoricalDtype) and \
                    pd.to_numeric(y, errors="coerce").notna().all():
                raise ValueError(
                    f"phenotype {phenotype!r} holds numbers stored as text ({len(levels_all)} "
                    f"distinct values); convert the column, e.g. phenotypes[{phenotype!r}] = "
                    f"pd.to_numeric(phenotypes[{phenotype!r}]).")
            raise ValueError(
                f"phenotype {phenotype!r} is categorical with {len(levels_all)} levels "
                f"({_names(levels_all)}); associate tests a continuous phenotype or a "
                "two-level contrast. Subset the table to two levels, or encode an ordered "
                "phenotype as numbers.")
        if isinstance(y.dtype, pd.CategoricalDtype):
            order = [c for c in y.cat.categories if c in set(levels_all)]
        else:
            try:
                order = sorted(levels_all)
            except TypeError:
                order = sorted(levels_all, key=str)
        if reference is None:
            ref = order[0]
        else:
            match = [v for v in order if v == reference or str(v) == str(reference)]
            if not match:
                raise ValueError(f"reference={reference!r} is not a level of {phenotype!r} "
                                 f"(levels: {list(order)}).")
            ref = match[0]
        other = next(v for v in order if v is not ref and v != ref)
        pheno = (y != ref).to_numpy(dtype=np.float64)
        levels = (ref, other)
        contrast = f"{other} vs {ref}"
        counts = {ref: int((pheno == 0).sum()), other: int((pheno == 1).sum())}
        small = {k: v for k, v in counts.items() if v < 3}
        if small:
            warn(f"phenotype {phenotype!r}: level(s) with fewer than 3 samples {small}; the "
                 "contrast rests on very few samples.")
    else:
        if reference is not None:
            raise ValueError(f"reference= applies to binary phenotypes; {phenotype!r} is "
                             f"continuous ({len(levels_all)} distinct values).")
        if model == "logit":
            raise ValueError(f"model='logit' needs a binary phenotype; {phenotype!r} has "
                             f"{len(levels_all)} distinct values. Use model='ols' or "
                             "'spearman' for a continuous phenotype.")
        pheno = y.to_numpy(dtype=np.float64)
        contrast = f"per unit of {phenotype}"
    covs = table[covariates]
    n_params = 2
    for c in covariates:
        v = covs[c]
        k = v.nunique()
        if k < 2:
            raise ValueError(f"covariate {c!r} has a single value ({v.iloc[0]!r}) among the "
                             f"{n} samples kept, so its effect cannot be estimated; remove it "
                             "from covariates.")
        n_params += (k - 1) if _is_cat(v) else 1
    if model != "spearman" and n < n_params + 2:
        raise ValueError(
            f"too few samples: {n} samples for a model with {n_params} parameters "
            f"(intercept, {phenotype!r} and covariates {covariates}); at least "
            f"{n_params + 2} are needed. Drop covariates or add samples.")
    if model == "spearman" and n < n_params + 2:
        raise ValueError(f"too few samples: {n} samples for a partial Spearman correlation "
                         f"with {len(covariates)} covariates; at least {n_params + 2} needed.")
    if n - n_params < 5:
        warn(f"only {n - n_params} residual degrees of freedom ({n} samples, {n_params} "
             "parameters); estimates and p-values will be unstable.")
    return PhenotypeDesign(phenotype, table.index, pheno, covs, binary, contrast, levels,
                           n_params, dropped)
