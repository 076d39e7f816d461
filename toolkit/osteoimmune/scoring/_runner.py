"""The shared runner: one pass of gene statistics, one scoring pass over row chunks.

Every source (in-memory, backed ``.h5ad``, dask) goes through the same two kernels:

* gene statistics accumulate row by row, in row order, into one running state
  (:class:`StatsAccumulator`), so the sums do not depend on how rows were chunked;
* scores are computed per row (:class:`ChunkScorer`), so chunking never changes them.

Dask arrays take the path in :mod:`._dask` (a sequential fold for the statistics,
``map_blocks`` for the scores), with the same two building blocks, hence the same numbers.
"""

from __future__ import annotations

import mmap
import sys
import warnings
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
from tqdm.auto import tqdm

from ._base import GeneStats, ScoreContext, ScoringMethod
from ._kernels import (
    DENSE_MAX_COLS,
    USED_MAX_SHARE,
    count_nonfinite,
    csr_times_dense,
    csr_times_dense_used,
    csr_times_sparse,
    gene_counts_update,
    gene_native_sum_update,
    gene_stats_update,
    mark_expressed,
    mark_watched_rows,
    n_gene_ranges,
)
from ._source import Chunk, MatrixSource

__all__ = ["ChunkScorer", "StatsAccumulator", "assumed_stats", "compute_gene_stats", "describe",
           "expressed_genes", "gather_stats", "one_pass", "run_method", "stream_passes"]


def nonfinite_values(data: np.ndarray, lo: int = 0, hi: int | None = None) -> int:
    """Number of NaN and infinite values in ``data[lo:hi]``.

    float32 and float64 (what chunks hold) are checked on their bit patterns, where NaN
    and infinity have every exponent bit set: one pass, no temporary mask.
    """
    hi = data.shape[0] if hi is None else hi
    if data.dtype == np.float32:
        bits, exp_mask = np.ascontiguousarray(data).view(np.uint32), np.uint32(0x7F800000)
    elif data.dtype == np.float64:
        bits = np.ascontiguousarray(data).view(np.uint64)
        exp_mask = np.uint64(0x7FF0000000000000)
    else:
        return int(np.count_nonzero(~np.isfinite(data[lo:hi])))
    return int(count_nonfinite(bits, lo, hi, exp_mask))


class StatsAccumulator:
    """Running per-gene sums over rows consumed in row order.

    Parameters
    ----------
    n_vars
        Number of genes.
    expm1
        Also accumulate sums of ``expm1(x)`` and its square (scDRS).
    level
        ``"full"`` (default): sums, sums of squares and non-zero counts; ``"sum"``: no
        sums of squares; ``"native"``: only the sums in the data's own precision (the
        module score's gene means); ``"count"``: non-zero counts only; ``"expressed"``:
        only whether each gene has a non-zero value (``nnz`` is 1 or 0; once every gene
        has one, later rows are only checked for NaN and infinity). What is not
        accumulated is NaN in the result (non-zero counts: -1), so a method that reads it
        gets NaN rather than zeros.

    Notes
    -----
    The state is a handful of ``n_vars`` arrays (about 50 bytes per gene); it is small
    enough to travel between dask workers, which is how the dask path keeps the exact
    row-order accumulation of the in-memory path.
    """

    LEVELS = {"expressed": 0, "count": 0, "native": 0, "sum": 1, "full": 2}
    #: levels whose per-block results combine in any order (integers), so dask needs no
    #: sequential fold
    ORDER_FREE = ("count", "expressed")

    def __init__(self, n_vars: int, expm1: bool = False, level: str = "full") -> None:
        if level not in self.LEVELS:
            raise ValueError(f"level must be one of {sorted(self.LEVELS)}, got {level!r}.")
        self.level = level
        self.expm1 = bool(expm1)
        self.n_rows = 0
        # genes x [sum, sum of squares, stored non-zeros, float32 running sum]
        self.state = np.zeros((n_vars, 4))
        self.estate = np.zeros((n_vars if expm1 else 1, 2))
        self.glob = np.array([0.0, 0.0, -np.inf, np.inf])
        self.native: np.ndarray | None = None  # level "native": data-precision sums
        # level "expressed": int32 flag per gene with a value (int32 for the scoring
        # kernels' gathers, watch_table)
        self.seen: np.ndarray | None = None
        self.n_unseen = n_vars

    def copy(self) -> StatsAccumulator:
        """Deep copy (dask tasks must not mutate their inputs)."""
        new = object.__new__(StatsAccumulator)
        new.__dict__.update({k: (v.copy() if isinstance(v, np.ndarray) else v)
                             for k, v in self.__dict__.items()})
        return new

    def seed_expressed(self, seen: np.ndarray) -> None:
        """Start level ``"expressed"`` from genes known to hold a finite non-zero value
        (``seen``, a flag per gene, e.g. from the first rows of the same matrix): later
        chunks then look only for the others."""
        if self.level != "expressed":
            raise ValueError(f"seed_expressed is for level 'expressed', not {self.level!r}.")
        if np.shape(seen) != (self.state.shape[0],):
            raise ValueError(f"Expected {self.state.shape[0]} gene flags, got "
                             f"{np.shape(seen)}.")
        self.seen = (np.asarray(seen) != 0).astype(np.int32)
        self.n_unseen = int(self.seen.size - np.count_nonzero(self.seen))
        self.state[:, 2] = self.seen

    def watch_table(self) -> np.ndarray | None:
        """For level ``"expressed"`` once some genes are marked and others are not: the
        genes marked (:attr:`seen`), which a scoring kernel checks as it reads a chunk
        (:meth:`ScoringMethod.score_chunk_counted`), so that :meth:`update` need check
        only the rows it flags. None otherwise (then :meth:`update` scans the chunk, or
        has nothing left to mark)."""
        if self.level != "expressed" or self.expm1 or self.seen is None or not self.n_unseen:
            return None
        return self.seen

    def update(self, indptr: np.ndarray, indices: np.ndarray, data: np.ndarray,
               n_nonfinite: int | None = None, watched: np.ndarray | None = None) -> None:
        """Add the rows of one CSR chunk (rows must come in order, sorted within).

        ``n_nonfinite``: the chunk's NaN and infinite values, when a scoring kernel has
        already counted them; level ``"expressed"`` then does not count them again (the
        other levels count them as they sum, and ignore it).
        ``watched``: for level ``"expressed"``, the rows a scoring kernel flagged as
        holding a gene of :meth:`watch_table` (taken just before this chunk); only those
        rows are then checked for newly expressed genes.

        The summing kernels split the genes into one range per numba thread of the
        calling thread, asked at every call (about 2 µs): a dask task that limits its
        threads gets as many ranges. The sums do not depend on the split.
        """
        if self.level == "native" and not self.expm1:
            if self.native is None:
                self.native = np.zeros(self.state.shape[0], dtype=data.dtype)
            gene_native_sum_update(indptr, indices, data, self.native, self.glob,
                                   n_gene_ranges(self.state.shape[0]))
        elif self.level == "count" and not self.expm1:
            gene_counts_update(indptr, indices, data, self.state, self.glob)
        elif self.level == "expressed" and not self.expm1:
            self._update_expressed(indptr, indices, data, n_nonfinite, watched)
        else:
            gene_stats_update(indptr, indices, data, self.state, self.LEVELS[self.level],
                              self.expm1, self.estate, self.glob,
                              n_gene_ranges(self.state.shape[0]))
        self.n_rows += len(indptr) - 1

    def _update_expressed(self, indptr: np.ndarray, indices: np.ndarray,
                          data: np.ndarray, n_nonfinite: int | None,
                          watched: np.ndarray | None) -> None:
        if n_nonfinite is None:
            n_nonfinite = nonfinite_values(data, int(indptr[0]), int(indptr[-1]))
        self.glob[0] += n_nonfinite
        if not self.n_unseen:
            return  # every gene has a value: a chunk costs only the check above
        if watched is not None:
            if self.seen is None:
                raise RuntimeError("Rows were watched without a watch table.")
            # a gene-filtered matrix has all but its rarest genes marked after its first
            # rows; the scoring kernel flagged the rows holding one of those, so only
            # they are read again (instead of every row until the rarest gene turns up:
            # in every dask block of the scale benchmark, 20-28 ms per 10,000 rows of
            # 1,500 values on one thread)
            new = mark_watched_rows(indptr, indices, data, watched, self.seen)
        else:
            if self.seen is None:
                self.seen = np.zeros(self.state.shape[0], dtype=np.int32)
            new = mark_expressed(indptr, indices, data, self.seen)
        if new:
            self.n_unseen -= new
            self.state[:, 2] = self.seen

    def result(self, n_obs: int, dtype: np.dtype) -> GeneStats:
        """The :class:`GeneStats` of all rows added.

        Raises
        ------
        ValueError
            If the matrix holds NaN or infinite values, or not all rows were added.
        """
        glob = self.glob
        if self.n_rows != n_obs:
            raise RuntimeError(f"Gene statistics saw {self.n_rows} rows, expected {n_obs}.")
        if glob[0] > 0:
            raise ValueError(
                f"The expression matrix holds {int(glob[0])} NaN or infinite values. Replace "
                "them (e.g. np.nan_to_num) or remove the affected observations before scoring."
            )
        st = self.state.copy()
        n_nz = int(st[:, 2].sum())
        full = self.LEVELS[self.level] == 2
        if self.LEVELS[self.level] < 1:
            st[:, [0, 3]] = np.nan
        if self.LEVELS[self.level] < 2:
            st[:, 1] = np.nan
        s64 = np.ascontiguousarray(st[:, 0])
        nnz = st[:, 2].astype(np.int64)
        if self.level == "expressed":
            n_nz = -1  # flags, not counts
        if self.level == "native":
            native = (self.native.copy() if self.native is not None
                      else np.zeros(st.shape[0], dtype=np.float32 if np.dtype(dtype)
                                    == np.float32 else np.float64))
            nnz[:] = -1
            n_nz = -1
        else:
            native = (st[:, 3].astype(np.float32) if np.dtype(dtype) == np.float32
                      else s64.copy())
        return GeneStats(
            n_obs=n_obs, n_vars=st.shape[0], sum=s64, sumsq=np.ascontiguousarray(st[:, 1]),
            nnz=nnz, sum_native=native,
            expm1_sum=np.ascontiguousarray(self.estate[:, 0]) if self.expm1 else None,
            expm1_sumsq=np.ascontiguousarray(self.estate[:, 1]) if self.expm1 else None,
            n_nonfinite=int(glob[0]), n_nonint=int(glob[1]) if full else -1,
            max=(float(glob[2]) if n_nz else 0.0) if full else np.nan,
            min=(float(glob[3]) if n_nz else 0.0) if full else np.nan,
            n_stored_nonzero=n_nz,
        )


def compute_gene_stats(source: MatrixSource, chunk_size: int, expm1: bool = False,
                       progress: bool = False, level: str = "full") -> GeneStats:
    """Per-gene sums, sums of squares and non-zero counts in one pass (row order).

    Parameters
    ----------
    source
        The matrix.
    chunk_size
        Rows per chunk (bounds memory; results do not depend on it).
    expm1
        Also accumulate ``expm1`` sums (scDRS).
    progress
        Show a progress bar.
    level
        What to accumulate (see :class:`StatsAccumulator`): ``"full"``, ``"sum"``,
        ``"native"`` or ``"count"``; methods ask for the least they need
        (``stats_level``).

    Returns
    -------
    GeneStats
        Identical, bit for bit, for every storage of the same matrix.

    Raises
    ------
    ValueError
        If the matrix holds NaN or infinite values.
    """
    if source.kind == "dask":
        from ._dask import dask_gene_stats

        return dask_gene_stats(source, chunk_size, expm1=expm1, level=level)
    n_obs, n_vars = source.shape
    acc = StatsAccumulator(n_vars, expm1, level)
    # row-order sums do not depend on chunk bounds: chunks may split at storage breaks
    it = source.iter_chunks(chunk_size, reuse_buffers=True, split=True)
    if progress:
        it = _progress(it, n_obs, "gene statistics")
    for ch in it:
        acc.update(ch.indptr, ch.indices, ch.data)
    return acc.result(n_obs, source.dtype)


def _progress(chunks, n_obs: int, desc: str):
    """Pass ``chunks`` through, with a progress bar counted in rows (a chunk split at a
    storage break comes as several pieces)."""
    with tqdm(total=n_obs, desc=desc, unit="rows", unit_scale=True, leave=False) as bar:
        try:
            for ch in chunks:
                yield ch
                bar.update(ch.n_rows)
        finally:
            if hasattr(chunks, "close"):
                chunks.close()  # stop the reader thread and release mapped pages now


class ChunkScorer:
    """First-pass raw output of a prepared method for one chunk (rows × ``n_out``).

    Linear methods run ``X_chunk @ W + offset`` (float64, each row in storage order);
    the others call :meth:`ScoringMethod.score_chunk`. Rows are independent, so the
    output of a row never depends on the chunk it came in. Picklable, for dask workers.

    Parameters
    ----------
    method
        A method after :meth:`~ScoringMethod.prepare`.
    """

    def __init__(self, method: ScoringMethod) -> None:
        self.method = method
        self.n_out = method.n_out()
        lin = method.linear()
        self.linear = lin is not None
        if self.linear:
            W, offset = lin
            W = sp.csr_matrix(W)
            W.sort_indices()
            self.w_indptr = W.indptr.astype(np.int64)
            self.w_indices = W.indices.astype(np.int64)
            self.w_data = W.data.astype(np.float64)
            self.w_cols = int(W.shape[1])
            self.offset = np.asarray(offset, dtype=np.float64)
            # a dense table for up to DENSE_MAX_COLS columns: same numbers, no
            # variable-length loop per stored value (about 2x faster at 20 columns)
            self.w_dense = (np.ascontiguousarray(W.toarray(), dtype=np.float64)
                            if self.w_cols <= DENSE_MAX_COLS else None)
            # when most genes carry no weight (a module score weights its signatures
            # and their controls, a z-mean only its signatures), the dense table keeps
            # only the weighted genes' rows: same numbers, fewer multiply-adds
            self.used_of = self.w_used = None
            used = np.flatnonzero(np.diff(W.indptr))
            if self.w_dense is not None and used.size <= USED_MAX_SHARE * W.shape[0]:
                # int32: a smaller table for the per-value lookup (about 5 % faster)
                self.used_of = np.full(W.shape[0], -1, dtype=np.int32 if W.shape[0] < 2**31
                                       else np.int64)
                self.used_of[used] = np.arange(used.size)
                self.w_used = np.ascontiguousarray(self.w_dense[used])
                self.w_dense = None

    def counted(self, ch: Chunk, seen: np.ndarray | None = None
                ) -> tuple[np.ndarray, int | None, np.ndarray | None]:
        """The output, the chunk's NaN and infinite values when the method's kernel counts
        them, and the rows holding a gene not in ``seen`` when it looks for them
        (:meth:`ScoringMethod.score_chunk_counted`)."""
        if self.linear:
            return self(ch), None, None
        return self.method.score_chunk_counted(ch, seen)

    def __call__(self, ch: Chunk) -> np.ndarray:
        if self.linear:
            if self.w_used is not None:
                out = csr_times_dense_used(ch.indptr, ch.indices, ch.data, self.used_of,
                                           self.w_used)
            elif self.w_dense is not None:
                out = csr_times_dense(ch.indptr, ch.indices, ch.data, self.w_dense)
            else:
                out = csr_times_sparse(ch.indptr, ch.indices, ch.data, self.w_indptr,
                                       self.w_indices, self.w_data, self.w_cols)
            out += self.offset
            return out
        return self.method.score_chunk(ch)


def run_method(method: ScoringMethod, source: MatrixSource, ctx: ScoreContext, *,
               obs_names: pd.Index, chunk_size: int, progress: bool,
               stats: GeneStats | None = None, compute: bool = True):
    """Run one method over all chunks and return its result table.

    Parameters
    ----------
    method
        The scoring method (not yet prepared).
    source
        The matrix.
    ctx
        Matched signatures and sizes; ``ctx.stats`` is filled here.
    obs_names
        Row labels of the result.
    chunk_size
        Rows per chunk.
    progress
        Show progress bars (in-memory and backed sources).
    stats
        Precomputed gene statistics of the same matrix (skips the statistics pass).
    compute
        Only for dask sources: ``False`` returns a lazy :class:`dask.dataframe.DataFrame`
        (gene statistics are still computed now; the scoring pass is deferred).

    Returns
    -------
    pandas.DataFrame or dask.dataframe.DataFrame
        The method's result table.
    """
    if source.kind == "dask":
        from ._dask import run_method_dask

        return run_method_dask(method, source, ctx, obs_names=obs_names,
                               chunk_size=chunk_size, progress=progress, stats=stats,
                               compute=compute)
    raw = gather_stats(method, source, ctx, chunk_size, progress, stats)
    if raw is not None:
        return method.finalize(raw, obs_names)
    method.prepare(ctx)
    raw = stream_passes(method, source, chunk_size, progress)
    return method.finalize(raw, obs_names)


def gather_stats(method: ScoringMethod, source: MatrixSource, ctx: ScoreContext,
                 chunk_size: int, progress: bool, stats: GeneStats | None = None,
                 allow_one_pass: bool = True) -> np.ndarray | None:
    """Set ``ctx.stats`` (computed unless given) and ``ctx.extra["passes_over_X"]``.

    Tries one-pass scoring first where it applies (:func:`assumed_stats`).

    Returns
    -------
    numpy.ndarray or None
        The raw scores when one-pass scoring succeeded (the method is then prepared);
        None when the caller must prepare the method and run the scoring pass(es).
    """
    passes = 2 if method.two_pass else 1
    if method.needs_stats and stats is None:
        passes += 1
        assumed = assumed_stats(method, source, ctx, chunk_size) if allow_one_pass else None
        if assumed is not None:
            raw, stats = one_pass(method, source, ctx, assumed, chunk_size, progress)
            if raw is not None:
                ctx.extra["passes_over_X"] = 1
                return raw
        else:
            stats = compute_gene_stats(source, chunk_size, expm1=method.needs_expm1,
                                       progress=progress, level=method.stats_level)
    ctx.stats = stats
    ctx.extra["passes_over_X"] = passes
    return None


#: one-pass scoring is tried only when the first chunk leaves at most this share of the
#: genes unexpressed (gene-filtered data); otherwise the guess would likely fail
ONE_PASS_MAX_UNEXPRESSED = 0.10


def expressed_genes(indices: np.ndarray, data: np.ndarray, n_vars: int) -> np.ndarray:
    """uint8 flag per gene: 1 where CSR rows (their ``indices`` and ``data``) store a
    finite non-zero value of the gene."""
    seen = np.zeros(n_vars, dtype=np.uint8)
    # one pass, no mask copy (0.34 -> 0.02 s for 15M values)
    mark_expressed(np.array([0, len(indices)], dtype=np.int64), indices, data, seen)
    return seen


def unexpressed_share(seen: np.ndarray) -> float:
    """Share of genes not flagged in ``seen`` (:func:`expressed_genes`)."""
    if seen.size == 0:
        return 0.0
    return 1.0 - np.count_nonzero(seen) / seen.size


def first_chunk_expressed(source: MatrixSource, ctx: ScoreContext,
                          chunk_size: int) -> np.ndarray:
    """:func:`expressed_genes` of the first ``chunk_size`` rows, from
    ``ctx.extra["first_chunk_expressed"]`` (set by :func:`osteoimmune.tl.score`, which
    reads those rows for its input checks) or read now and kept there."""
    seen = ctx.extra.get("first_chunk_expressed")
    if seen is None:
        seen = ctx.extra["first_chunk_expressed"] = source.first_rows_apply(
            chunk_size, _expressed_of_rows, source.shape[1])
    return seen


def _expressed_of_rows(indptr: np.ndarray, indices: np.ndarray, data: np.ndarray,
                       n_vars: int) -> np.ndarray:
    return expressed_genes(indices, data, n_vars)


def assumed_stats(method: ScoringMethod, source: MatrixSource, ctx: ScoreContext,
                  chunk_size: int) -> GeneStats | None:
    """The guessed statistics for one-pass scoring, or None to run the usual two passes.

    Only for data read from disk or computed by dask (in memory, the statistics pass is
    cheap next to scoring, and a wrong guess would cost a second scoring), only for
    methods that can guess (:meth:`ScoringMethod.assumed_stats`), and only when the
    first chunk of rows leaves at most :data:`ONE_PASS_MAX_UNEXPRESSED` of the genes
    unexpressed (:func:`first_chunk_expressed`).
    """
    if not (source.is_lazy and method.needs_stats and not method.two_pass):
        return None
    if source.kind == "dask" and (method.stats_level not in StatsAccumulator.ORDER_FREE
                                  or method.needs_expm1):
        return None  # other levels fold blocks in sequence: no shared read (_dask)
    assumed = method.assumed_stats(ctx.n_obs, ctx.n_vars)
    if assumed is None:
        return None
    share = unexpressed_share(first_chunk_expressed(source, ctx, chunk_size))
    # a first chunk holding every row is the whole answer: guess only when it is right
    limit = 0.0 if chunk_size >= ctx.n_obs else ONE_PASS_MAX_UNEXPRESSED
    return assumed if share <= limit else None


def _prepare_quietly(method: ScoringMethod, ctx: ScoreContext) -> list:
    """``method.prepare(ctx)``, returning its warnings instead of emitting them."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        method.prepare(ctx)
    return caught


def _reemit(caught: list) -> None:
    for w in caught:
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)


def one_pass(method: ScoringMethod, source: MatrixSource, ctx: ScoreContext,
             assumed: GeneStats, chunk_size: int, progress: bool
             ) -> tuple[np.ndarray | None, GeneStats]:
    """Gene statistics and scores in one pass, the method prepared with ``assumed``.

    Returns
    -------
    raw, stats
        The raw scores when the real statistics confirm the guess (then they are exactly
        the two-pass scores), else None; and the real statistics. ``ctx.stats`` is left
        at the statistics the method was last prepared with.
    """
    ctx.stats = assumed
    caught = _prepare_quietly(method, ctx)
    # genes of the first rows need not be looked for again (level "expressed")
    prior = (first_chunk_expressed(source, ctx, chunk_size)
             if method.stats_level == "expressed" and not method.needs_expm1 else None)
    if source.kind == "dask":
        from ._dask import dask_one_pass

        raw, stats = dask_one_pass(method, source, chunk_size, level=method.stats_level,
                                   prior=prior)
    else:
        acc = StatsAccumulator(source.shape[1], method.needs_expm1, method.stats_level)
        if prior is not None:
            acc.seed_expressed(prior)
        raw = stream_passes(method, source, chunk_size, progress, acc=acc)
        stats = acc.result(source.shape[0], source.dtype)
    if method.assumption_holds(assumed, stats):
        _reemit(caught)
        return raw, stats
    return None, stats


#: arrays from this size on are allocated by :func:`empty_small_pages`
SMALL_PAGES_MIN_BYTES = 4 << 20


def empty_small_pages(shape: tuple[int, ...], dtype=np.float64) -> np.ndarray:
    """``numpy.empty(shape, dtype)`` in memory without transparent huge pages.

    NumPy asks Linux for huge pages (``madvise(MADV_HUGEPAGE)``) for every array of 4 MB
    or more. Where the kernel defragments on such a request (``defrag = madvise``, the
    default), the first write to each 2 MB page can wait for direct compaction and
    reclaim. On the benchmark's machine, filling a new 160 MB result (10^6 observations
    × 20 scores) took 1.3-2.0 s with huge pages and 0.08 s without. An anonymous map of
    our own gets normal pages (the array keeps the map alive); small arrays and other
    platforms use ``numpy.empty``.
    """
    dtype = np.dtype(dtype)
    n_bytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if n_bytes < SMALL_PAGES_MIN_BYTES or not sys.platform.startswith("linux"):
        return np.empty(shape, dtype=dtype)
    buf = mmap.mmap(-1, n_bytes, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    return np.frombuffer(buf, dtype=dtype).reshape(shape)


def stream_passes(method: ScoringMethod, source: MatrixSource, chunk_size: int,
                  progress: bool, acc: StatsAccumulator | None = None) -> np.ndarray:
    """Run the scoring pass(es) of a prepared method over ``source`` chunk by chunk.

    Chunks come in row order on the ``chunk_size`` grid, for every storage, so methods
    that keep state across chunks (two-pass scDRS) see exactly the same sequence.
    With ``acc``, the first pass also adds every chunk to these gene statistics (one-pass
    scoring); non-finite values are then left for ``acc.result`` to report.

    Returns
    -------
    numpy.ndarray
        Raw first-pass output, observations × ``method.n_out()``.
    """
    n_obs = source.shape[0]
    raw = empty_small_pages((n_obs, method.n_out()))
    scorer = ChunkScorer(method)
    passes = 2 if method.two_pass else 1
    # methods that skip the gene-statistics pass (rank methods) check the values here
    check_finite = not method.needs_stats and acc is None
    n_nonfinite = 0
    for p in range(passes):
        # row-wise scores do not depend on chunk bounds; two-pass methods keep state
        # across chunks and get the exact grid
        it = source.iter_chunks(chunk_size, reuse_buffers=True, split=not method.two_pass)
        if progress:
            desc = f"{method.name} scoring" + (f" (pass {p + 1}/2)" if passes > 1 else "")
            it = _progress(it, n_obs, desc)
        for ch in it:
            if p == 0:
                if acc is not None:
                    scores, n_bad, watched = scorer.counted(ch, acc.watch_table())
                    acc.update(ch.indptr, ch.indices, ch.data, n_nonfinite=n_bad,
                               watched=watched)
                else:
                    scores = scorer(ch)
                if check_finite:
                    n_nonfinite += nonfinite_values(ch.data)
                raw[ch.start:ch.stop] = scores
            else:
                method.second_pass_chunk(ch, raw[ch.start:ch.stop])
        if n_nonfinite:
            raise ValueError(
                f"The expression matrix holds {n_nonfinite} NaN or infinite values. Replace "
                "them (e.g. np.nan_to_num) or remove the affected observations before scoring."
            )
    return raw


def describe(method: ScoringMethod) -> dict[str, Any]:
    return {"method": method.name, "reference": method.reference, **method.params()}
