"""Preprocessing: input checks and myeloid selection."""

from ._checks import ScaleReport, detect_scale

__all__ = ["ScaleReport", "detect_scale"]
