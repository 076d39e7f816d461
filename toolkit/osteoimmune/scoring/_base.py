"""The method interface and the gene statistics shared by the methods."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ..signatures._matching import MatchedSignature
from ._source import Chunk


@dataclass
class GeneStats:
    """Per-gene statistics from one pass over the matrix (float64 unless stated).

    ``sum_native`` is accumulated in the data's own float type row by row (float32 for
    float32 data), as scanpy does for its gene means; ``mean_native`` is derived from it.
    ``expm1_*`` are filled only when a method asks for them (scDRS). Statistics gathered
    at a lower level than ``"full"`` (see ``ScoringMethod.stats_level``) hold NaN where
    they were not accumulated (``n_nonint`` is then -1).
    """

    n_obs: int
    n_vars: int
    sum: np.ndarray
    sumsq: np.ndarray
    nnz: np.ndarray
    sum_native: np.ndarray
    expm1_sum: np.ndarray | None = None
    expm1_sumsq: np.ndarray | None = None
    n_nonfinite: int = 0
    n_nonint: int = 0
    max: float = 0.0
    min: float = 0.0
    n_stored_nonzero: int = 0

    @property
    def mean(self) -> np.ndarray:
        return self.sum / self.n_obs

    @property
    def mean_native(self) -> np.ndarray:
        """Means as scanpy computes them: native-precision sum, then float64 division."""
        return self.sum_native.astype(np.float64) / self.n_obs

    def var(self, ddof: int = 1) -> np.ndarray:
        n = self.n_obs
        m = self.mean
        v = (self.sumsq - n * m * m) / max(n - ddof, 1)
        return np.maximum(v, 0.0)

    def expm1_mean(self) -> np.ndarray:
        return self.expm1_sum / self.n_obs

    def expm1_var(self, ddof: int = 0) -> np.ndarray:
        n = self.n_obs
        m = self.expm1_mean()
        return np.maximum((self.expm1_sumsq - n * m * m) / max(n - ddof, 1), 0.0)


@dataclass
class ScoreContext:
    """What a method sees while it prepares: matched sets, gene stats, sizes, options."""

    matched: list[MatchedSignature]
    n_obs: int
    n_vars: int
    var_names: pd.Index
    stats: GeneStats | None
    random_state: Any
    obs_word: str = "cells"
    extra: dict[str, Any] = field(default_factory=dict)


class ScoringMethod:
    """Base class: a method builds a linear weight matrix or a rank evaluator.

    Subclasses set ``name``, ``reference`` and ``needs_stats`` and implement
    :meth:`prepare` plus either :meth:`linear` (a genes × columns weight matrix and
    per-column offsets) or :meth:`score_chunk`; :meth:`finalize` turns the raw per-chunk
    output into the result table.
    """

    name: ClassVar[str] = ""
    reference: ClassVar[str] = ""
    needs_stats: ClassVar[bool] = False
    needs_expm1: ClassVar[bool] = False
    #: gene statistics the method reads: "full" (sums and sums of squares), "sum"
    #: (sums only), "native" (sums in the data's precision only), "count" (stored
    #: non-zeros only) or "expressed" (whether each gene has a non-zero value)
    stats_level: ClassVar[str] = "full"
    accepts_counts: ClassVar[bool] = False
    accepts_negative: ClassVar[bool] = True
    two_pass: ClassVar[bool] = False

    def __init__(self, **options: Any) -> None:
        if options:
            raise TypeError(
                f"Unknown option(s) for method {self.name!r}: {', '.join(sorted(options))}."
            )

    # -- life cycle -------------------------------------------------------------
    def prepare(self, ctx: ScoreContext) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def n_out(self) -> int:
        """Number of raw output columns per observation."""
        return len(self.columns())

    def columns(self) -> list[str]:  # pragma: no cover - abstract
        raise NotImplementedError

    def linear(self) -> tuple[sp.csr_matrix, np.ndarray] | None:
        """(W, offset) for linear methods, else None."""
        return None

    def score_chunk(self, chunk: Chunk) -> np.ndarray:
        """Raw output for one chunk (rows × n_out). Linear methods need not override."""
        raise NotImplementedError

    def score_chunk_counted(self, chunk: Chunk, seen: np.ndarray | None = None
                            ) -> tuple[np.ndarray, int | None, np.ndarray | None]:
        """:meth:`score_chunk`, with what one-pass scoring can learn from the same read.

        Parameters
        ----------
        chunk
            The rows to score.
        seen
            Optional int32 flag per gene, 1 for a gene known to be expressed.

        Returns
        -------
        out, n_nonfinite, watched
            The raw output; the chunk's number of NaN and infinite values when the
            method's kernel counts them as it reads the values (one-pass scoring then
            need not read them again for the check), else None; and, when ``seen`` is
            given and the kernel can use it, a uint8 flag per row, 1 where the row
            stores a value on a gene not in ``seen`` (the rows
            :func:`~osteoimmune.scoring._kernels.mark_watched_rows` must check), else
            None.
        """
        return self.score_chunk(chunk), None, None

    def second_pass_chunk(self, chunk: Chunk, first: np.ndarray) -> None:
        """Consume a chunk in a second pass (two-pass methods)."""

    def finalize(self, raw: np.ndarray, obs_names: pd.Index) -> pd.DataFrame:
        return pd.DataFrame(raw, index=obs_names, columns=self.columns())

    def params(self) -> dict[str, Any]:
        """Parameters recorded in the result's metadata."""
        return {}

    # -- one-pass scoring of data read from disk --------------------------------------
    def assumed_stats(self, n_obs: int, n_vars: int) -> GeneStats | None:
        """Gene statistics to prepare with before the real ones are known, or None.

        A method whose preparation reads little from the statistics (AUCell: only which
        genes are expressed at all) can guess them, score in the same pass that gathers
        the real statistics, and keep the scores when the guess proves exact
        (:meth:`assumption_holds`). For data read from disk this saves a whole pass.
        """
        return None

    def assumption_holds(self, assumed: GeneStats, actual: GeneStats) -> bool:
        """Whether preparing with ``actual`` gives exactly what ``assumed`` gave."""
        return False
