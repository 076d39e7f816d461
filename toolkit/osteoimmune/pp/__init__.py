"""Preprocessing: input checks and myeloid selection."""

from ._bulk import collapse_ids, id_table, normalize_bulk
from ._checks import ScaleReport, detect_scale

__all__ = ["ScaleReport", "collapse_ids", "detect_scale", "id_table", "normalize_bulk"]
