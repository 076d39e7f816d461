"""Shared helpers of the figures: palette, axes creation, saving, input checks."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

__all__ = ["OKABE_ITO", "SAVE_FORMATS", "categorical_palette", "save_figure"]

#: Okabe & Ito (2008) colour-blind-safe qualitative palette (black moved last).
OKABE_ITO: tuple[str, ...] = (
    "#E69F00",  # orange
    "#56B4E9",  # sky blue
    "#009E73",  # bluish green
    "#0072B2",  # blue
    "#D55E00",  # vermillion
    "#CC79A7",  # reddish purple
    "#F0E442",  # yellow
    "#000000",  # black
)
#: Sequential colour map for scores (perceptually uniform, colour-blind safe).
SEQUENTIAL_CMAP = "viridis"
#: Diverging colour map for signed effects (blue-white-red, colour-blind safe).
DIVERGING_CMAP = "RdBu_r"
#: File formats accepted by ``save=``.
SAVE_FORMATS: tuple[str, ...] = (".png", ".pdf", ".svg")
SIGNIFICANT_COLOR = "#D55E00"
NONSIGNIFICANT_COLOR = "#7F7F7F"


def categorical_palette(levels: Sequence) -> dict:
    """Map each level to an Okabe–Ito colour (cycling past eight levels).

    Parameters
    ----------
    levels
        Distinct category levels, in display order.

    Returns
    -------
    dict
        ``{level: hex colour}``.
    """
    return {lv: OKABE_ITO[i % len(OKABE_ITO)] for i, lv in enumerate(levels)}


def check_save(save: str | os.PathLike | None) -> Path | None:
    """Validate a ``save=`` argument before drawing (fail fast on a bad extension)."""
    if save is None:
        return None
    if not isinstance(save, (str, os.PathLike)):
        raise TypeError(f"save must be a file path (str or Path), got {type(save).__name__}; "
                        "e.g. save='figures/forest.pdf'.")
    path = Path(save)
    if path.suffix.lower() not in SAVE_FORMATS:
        raise ValueError(f"save={str(save)!r}: unsupported file extension {path.suffix!r}; "
                         f"use one of {', '.join(SAVE_FORMATS)} (e.g. 'figure.pdf').")
    return path


def save_figure(fig: Figure, save: str | os.PathLike | None, dpi: int = 150) -> None:
    """Save ``fig`` to ``save`` (PNG, PDF or SVG, chosen by the extension).

    Parameters
    ----------
    fig
        The figure to write.
    save
        Destination path; parent folders are created. ``None`` does nothing.
    dpi
        Resolution of raster output (PNG).
    """
    path = check_save(save)
    if path is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    # metadata without a creation date keeps PDF/SVG output byte-identical between runs
    meta: dict[str, object] = {}
    suffix = path.suffix.lower()
    if suffix == ".pdf":
        meta = {"CreationDate": None, "Creator": "osteoimmune"}
    elif suffix == ".svg":
        meta = {"Date": None, "Creator": "osteoimmune"}
    # a fixed svg.hashsalt makes the SVG element ids (clip paths) the same in every process
    with matplotlib.rc_context({"svg.hashsalt": "osteoimmune"}):
        fig.savefig(path, dpi=dpi, bbox_inches="tight", metadata=meta)


def new_axes(ax: Axes | None, figsize: tuple[float, float]) -> tuple[Figure, Axes]:
    """Return ``(figure, axes)``: the given axes or a new single-panel figure."""
    if ax is None:
        fig, ax = plt.subplots(figsize=figsize)
        return fig, ax
    if not isinstance(ax, Axes):
        raise TypeError(f"ax must be a matplotlib Axes, got {type(ax).__name__}.")
    return ax.figure, ax


def require_columns(df: pd.DataFrame, columns: Sequence[str], what: str, hint: str) -> None:
    """Raise a ValueError naming the missing columns of ``df`` and how to get them."""
    if not isinstance(df, pd.DataFrame):
        raise TypeError(f"{what} must be a pandas DataFrame, got {type(df).__name__}. {hint}")
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ValueError(f"{what} lacks column(s) {missing} (has {list(df.columns)}). {hint}")


def pick_one(df: pd.DataFrame, column: str, value, what: str) -> pd.DataFrame:
    """Restrict a tidy table to one level of ``column``; require the choice when ambiguous."""
    if column not in df.columns:
        return df
    levels = list(pd.unique(df[column].dropna()))
    if value is None:
        if len(levels) > 1:
            raise ValueError(f"{what} holds several {column}s {levels}; choose one with "
                             f"{column}=... .")
        return df
    if value not in levels:
        raise ValueError(f"{column}={value!r} is not in {what} (available: {levels}).")
    return df[df[column] == value]


def significance_stars(q: float, alpha: float = 0.05) -> str:
    """``"***"``, ``"**"`` or ``"*"`` for q below alpha/50, alpha/5 and alpha; else ``""``."""
    if q is None or not np.isfinite(q):
        return ""
    if q < alpha / 50:
        return "***"
    if q < alpha / 5:
        return "**"
    if q < alpha:
        return "*"
    return ""
