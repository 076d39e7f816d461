"""Preprocessing: input checks and myeloid selection."""

from ._bulk import collapse_ids, id_table, normalize_bulk
from ._checks import ScaleReport, detect_scale
from ._myeloid import MYELOID_TYPES, map_myeloid_labels, select_myeloid

__all__ = ["MYELOID_TYPES", "ScaleReport", "collapse_ids", "detect_scale", "id_table",
           "map_myeloid_labels", "normalize_bulk", "select_myeloid"]
