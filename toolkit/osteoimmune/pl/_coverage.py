"""Gene coverage of signatures in a data set."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
from matplotlib.axes import Axes

from ._utils import OKABE_ITO, check_save, new_axes, require_columns, save_figure

__all__ = ["signature_coverage"]

_HINT = ('Pass scores.attrs["coverage"] from oi.tl.score (index signature; columns '
         "n_requested, n_found, ...).")
FOUND_COLOR = OKABE_ITO[3]  # blue
MISSING_COLOR = "#BBBBBB"


def signature_coverage(
    coverage: pd.DataFrame | dict,
    *,
    min_coverage: float | None = 0.5,
    sort: bool = True,
    ax: Axes | None = None,
    save: str | os.PathLike | None = None,
) -> Axes:
    """Genes found in the data per signature: stacked bars of found and missing genes.

    Parameters
    ----------
    coverage
        The coverage report of :func:`osteoimmune.tl.score`: the scores DataFrame itself,
        its ``scores.attrs["coverage"]`` record, or the table of
        :func:`osteoimmune.tl.coverage` (index or column ``signature``; columns
        ``n_requested``, ``n_found``).
    min_coverage
        Signatures below this found fraction get their label in vermillion; ``None`` marks
        nothing.
    sort
        Order bars by found fraction (lowest at the bottom); otherwise keep table order.
    ax
        Draw into this Axes.
    save
        Write the figure to this path (``.png``, ``.pdf`` or ``.svg``).

    Returns
    -------
    matplotlib.axes.Axes
        One horizontal bar per signature split into found (blue) and missing (grey) genes,
        with the found fraction written at the bar end.
    """
    check_save(save)
    if isinstance(coverage, dict) or (isinstance(coverage, pd.DataFrame)
                                      and "coverage" in coverage.attrs):
        from ..tl import coverage as _coverage_table

        coverage = _coverage_table(coverage)
    require_columns(coverage, ["n_requested", "n_found"], "coverage", _HINT)
    cov = coverage.copy()
    if "signature" in cov.columns:
        cov = cov.set_index("signature")
    if cov.empty:
        raise ValueError(f"coverage is empty; nothing to draw. {_HINT}")
    n_req = cov["n_requested"].to_numpy(dtype=float)
    n_found = cov["n_found"].to_numpy(dtype=float)
    if np.any(n_found > n_req) or np.any(n_found < 0):
        raise ValueError("coverage has n_found outside [0, n_requested]; is it a coverage "
                         "report from oi.tl.score?")
    frac = np.divide(n_found, n_req, out=np.zeros_like(n_found), where=n_req > 0)
    order = np.argsort(frac, kind="stable")[::-1] if sort else np.arange(len(cov))
    names = [str(x) for x in cov.index[order]]
    n_req, n_found, frac = n_req[order], n_found[order], frac[order]
    n = len(names)
    fig, ax = new_axes(ax, (5.5, max(2.0, 0.3 * n + 1.0)))
    ypos = np.arange(n)[::-1]
    ax.barh(ypos, n_found, color=FOUND_COLOR, label="found", gid="found")
    ax.barh(ypos, n_req - n_found, left=n_found, color=MISSING_COLOR, label="missing",
            gid="missing")
    for yi, tot, f in zip(ypos, n_req, frac):
        ax.text(tot, yi, f" {f:.0%}", va="center", ha="left", fontsize=8)
    ax.set_yticks(ypos, names)
    if min_coverage is not None:
        for lab, f in zip(ax.get_yticklabels(), frac):
            if f < min_coverage:
                lab.set_color("#D55E00")
    ax.set_xlabel("genes")
    ax.set_xlim(0, float(n_req.max()) * 1.15 if n_req.max() > 0 else 1)
    ax.set_ylim(-0.7, n - 0.3)
    ax.set_title("signature genes found in the data", fontsize=10)
    ax.legend(frameon=False, loc="lower right", fontsize=8)
    save_figure(fig, save)
    return ax
