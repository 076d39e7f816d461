"""``oi.tl.aggregate``: per-sample (pseudobulk) summaries of cell-level scores."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from anndata import AnnData

from .._utils import warn

__all__ = ["aggregate"]

STATS = ("mean", "median", "fraction_above")


def _names(values, limit: int = 10) -> str:
    values = [str(v) for v in values]
    more = f" … (+{len(values) - limit} more)" if len(values) > limit else ""
    return ", ".join(values[:limit]) + more


def _resolve_scores(adata: AnnData, scores) -> pd.DataFrame:
    if isinstance(scores, str):
        if scores not in adata.obsm:
            raise KeyError(f"scores={scores!r} is not a key of adata.obsm (keys: "
                           f"{list(adata.obsm.keys()) or 'none'}); run oi.tl.score(adata, ..., "
                           "inplace=True) first or pass the scores DataFrame.")
        obj = adata.obsm[scores]
        if isinstance(obj, pd.DataFrame):
            frame = obj
        else:
            arr = np.asarray(obj)
            if arr.ndim != 2:
                raise ValueError(f"adata.obsm[{scores!r}] is not two-dimensional.")
            frame = pd.DataFrame(arr, index=adata.obs_names,
                                 columns=[f"{scores}_{i}" for i in range(arr.shape[1])])
        frame = frame.copy()
        frame.index = adata.obs_names
        return frame
    if isinstance(scores, pd.Series):
        scores = scores.to_frame(scores.name or "score")
    if not isinstance(scores, pd.DataFrame):
        raise TypeError("scores must be the DataFrame returned by oi.tl.score (index = "
                        f"obs_names) or a key of adata.obsm, got {type(scores).__name__}.")
    return scores


def aggregate(
    adata: AnnData,
    scores: pd.DataFrame | str,
    sample_key: str,
    groupby: str | None = None,
    stat: str = "mean",
    threshold: float | Mapping[str, float] | None = None,
    min_cells: int = 10,
    *,
    signatures: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Summarise cell-level scores per sample (and cell type): the pseudobulk step.

    Cells are not replicates of a sample-level phenotype; this turns cell scores into one
    value per sample × group, the unit that :func:`osteoimmune.tl.associate` tests. Only
    ``adata.obs`` is read (never ``X``), so backed AnnData objects work.

    Parameters
    ----------
    adata : anndata.AnnData
        Cells; ``adata.obs`` holds ``sample_key`` (and ``groupby``).
    scores : pandas.DataFrame or str
        Cell × signature scores from :func:`osteoimmune.tl.score` (index = obs names; a
        subset of the cells is allowed and uses only those cells, with a warning) or a key
        of ``adata.obsm``. scDRS p-value columns (``<name>_pval``) are left out unless
        named in ``signatures``.
    sample_key : str
        Column of ``adata.obs`` with the sample (donor, mouse) of each cell.
    groupby : str or None
        Column of ``adata.obs`` with cell types; ``None`` pools all cells of a sample
        (``group = "all"``).
    stat : {"mean", "median", "fraction_above"}
        Per-sample summary; ``fraction_above`` is the fraction of cells with a score above
        ``threshold``.
    threshold : float or dict of str to float or None
        Threshold of ``fraction_above`` (one value, or one per signature).
    min_cells : int
        Sample × group pairs with fewer cells are dropped, with a warning naming them.
    signatures : sequence of str or None
        Score columns to use (default: all, except scDRS ``_pval`` columns).

    Returns
    -------
    pandas.DataFrame
        Long table with columns ``sample, group, signature, value, n_cells`` (one row per
        sample × group × signature). ``.attrs`` records ``stat``, ``threshold``,
        ``min_cells``, ``sample_key``, ``groupby`` and the ``dropped`` pairs.

    Raises
    ------
    KeyError
        Unknown ``sample_key``/``groupby``/signature, or score rows that are not cells of
        ``adata``.
    ValueError
        Unknown ``stat``, missing ``threshold``, non-numeric scores, or nothing left after
        ``min_cells``.

    Examples
    --------
    >>> scores = oi.tl.score(adata, lib, method="module")            # doctest: +SKIP
    >>> per_sample = oi.tl.aggregate(adata, scores, sample_key="donor",
    ...                              groupby="cell_type", min_cells=20)  # doctest: +SKIP
    """
    if not isinstance(adata, AnnData):
        raise TypeError(f"adata must be an AnnData object, got {type(adata).__name__}; "
                        "pass the AnnData the scores were computed on.")
    if stat not in STATS:
        raise ValueError(f"stat={stat!r} is not one of {STATS}; choose one of them.")
    if stat == "fraction_above" and threshold is None:
        raise ValueError("stat='fraction_above' needs threshold= (a number, or a dict "
                         "{signature: number}).")
    if stat != "fraction_above" and threshold is not None:
        raise ValueError(f"threshold= only applies to stat='fraction_above', not {stat!r}.")
    if isinstance(min_cells, bool) or not isinstance(min_cells, int | np.integer):
        raise TypeError(f"min_cells must be an integer (cells per sample × group), got "
                        f"{type(min_cells).__name__} {min_cells!r}; e.g. min_cells=10.")
    if int(min_cells) < 1:
        raise ValueError(f"min_cells must be at least 1, got {min_cells}.")
    obs = adata.obs
    for key, role in ((sample_key, "sample_key"), (groupby, "groupby")):
        if key is not None and key not in obs.columns:
            raise KeyError(f"{role}={key!r} is not a column of adata.obs (columns: "
                           f"{list(obs.columns)}); pass one of them.")
    frame = _resolve_scores(adata, scores)
    if frame.index.has_duplicates:
        raise ValueError("the scores index has duplicated cell names; it must be "
                         "adata.obs_names (call adata.obs_names_make_unique() before scoring).")
    outside = frame.index.difference(obs.index, sort=False)
    if len(outside):
        raise KeyError(f"{len(outside)} score rows are not cells of adata ({_names(outside, 5)});"
                       " pass the AnnData the scores were computed on.")
    if signatures is None:
        cols = [c for c in frame.columns
                if not (str(c).endswith("_pval") and str(c)[:-5] in frame.columns)]
    else:
        signatures = [signatures] if isinstance(signatures, str) else list(signatures)
        unknown = [s for s in signatures if s not in frame.columns]
        if unknown:
            raise KeyError(f"signatures {unknown} are not score columns ({list(frame.columns)}).")
        cols = signatures
    if not cols:
        raise ValueError("no score column to aggregate.")
    nonnum = [c for c in cols if not pd.api.types.is_numeric_dtype(frame[c])]
    if nonnum:
        raise ValueError(f"score columns {nonnum} are not numeric; pass signatures= to choose "
                         "the numeric score columns.")
    if len(frame) < len(obs):
        warn(f"the scores cover {len(frame)} of the {len(obs)} cells of adata; aggregating "
             "those cells only.")
    meta = obs.loc[frame.index, [sample_key] + ([groupby] if groupby else [])]
    na = meta.isna().any(axis=1)
    if na.any():
        warn(f"{int(na.sum())} cells have no {sample_key!r}"
             f"{' or ' + repr(groupby) if groupby else ''} value and are left out; fill "
             "these obs values to keep them.")
    values = frame.loc[~na.to_numpy(), cols].astype(np.float64)
    meta = meta.loc[~na.to_numpy()]
    n_nan = int(values.isna().to_numpy().sum())
    if n_nan:
        warn(f"{n_nan} missing score values; summaries ignore them and n_cells counts all "
             "cells of the pair.")
    if stat == "fraction_above":
        if isinstance(threshold, Mapping):
            miss = [c for c in cols if c not in threshold]
            if miss:
                raise KeyError(f"threshold has no value for signatures {miss}.")
            thr = pd.Series({c: float(threshold[c]) for c in cols})
        else:
            thr = pd.Series(float(threshold), index=cols)
        values = values.gt(thr, axis=1).astype(np.float64).where(values.notna())
    sample = meta[sample_key].astype(str).to_numpy()
    group = meta[groupby].astype(str).to_numpy() if groupby else np.full(len(meta), "all")
    keys = pd.MultiIndex.from_arrays([sample, group], names=["sample", "group"])
    values.index = keys
    grouped = values.groupby(level=["sample", "group"], sort=True)
    summary = grouped.median() if stat == "median" else grouped.mean()
    n_cells = grouped.size()
    small = n_cells[n_cells < int(min_cells)]
    if len(small):
        listed = [f"{s}/{g} ({n})" for (s, g), n in small.items()]
        warn(f"{len(small)} sample × group pair(s) have fewer than min_cells={min_cells} cells "
             f"and are dropped: {_names(listed)}. Lower min_cells to keep them.")
    keep = n_cells.index[n_cells >= int(min_cells)]
    if len(keep) == 0:
        raise ValueError(f"no sample × group pair has at least min_cells={min_cells} cells; "
                         "lower min_cells or check sample_key/groupby.")
    summary = summary.loc[keep]
    long = summary.reset_index().melt(id_vars=["sample", "group"], var_name="signature",
                                      value_name="value")
    long["n_cells"] = n_cells.loc[pd.MultiIndex.from_frame(long[["sample", "group"]])] \
        .to_numpy().astype(np.int64)
    long = long.sort_values(["sample", "group", "signature"], kind="mergesort") \
        .reset_index(drop=True)
    long["signature"] = long["signature"].astype(str)
    long.attrs.update({"stat": stat, "threshold": threshold, "min_cells": int(min_cells),
                       "sample_key": sample_key, "groupby": groupby,
                       "dropped": [(s, g, int(n)) for (s, g), n in small.items()]})
    return long
