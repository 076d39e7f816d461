"""Cell-level score figures: embeddings coloured by score, distributions per group."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from anndata import AnnData
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from ._utils import (
    SEQUENTIAL_CMAP,
    categorical_palette,
    check_save,
    new_axes,
    save_figure,
)

__all__ = ["scores_by_group", "scores_embedding"]

_SCORES_HINT = ("Pass the DataFrame returned by oi.tl.score(...) or the name of an "
                "adata.obsm key written by oi.tl.score(..., inplace=True).")


def _resolve_scores(adata: AnnData, scores) -> pd.DataFrame:
    """Scores as a DataFrame aligned to ``adata.obs_names``."""
    if isinstance(scores, str):
        if scores not in adata.obsm:
            keys = [k for k in adata.obsm.keys() if k.endswith("_scores")]
            raise KeyError(f"scores={scores!r} is not a key of adata.obsm (score keys present: "
                           f"{keys or 'none'}). {_SCORES_HINT}")
        scores = adata.obsm[scores]
    if not isinstance(scores, pd.DataFrame):
        raise TypeError(f"scores must be a DataFrame or an adata.obsm key, got "
                        f"{type(scores).__name__}. {_SCORES_HINT}")
    if not scores.index.equals(adata.obs_names):
        missing = scores.index.difference(adata.obs_names)
        if len(missing) or len(scores.index.intersection(adata.obs_names)) == 0:
            raise ValueError(f"scores index does not match adata.obs_names ({len(missing)} score "
                             "rows are not observations of adata). Score the same AnnData you "
                             "plot, or subset adata to the scored cells.")
        scores = scores.reindex(adata.obs_names)
    return scores


def _signature_columns(scores: pd.DataFrame, signatures: str | Sequence[str] | None) -> list[str]:
    numeric = [c for c in scores.columns if not str(c).endswith("_pval")
               and pd.api.types.is_numeric_dtype(scores[c])]
    if signatures is None:
        cols = numeric
    else:
        cols = [signatures] if isinstance(signatures, str) else list(signatures)
        unknown = [c for c in cols if c not in scores.columns]
        if unknown:
            raise KeyError(f"signature(s) {unknown} not among the score columns {numeric}; "
                           "pass names from scores.columns.")
    if not cols:
        raise ValueError("no score column to plot: scores has no numeric signature column.")
    return cols


def _grid(n: int, ncols: int, panel: tuple[float, float]) -> tuple[Figure, list[Axes]]:
    ncols = max(1, min(ncols, n))
    nrows = math.ceil(n / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(panel[0] * ncols, panel[1] * nrows),
                             squeeze=False)
    flat = list(axes.ravel())
    for extra in flat[n:]:
        extra.set_visible(False)
    return fig, flat[:n]


def scores_embedding(
    adata: AnnData,
    scores: pd.DataFrame | str,
    signatures: str | Sequence[str] | None = None,
    *,
    basis: str = "umap",
    ncols: int = 3,
    cmap: str = SEQUENTIAL_CMAP,
    point_size: float | None = None,
    vcenter: float | None = None,
    ax: Axes | None = None,
    save: str | os.PathLike | None = None,
) -> Axes | Figure:
    """Embedding (UMAP, PCA, t-SNE...) of the observations coloured by signature scores.

    Drawn with :func:`scanpy.pl.embedding` on a light AnnData that holds only the
    embedding and the scores, so ``adata`` is never modified.

    Parameters
    ----------
    adata
        Observations with ``adata.obsm[f"X_{basis}"]`` (compute it with ``sc.pp.pca`` or
        ``sc.pp.neighbors`` + ``sc.tl.umap``; this function computes nothing).
    scores
        Scores from :func:`osteoimmune.tl.score` (index ``adata.obs_names``) or the name of
        the ``adata.obsm`` key where ``score(..., inplace=True)`` stored them.
    signatures
        One signature name or several; default all score columns (``*_pval`` excluded).
    basis
        Embedding name: ``"umap"``, ``"pca"``, ``"tsne"`` or any ``X_<basis>`` in ``obsm``.
    ncols
        Panels per row when several signatures are drawn.
    cmap
        Colour map (default ``viridis``, colour-blind safe).
    point_size
        Marker size; default scanpy's (``120000 / n_obs``).
    vcenter
        Centre of a diverging colour scale (e.g. ``0`` for zero-centred scores).
    ax
        Draw into this Axes (only with a single signature).
    save
        Write the figure to this path (``.png``, ``.pdf`` or ``.svg``).

    Returns
    -------
    matplotlib.axes.Axes or matplotlib.figure.Figure
        The Axes for a single signature, the Figure of the grid for several.
    """
    import anndata as ad
    import scanpy as sc

    check_save(save)
    if not isinstance(adata, AnnData):
        raise TypeError(f"adata must be an AnnData, got {type(adata).__name__}.")
    key = f"X_{basis}" if not basis.startswith("X_") else basis
    if key not in adata.obsm:
        fix = ("sc.pp.pca(adata)" if basis in ("pca", "X_pca")
               else "sc.pp.neighbors(adata); sc.tl.umap(adata)" if basis in ("umap", "X_umap")
               else f"store the coordinates in adata.obsm[{key!r}]")
        raise KeyError(f"adata.obsm has no {key!r} embedding (has {list(adata.obsm.keys())}); "
                       f"compute it first: {fix}.")
    scores = _resolve_scores(adata, scores)
    cols = _signature_columns(scores, signatures)
    if ax is not None and len(cols) > 1:
        raise ValueError(f"ax= draws one panel but {len(cols)} signatures were asked for; pass "
                         "signatures='<one name>' or leave ax=None for a grid.")
    emb = np.asarray(adata.obsm[key])[:, :2]
    light = ad.AnnData(obs=pd.DataFrame({str(c): scores[c].to_numpy(dtype=float) for c in cols},
                                        index=adata.obs_names.astype(str)),
                       obsm={"X_emb": emb})
    if len(cols) == 1:
        fig, axes = new_axes(ax, (4.5, 4.0))
        axes_list = [axes]
    else:
        fig, axes_list = _grid(len(cols), ncols, (4.5, 4.0))
    for a, col in zip(axes_list, cols):
        sc.pl.embedding(light, basis="emb", color=str(col), ax=a, show=False, cmap=cmap,
                        size=point_size, vcenter=vcenter, title=str(col), frameon=False)
        for coll in a.collections:  # points as an image inside PDF/SVG: small, fast files
            coll.set_rasterized(True)
        a.set_xlabel(f"{basis.removeprefix('X_').upper()}1")
        a.set_ylabel(f"{basis.removeprefix('X_').upper()}2")
    save_figure(fig, save)
    return axes_list[0] if len(cols) == 1 else fig


def _obs_frame(adata: AnnData | pd.DataFrame) -> pd.DataFrame:
    if isinstance(adata, AnnData):
        return adata.obs
    if isinstance(adata, pd.DataFrame):
        return adata
    raise TypeError(f"adata must be an AnnData or its obs DataFrame, got {type(adata).__name__}.")


def _ordered_levels(values: pd.Series) -> list:
    if isinstance(values.dtype, pd.CategoricalDtype):
        present = set(values.dropna().unique())
        return [c for c in values.cat.categories if c in present]
    return sorted(values.dropna().unique(), key=str)


def scores_by_group(
    adata: AnnData | pd.DataFrame,
    scores: pd.DataFrame | str,
    groupby: str,
    signatures: str | Sequence[str] | None = None,
    *,
    hue: str | None = None,
    kind: str = "violin",
    ncols: int = 2,
    ax: Axes | None = None,
    save: str | os.PathLike | None = None,
) -> Axes | Figure:
    """Distribution of signature scores per group (cell type), optionally split by condition.

    Parameters
    ----------
    adata
        AnnData (or its ``obs`` DataFrame) holding the ``groupby`` and ``hue`` columns.
    scores
        Scores from :func:`osteoimmune.tl.score` or an ``adata.obsm`` key (AnnData only).
    groupby
        Column of ``obs`` with the groups on the x axis (e.g. ``"cell_type"``).
    signatures
        One signature or several (one panel each); default all score columns.
    hue
        Optional second column (e.g. ``"condition"``): one violin/box per group × level.
    kind
        ``"violin"`` or ``"box"``.
    ncols
        Panels per row when several signatures are drawn.
    ax
        Draw into this Axes (only with a single signature).
    save
        Write the figure to this path (``.png``, ``.pdf`` or ``.svg``).

    Returns
    -------
    matplotlib.axes.Axes or matplotlib.figure.Figure
        The Axes for a single signature, the Figure of the grid for several.
    """
    import seaborn as sns

    check_save(save)
    if kind not in ("violin", "box"):
        raise ValueError(f"kind={kind!r}; choose 'violin' or 'box'.")
    obs = _obs_frame(adata)
    if isinstance(scores, str):
        if not isinstance(adata, AnnData):
            raise TypeError("scores given as an obsm key needs an AnnData, not a DataFrame; "
                            "pass the scores DataFrame instead.")
        scores = _resolve_scores(adata, scores)
    elif isinstance(adata, AnnData):
        scores = _resolve_scores(adata, scores)
    elif not scores.index.equals(obs.index):
        raise ValueError("scores index does not match the obs index; pass the obs of the scored "
                         "AnnData.")
    for col, name in ((groupby, "groupby"), (hue, "hue")):
        if col is not None and col not in obs.columns:
            raise KeyError(f"{name}={col!r} is not a column of obs (columns: "
                           f"{list(obs.columns)}).")
    cols = _signature_columns(scores, signatures)
    if ax is not None and len(cols) > 1:
        raise ValueError(f"ax= draws one panel but {len(cols)} signatures were asked for; pass "
                         "signatures='<one name>' or leave ax=None for a grid.")
    groups = _ordered_levels(obs[groupby])
    hues = _ordered_levels(obs[hue]) if hue is not None else None
    frame = pd.DataFrame({groupby: obs[groupby].astype(object).to_numpy()},
                         index=obs.index)
    if hue is not None:
        frame[hue] = obs[hue].astype(object).to_numpy()
    width = max(4.0, 0.6 * len(groups) * (len(hues) if hues else 1) + 1.5)
    if len(cols) == 1:
        fig, axes = new_axes(ax, (width, 3.8))
        axes_list = [axes]
    else:
        fig, axes_list = _grid(len(cols), ncols, (width, 3.8))
    palette = categorical_palette(hues if hues else groups)
    for a, col in zip(axes_list, cols):
        data = frame.assign(score=scores[col].to_numpy(dtype=float)).dropna()
        common = dict(data=data, x=groupby, y="score", order=groups, ax=a)
        if hue is not None:
            common.update(hue=hue, hue_order=hues, palette=palette)
        else:
            common.update(hue=groupby, hue_order=groups, palette=palette, legend=False)
        if kind == "violin":
            sns.violinplot(**common, inner="quartile", cut=0, density_norm="width",
                           linewidth=0.8)
        else:
            sns.boxplot(**common, fliersize=1.5, linewidth=0.8)
        a.set_title(str(col))
        a.set_xlabel(groupby)
        a.set_ylabel("score")
        a.tick_params(axis="x", labelrotation=30)
        for lab in a.get_xticklabels():
            lab.set_horizontalalignment("right")
        if hue is not None and a.get_legend() is not None:
            sns.move_legend(a, "upper left", bbox_to_anchor=(1.0, 1.0), title=hue, frameon=False)
    if ax is None:
        fig.tight_layout()
    save_figure(fig, save)
    return axes_list[0] if len(cols) == 1 else fig
