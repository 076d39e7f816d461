"""Analysis verbs: scoring, aggregation, association, meta-analysis."""

from ._aggregate import aggregate
from ._associate import associate
from ._meta import meta_analyze
from ._score import coverage, score

__all__ = ["aggregate", "associate", "coverage", "meta_analyze", "score"]
