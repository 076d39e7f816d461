"""Sample-level figures: score vs phenotype, forest plot, effect heatmap."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.lines import Line2D
from scipy import stats

from ._utils import (
    DIVERGING_CMAP,
    NONSIGNIFICANT_COLOR,
    SEQUENTIAL_CMAP,
    SIGNIFICANT_COLOR,
    categorical_palette,
    check_save,
    new_axes,
    pick_one,
    require_columns,
    save_figure,
    significance_stars,
)

__all__ = ["association_heatmap", "association_scatter", "forest"]

_PER_SAMPLE_HINT = ("Pass the long table returned by oi.tl.aggregate (columns sample, group, "
                    "signature, value, n_cells).")
_RESULTS_HINT = ("Pass the tidy table returned by oi.tl.associate or oi.tl.meta_analyze "
                 "(columns signature, group, effect, ci_low, ci_high, qvalue).")


def _ols_band(x: np.ndarray, y: np.ndarray, level: float, n_grid: int = 100):
    """Least-squares line of y on x and its pointwise confidence band (t-based, analytic)."""
    n = x.size
    xm = x.mean()
    sxx = float(np.sum((x - xm) ** 2))
    slope = float(np.sum((x - xm) * (y - y.mean())) / sxx)
    intercept = float(y.mean() - slope * xm)
    resid = y - (intercept + slope * x)
    s2 = float(np.sum(resid**2) / (n - 2))
    grid = np.linspace(x.min(), x.max(), n_grid)
    fit = intercept + slope * grid
    se = np.sqrt(s2 * (1.0 / n + (grid - xm) ** 2 / sxx))
    t = stats.t.ppf(0.5 + level / 2.0, n - 2)
    return grid, fit, fit - t * se, fit + t * se


def association_scatter(
    per_sample: pd.DataFrame,
    phenotypes: pd.DataFrame,
    signature: str,
    phenotype: str,
    *,
    group: str | None = None,
    color: str | None = None,
    results: pd.DataFrame | None = None,
    ci: float = 0.95,
    ax: Axes | None = None,
    save: str | os.PathLike | None = None,
) -> Axes:
    """Per-sample signature score against a phenotype, with a regression line and its CI.

    One point per sample (never per cell). The least-squares line and its pointwise
    confidence band are drawn for display; the test itself comes from
    :func:`osteoimmune.tl.associate` and is printed when ``results`` is given.

    Parameters
    ----------
    per_sample
        Long table from :func:`osteoimmune.tl.aggregate` (``sample``, ``group``,
        ``signature``, ``value``).
    phenotypes
        Sample table indexed by sample id with the ``phenotype`` (and ``color``) column.
    signature
        Signature to plot.
    phenotype
        Numeric phenotype column on the x axis (e.g. ``"bmd"``); a binary or categorical
        phenotype is drawn as one jittered column of points per level, without a line.
    group
        Cell type to plot; required when ``per_sample`` holds several.
    color
        Phenotype-table column colouring the points (a covariate such as ``"sex"`` or
        ``"age"``): categorical columns use the Okabe–Ito palette, numeric ones viridis.
    results
        Optional output of :func:`osteoimmune.tl.associate`; the matching row's effect and
        q-value are written in the title.
    ci
        Confidence level of the band (0–1).
    ax
        Draw into this Axes.
    save
        Write the figure to this path (``.png``, ``.pdf`` or ``.svg``).

    Returns
    -------
    matplotlib.axes.Axes
    """
    check_save(save)
    require_columns(per_sample, ["sample", "signature", "value"], "per_sample", _PER_SAMPLE_HINT)
    if not isinstance(phenotypes, pd.DataFrame):
        raise TypeError("phenotypes must be a DataFrame indexed by sample id, got "
                        f"{type(phenotypes).__name__}.")
    if not 0 < ci < 1:
        raise ValueError(f"ci={ci!r} must lie strictly between 0 and 1 (e.g. 0.95).")
    for col, name in ((phenotype, "phenotype"), (color, "color")):
        if col is not None and col not in phenotypes.columns:
            raise KeyError(f"{name}={col!r} is not a column of phenotypes (columns: "
                           f"{list(phenotypes.columns)}).")
    sigs = list(pd.unique(per_sample["signature"]))
    if signature not in sigs:
        raise KeyError(f"signature {signature!r} not in per_sample (signatures: {sigs}).")
    df = per_sample[per_sample["signature"] == signature]
    df = pick_one(df, "group", group, "per_sample")
    if df["sample"].duplicated().any():
        dup = df.loc[df["sample"].duplicated(), "sample"].unique()[:5].tolist()
        raise ValueError(f"per_sample holds several rows per sample for {signature!r} "
                         f"(e.g. {dup}); choose one group with group=... .")
    sample_ids = df["sample"].astype(str).to_numpy()
    ph = phenotypes.copy()
    ph.index = ph.index.astype(str)
    known = np.isin(sample_ids, ph.index)
    if not known.any():
        raise ValueError("no sample of per_sample is in the phenotype table's index; index "
                         "phenotypes by the same sample ids (the aggregate's sample_key).")
    y = df["value"].to_numpy(dtype=float)[known]
    sample_ids = sample_ids[known]
    xs = ph.loc[sample_ids, phenotype]
    ok = np.isfinite(y) & xs.notna().to_numpy()
    y, xs, sample_ids = y[ok], xs[ok], sample_ids[ok]
    if y.size == 0:
        raise ValueError(f"no sample has both a {signature!r} score and a {phenotype!r} value.")
    fig, ax = new_axes(ax, (4.8, 4.0))
    numeric = pd.api.types.is_numeric_dtype(xs) and xs.nunique() > 2
    if numeric:
        x = xs.to_numpy(dtype=float)
        ax.set_xlabel(phenotype)
    else:
        levels = sorted(pd.unique(xs), key=str)
        codes = np.array([levels.index(v) for v in xs], dtype=float)
        rng = np.random.default_rng(0)  # fixed jitter: identical figure on every call
        x = codes + rng.uniform(-0.15, 0.15, size=codes.size)
        ax.set_xticks(range(len(levels)), [str(v) for v in levels])
        ax.set_xlabel(phenotype)
    if color is None:
        ax.scatter(x, y, s=28, color="#0072B2", edgecolor="white", linewidth=0.5, zorder=3)
    else:
        cv = ph.loc[sample_ids, color]
        if pd.api.types.is_numeric_dtype(cv) and cv.nunique() > 2:
            sc_ = ax.scatter(x, y, s=28, c=cv.to_numpy(dtype=float), cmap=SEQUENTIAL_CMAP,
                             edgecolor="white", linewidth=0.5, zorder=3)
            ax.figure.colorbar(sc_, ax=ax, label=color, fraction=0.05)
        else:
            levels_c = sorted(pd.unique(cv.dropna()), key=str)
            pal = categorical_palette(levels_c)
            cols = [pal.get(v, NONSIGNIFICANT_COLOR) for v in cv]
            ax.scatter(x, y, s=28, c=cols, edgecolor="white", linewidth=0.5, zorder=3)
            handles = [Line2D([], [], marker="o", linestyle="", color=pal[v], label=str(v))
                       for v in levels_c]
            ax.legend(handles=handles, title=color, frameon=False, loc="best")
    if numeric and x.size >= 3 and np.ptp(x) > 0:
        grid, fit, lo, hi = _ols_band(x, y, ci)
        ax.plot(grid, fit, color="#000000", linewidth=1.2, zorder=2, label="_fit")
        ax.fill_between(grid, lo, hi, color="#999999", alpha=0.3, linewidth=0, zorder=1,
                        label=f"_{int(round(ci * 100))}% CI")
    ax.set_ylabel(f"{signature} score")
    grp = df["group"].iloc[0] if "group" in df.columns and len(df) else None
    title = f"{signature}" + (f" in {grp}" if grp is not None else "") + f" (n={y.size})"
    if results is not None:
        require_columns(results, ["signature", "effect"], "results", _RESULTS_HINT)
        sel = results[(results["signature"] == signature)
                      & ((results["phenotype"] == phenotype) if "phenotype" in results else True)]
        if grp is not None and "group" in sel.columns:
            sel = sel[sel["group"] == grp]
        if len(sel):
            row = sel.iloc[0]
            q = row.get("qvalue", np.nan)
            title += f"\neffect {row['effect']:.3g}" + (f", q = {q:.2g}" if pd.notna(q) else "")
    ax.set_title(title, fontsize=10)
    save_figure(fig, save)
    return ax


def _select_results(results: pd.DataFrame, phenotype, model) -> pd.DataFrame:
    require_columns(results, ["signature", "effect"], "results", _RESULTS_HINT)
    out = pick_one(results, "phenotype", phenotype, "results")
    out = pick_one(out, "model", model, "results")
    if out.empty:
        raise ValueError("results is empty; nothing to draw.")
    return out


def forest(
    results: pd.DataFrame,
    *,
    phenotype: str | None = None,
    model: str | None = None,
    alpha: float = 0.05,
    sort: bool = False,
    ax: Axes | None = None,
    save: str | os.PathLike | None = None,
) -> Axes:
    """Forest plot: effect and confidence interval of each signature × cell type.

    Rows are signature × group; the point is the effect, the bar its CI. Rows with
    ``qvalue < alpha`` are drawn in vermillion with filled markers and their q-value is
    written at the right; the others are grey open circles.

    Parameters
    ----------
    results
        Output of :func:`osteoimmune.tl.associate` or :func:`osteoimmune.tl.meta_analyze`
        (``signature``, optional ``group``, ``effect``, ``ci_low``, ``ci_high``,
        ``qvalue``).
    phenotype, model
        Level to draw when ``results`` holds several phenotypes or models.
    alpha
        Significance threshold on the q-value.
    sort
        Order rows by effect instead of signature then group.
    ax
        Draw into this Axes.
    save
        Write the figure to this path (``.png``, ``.pdf`` or ``.svg``).

    Returns
    -------
    matplotlib.axes.Axes
    """
    check_save(save)
    res = _select_results(results, phenotype, model)
    require_columns(res, ["ci_low", "ci_high"], "results", _RESULTS_HINT)
    res = res.copy()
    if "qvalue" not in res.columns:
        res["qvalue"] = np.nan
    keys = ["signature", "group"] if "group" in res.columns else ["signature"]
    res = res.sort_values("effect" if sort else keys, kind="stable").reset_index(drop=True)
    labels = [" · ".join(str(r[k]) for k in keys) for _, r in res.iterrows()]
    n = len(res)
    fig, ax = new_axes(ax, (6.0, max(2.0, 0.32 * n + 1.0)))
    ypos = np.arange(n)[::-1]
    sig = (res["qvalue"] < alpha).to_numpy()
    for yi, (_, row), s in zip(ypos, res.iterrows(), sig):
        colour = SIGNIFICANT_COLOR if s else NONSIGNIFICANT_COLOR
        ax.errorbar(row["effect"], yi,
                    xerr=[[row["effect"] - row["ci_low"]], [row["ci_high"] - row["effect"]]],
                    fmt="o", color=colour, ecolor=colour, elinewidth=1.4, capsize=2.5,
                    markersize=5, markerfacecolor=colour if s else "white", zorder=3)
    ax.axvline(0.0, color="#000000", linewidth=0.8, linestyle="--", zorder=1)
    ax.set_yticks(ypos, labels)
    ax.set_ylim(-0.7, n - 0.3)
    ax.set_xlabel("effect (95% CI)")
    trans = ax.get_yaxis_transform()
    for yi, (_, row), s in zip(ypos, res.iterrows(), sig):
        if s:
            ax.text(1.01, yi, f"q={row['qvalue']:.1e}", transform=trans, va="center",
                    ha="left", fontsize=8, color=SIGNIFICANT_COLOR)
    ph = res["phenotype"].iloc[0] if "phenotype" in res.columns else None
    ax.set_title(f"association with {ph}" if ph is not None else "association", fontsize=10)
    ax.legend(handles=[
        Line2D([], [], marker="o", color=SIGNIFICANT_COLOR, label=f"q < {alpha:g}"),
        Line2D([], [], marker="o", color=NONSIGNIFICANT_COLOR, markerfacecolor="white",
               label="not significant"),
    ], frameon=False, loc="lower right", fontsize=8)
    save_figure(fig, save)
    return ax


def association_heatmap(
    results: pd.DataFrame,
    *,
    value: str = "effect",
    phenotype: str | None = None,
    model: str | None = None,
    alpha: float = 0.05,
    cmap: str = DIVERGING_CMAP,
    ax: Axes | None = None,
    save: str | os.PathLike | None = None,
) -> Axes:
    """Heatmap of signature (rows) × cell type (columns) effects with significance marks.

    The colour scale is symmetric around zero. Cells are marked ``*``, ``**``, ``***`` for
    q-values below ``alpha``, ``alpha/5`` and ``alpha/50``; missing pairs stay blank.

    Parameters
    ----------
    results
        Output of :func:`osteoimmune.tl.associate` (``signature``, ``group``, ``value``
        column, ``qvalue``).
    value
        Column coloured (``"effect"``, or a standardised effect column when present).
    phenotype, model
        Level to draw when ``results`` holds several phenotypes or models.
    alpha
        Significance threshold on the q-value.
    cmap
        Diverging colour map.
    ax
        Draw into this Axes.
    save
        Write the figure to this path (``.png``, ``.pdf`` or ``.svg``).

    Returns
    -------
    matplotlib.axes.Axes
    """
    check_save(save)
    res = _select_results(results, phenotype, model)
    require_columns(res, [value], "results", _RESULTS_HINT)
    res = res.copy()
    if "group" not in res.columns:
        res["group"] = "all"
    if "qvalue" not in res.columns:
        res["qvalue"] = np.nan
    if res.duplicated(["signature", "group"]).any():
        raise ValueError("results holds several rows per signature × group; choose one "
                         "phenotype and model with phenotype=... and model=... .")
    sig_order = list(pd.unique(res["signature"]))
    grp_order = list(pd.unique(res["group"]))
    mat = res.pivot(index="signature", columns="group", values=value).reindex(
        index=sig_order, columns=grp_order).astype(float)
    qmat = res.pivot(index="signature", columns="group", values="qvalue").reindex(
        index=sig_order, columns=grp_order).astype(float)
    fig, ax = new_axes(ax, (1.0 * len(grp_order) + 3.5, 0.4 * len(sig_order) + 1.5))
    vmax = float(np.nanmax(np.abs(mat.to_numpy()))) if np.isfinite(mat.to_numpy()).any() else 1.0
    vmax = vmax or 1.0
    mesh = ax.pcolormesh(np.ma.masked_invalid(mat.to_numpy()), cmap=cmap, vmin=-vmax, vmax=vmax,
                         edgecolors="white", linewidth=0.5)
    ax.figure.colorbar(mesh, ax=ax, label=value, fraction=0.05)
    ax.set_xticks(np.arange(len(grp_order)) + 0.5, [str(g) for g in grp_order], rotation=30,
                  ha="right")
    ax.set_yticks(np.arange(len(sig_order)) + 0.5, [str(s) for s in sig_order])
    ax.invert_yaxis()
    for i in range(len(sig_order)):
        for j in range(len(grp_order)):
            mark = significance_stars(qmat.iat[i, j], alpha)
            if mark:
                ax.text(j + 0.5, i + 0.5, mark, ha="center", va="center", fontsize=10,
                        color="#000000", gid="significance")
    ph = res["phenotype"].iloc[0] if "phenotype" in res.columns else None
    ax.set_title((f"{value} on {ph}" if ph is not None else value)
                 + f"  (* q<{alpha:g}, ** q<{alpha / 5:g}, *** q<{alpha / 50:g})", fontsize=9)
    save_figure(fig, save)
    return ax
