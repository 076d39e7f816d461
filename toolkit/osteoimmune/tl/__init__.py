"""Analysis verbs: scoring, aggregation, association, meta-analysis."""

from ._score import score

__all__ = ["score"]
