"""Figures (seaborn/matplotlib).

Every function returns the matplotlib object it drew (Axes for one panel, Figure for a
grid), accepts ``ax=`` to draw into an existing Axes and ``save=`` to write PNG, PDF or
SVG. Colours are colour-blind safe: Okabe–Ito for categories, viridis for scores and a
blue–red diverging map for signed effects. The functions compute nothing that
:mod:`osteoimmune.tl` provides: they draw its outputs.
"""

from ._association import association_heatmap, association_scatter, forest
from ._coverage import signature_coverage
from ._scores import scores_by_group, scores_embedding
from ._utils import OKABE_ITO, SAVE_FORMATS, categorical_palette, save_figure

__all__ = [
    "OKABE_ITO",
    "SAVE_FORMATS",
    "association_heatmap",
    "association_scatter",
    "categorical_palette",
    "forest",
    "save_figure",
    "scores_by_group",
    "scores_embedding",
    "signature_coverage",
]
