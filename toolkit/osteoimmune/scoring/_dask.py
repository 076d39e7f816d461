"""Scoring a dask array: gene statistics as an ordered fold, scores with ``map_blocks``.

Works with any dask scheduler, including a :class:`dask.distributed.Client` (the default
scheduler once a client exists). Blocks of X are produced where dask puts them (workers
read their own blocks from disk); only small per-gene states and the score blocks travel.

Gene statistics (one reduction pass)
    Non-zero counts alone (AUCell) are integers: every block is counted on its own and
    the counts are summed in a tree. Floating-point sums depend on the order of
    additions, and the in-memory path adds rows one after another (float64 sums, plus a
    float32 running sum that reproduces scanpy's gene means bit for bit). A tree
    reduction of per-block partial sums would round differently, and no exact combination
    of partials can reproduce a sequential float32 running sum. The dask path therefore
    folds the blocks *in order*: task ``k`` takes the running state after block ``k - 1``
    (a few arrays of ``n_vars``, ~1 MB for 20,000 genes) and block ``k`` and returns the
    state after block ``k``. Blocks are still read in parallel and where they live; only
    the cheap O(nnz) accumulation is sequential, and the state moves to the block rather
    than the block to the driver. At most ``2 × worker threads`` blocks are loaded ahead
    of the fold: on a distributed cluster the fold is one chain of futures, each block
    submitted once the fold ``2 × threads`` blocks earlier is done; on a local scheduler
    it runs in waves of that many blocks (one ``compute`` per wave). The result is
    bit-identical to the in-memory pass for any chunking.

Scores (one map_blocks pass)
    Every method scores each row on its own (``X_chunk @ W`` or per-row ranks), so scoring
    block by block with ``map_blocks`` gives the same numbers as in memory. Within a block
    rows are processed ``chunk_size`` at a time, bounding the temporary arrays.

Methods that keep state across chunks (``two_pass``: scDRS accumulates column sums and
then places every control score in a pooled null) cannot be split into independent
tasks; for them the statistics pass still runs as the fold above, and the scoring passes
stream the blocks through the driver, in row order, on the same chunk grid as in memory.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import numba
import numpy as np
import pandas as pd
import scipy.sparse as sp

from ._base import GeneStats, ScoreContext, ScoringMethod
from ._runner import (
    ChunkScorer,
    StatsAccumulator,
    empty_small_pages,
    gather_stats,
    stream_passes,
)
from ._source import Chunk, MatrixSource

__all__ = ["dask_gene_stats", "dask_one_pass", "run_method_dask", "score_dask_array"]


def _task_threads() -> int:
    """numba threads for the kernels of one dask task; 0 keeps numba's own count.

    Dask runs one task per worker thread, so a task that starts threads of its own
    oversubscribes the cores. ``distributed`` therefore starts its workers with
    ``OMP_NUM_THREADS=1`` (``distributed.nanny.pre-spawn-environ``), which numba does
    not read. On a distributed worker the kernels use ``OMP_NUM_THREADS`` threads (1
    unless the user configured more); under dask's local threaded (or process) scheduler
    one thread; under the synchronous scheduler, where tasks run one at a time on the
    calling (main) thread, numba's own count.
    """
    try:
        from distributed import get_worker

        get_worker()
        on_worker = True
    except (ImportError, ValueError):
        on_worker = False
    if on_worker:
        env = os.environ.get("OMP_NUM_THREADS", "").strip()
        return int(env) if env.isdigit() and int(env) > 0 else 1
    if (threading.current_thread() is threading.main_thread()
            and multiprocessing.parent_process() is None):
        return 0
    return 1


@contextmanager
def _task_numba_threads() -> Iterator[None]:
    """Run the body with :func:`_task_threads` numba threads (restored afterwards; the
    setting is per calling thread)."""
    n = _task_threads()
    if n <= 0:
        yield
        return
    old = numba.get_num_threads()
    numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))
    try:
        yield
    finally:
        numba.set_num_threads(old)


def _iter_block_chunks(block, chunk_size: int, n_cols: int, offset: int = 0):
    """CSR chunks of at most ``chunk_size`` rows of one in-memory block.

    ``offset`` is the block's first row in the whole matrix: chunk ``start``/``stop`` are
    global row numbers, as in the in-memory runner.
    """
    if sp.issparse(block) and block.format == "csr":
        # views into the block's arrays (scipy's row slicing would copy every chunk)
        for ch in MatrixSource(block).iter_chunks(chunk_size, prefetch=False):
            yield Chunk(offset + ch.start, offset + ch.stop, ch.indptr, ch.indices, ch.data)
        return
    n = block.shape[0]
    for s in range(0, n, chunk_size):
        e = min(n, s + chunk_size)
        indptr, indices, data = MatrixSource.to_csr_arrays(block[s:e], n_cols)
        yield Chunk(offset + s, offset + e, indptr, indices, data)


def _fold_block(state: StatsAccumulator, block, chunk_size: int, n_cols: int
                ) -> StatsAccumulator:
    """State after adding ``block`` (rows in order) to a copy of ``state``."""
    new = state.copy()
    with _task_numba_threads():
        for ch in _iter_block_chunks(block, chunk_size, n_cols):
            new.update(ch.indptr, ch.indices, ch.data)
    return new


def _count_block(block, chunk_size: int, n_cols: int, level: str = "count") -> np.ndarray:
    """[non-zero counts (or flags) per gene..., non-finite values, rows] of one block
    (1 row), at an order-free level (``StatsAccumulator.ORDER_FREE``).

    Sums of at most a few million integers: exact in float64, in any order.
    """
    acc = _fold_block(StatsAccumulator(n_cols, False, level), block, chunk_size, n_cols)
    return _count_vector(acc)[None, :]


def _count_vector(acc: StatsAccumulator) -> np.ndarray:
    """[non-zero counts per gene..., non-finite values, rows] of an accumulator at an
    order-free level."""
    n_cols = acc.state.shape[0]
    out = np.empty(n_cols + 2, dtype=np.float64)
    out[:n_cols] = acc.state[:, 2]
    out[n_cols] = acc.glob[0]
    out[n_cols + 1] = acc.n_rows
    return out


def dask_gene_stats(source: MatrixSource, chunk_size: int, expm1: bool = False,
                    level: str = "full") -> GeneStats:
    """Gene statistics of a dask array, bit-identical to the in-memory pass.

    Parameters
    ----------
    source
        A :class:`MatrixSource` of kind ``"dask"``.
    chunk_size
        Rows per kernel call inside a block.
    expm1
        Also accumulate ``expm1`` sums (scDRS).
    level
        What to accumulate (see :class:`~osteoimmune.scoring._runner.StatsAccumulator`).

    Returns
    -------
    GeneStats
    """
    import dask

    X = source.X
    n_obs, n_vars = source.shape
    acc = StatsAccumulator(n_vars, expm1, level)
    if level in StatsAccumulator.ORDER_FREE and not expm1:
        # integer counts add exactly in any order: one independent task per block and a
        # tree sum, no sequential fold
        return _count_stats(_count_total(X, chunk_size, level).compute(), source, level)
    blocks = list(X.to_delayed().ravel())
    # The fold is sequential but loading blocks is not: left alone, the scheduler reads
    # blocks far ahead of the fold and holds them all. So at most ``window`` blocks are
    # loaded ahead of the fold.
    window = max(2, 2 * _n_threads())
    client = _client()
    if client is not None:
        acc = _fold_distributed(client, acc, blocks, int(chunk_size), n_vars, window)
    else:
        # local schedulers: fold in waves of ``window`` blocks (one compute per wave)
        fold = dask.delayed(_fold_block, pure=True)
        for w0 in range(0, len(blocks), window):
            state = dask.delayed(acc, pure=True)
            for blk in blocks[w0:w0 + window]:
                state = fold(state, blk, int(chunk_size), n_vars)
            (acc,) = dask.compute(state)
    return acc.result(n_obs, source.dtype)


def _fold_distributed(client, acc: StatsAccumulator, blocks: list, chunk_size: int,
                      n_vars: int, window: int) -> StatsAccumulator:
    """The ordered fold as one chain of futures on a distributed cluster.

    Block ``i + window`` is submitted once the fold of block ``i`` is done, so the chain
    never waits for the client (no round trip per wave) and at most ``window`` blocks are
    held. Each fold runs where its block is; only the state (a few per-gene arrays)
    moves.
    """
    from distributed import wait

    state = acc
    pending = []  # fold futures not yet waited for, oldest first
    for blk in blocks:
        if len(pending) >= window:
            wait(pending.pop(0))
        block = client.compute(blk)
        state = client.submit(_fold_block, state, block, chunk_size, n_vars, pure=False)
        pending.append(state)
        del block  # released once its fold has run
    return state.result() if blocks else acc


def _client():
    """The active dask.distributed client, or None."""
    try:
        from distributed import default_client

        return default_client()
    except (ImportError, ValueError):
        return None


def _count_total(X, chunk_size: int, level: str = "count"):
    """Lazy per-gene non-zero counts (or flags) of a dask array, summed over blocks in a
    tree."""
    n_vars = int(X.shape[1])
    parts = X.map_blocks(_count_block, int(chunk_size), n_vars, level, dtype=np.float64,
                         chunks=(1, n_vars + 2), meta=np.empty((0, 0), dtype=np.float64))
    return parts.sum(axis=0)


def _count_stats(total: np.ndarray, source: MatrixSource, level: str = "count"
                 ) -> GeneStats:
    """:class:`GeneStats` at an order-free ``level`` from the summed output of
    :func:`_count_total` (flags summed over blocks are set back to 1)."""
    n_obs, n_vars = source.shape
    acc = StatsAccumulator(n_vars, False, level)
    acc.state[:, 2] = total[:n_vars] if level == "count" else total[:n_vars] > 0
    acc.glob[0] = total[n_vars]
    acc.n_rows = int(round(total[n_vars + 1]))
    return acc.result(n_obs, source.dtype)


def dask_one_pass(method: ScoringMethod, source: MatrixSource, chunk_size: int,
                  level: str, prior: np.ndarray | None = None
                  ) -> tuple[np.ndarray, GeneStats]:
    """Raw scores of a prepared method and the gene statistics, from one read of X.

    One task per block scores it and counts its non-zeros, so dask reads every block
    once and frees it at once. Only the order-free levels (``"count"`` and
    ``"expressed"``: integers, summed in any order) are supported: the other levels need
    the sequential fold. ``prior`` (level ``"expressed"``): genes known to be expressed
    (e.g. in the first rows), which no block then looks for
    (:meth:`StatsAccumulator.seed_expressed`).

    Returns
    -------
    raw, stats
    """
    import dask

    if level not in StatsAccumulator.ORDER_FREE or method.needs_expm1:
        raise ValueError("One-pass dask scoring needs order-free statistics "
                         f"{StatsAccumulator.ORDER_FREE}, not {level!r}.")
    X = source.X
    n_vars = int(X.shape[1])
    scorer_d = dask.delayed(ChunkScorer(method), pure=True)
    bounds = np.concatenate([[0], np.cumsum(X.chunks[0])]).astype(np.int64)
    # One blockwise task per block does both (its result: one object holding the scores
    # and the counts), so a block has a single consumer and is freed as soon as it is
    # used (two consumers per block let the scheduler hold many blocks), and dask fuses
    # it with the task that loads the block: a loaded block never waits in memory (as
    # separate tasks, loads faster than scoring ran ahead: with a memory-mapping block
    # reader, one worker held 11.8 GB of blocks at 1M cells)
    prior_d = None if prior is None else dask.delayed(np.asarray(prior), pure=True)
    parts = X.map_blocks(_score_count_block, scorer_d, int(chunk_size), n_vars, level,
                         prior_d, dtype=object, chunks=((1,) * len(X.chunks[0]), (1,)),
                         meta=np.empty((0, 0), dtype=object))
    results = parts.compute().ravel()
    raw = empty_small_pages((source.shape[0], method.n_out()))
    total = np.zeros(n_vars + 2, dtype=np.float64)
    for (scores, counts), s, e in zip(results, bounds[:-1], bounds[1:]):
        raw[s:e] = scores
        total += counts  # integers: exact in any order
    return raw, _count_stats(total, source, level)


def _score_count_block(block, scorer: ChunkScorer, chunk_size: int, n_cols: int,
                       level: str = "count", prior: np.ndarray | None = None,
                       block_info=None) -> np.ndarray:
    """Raw scores and ``_count_block``'s counts of one block, from one read of it, as a
    1 × 1 object array (a block of :func:`dask_one_pass`'s blockwise result). With
    ``prior`` (level ``"expressed"``), the block looks only for the other genes, through
    the rows the scoring kernel flags."""
    offset = int(block_info[0]["array-location"][0][0]) if block_info else 0
    acc = StatsAccumulator(n_cols, False, level)
    if prior is not None:
        acc.seed_expressed(prior)
    out = np.empty((block.shape[0], scorer.n_out), dtype=np.float64)
    with _task_numba_threads():
        for ch in _iter_block_chunks(block, chunk_size, n_cols, offset):
            scores, n_bad, watched = scorer.counted(ch, acc.watch_table())
            acc.update(ch.indptr, ch.indices, ch.data, n_nonfinite=n_bad, watched=watched)
            out[ch.start - offset:ch.stop - offset] = scores
    packed = np.empty((1, 1), dtype=object)
    packed[0, 0] = (out, _count_vector(acc))
    return packed


def _n_threads() -> int:
    """Worker threads of the active dask scheduler (distributed client or local)."""
    client = _client()
    if client is not None:
        info = client.scheduler_info()
        return max(1, sum(int(w.get("nthreads", 1)) for w in info["workers"].values()))
    import os

    import dask

    return int(dask.config.get("num_workers", None) or os.cpu_count() or 1)


def _score_block(block, scorer: ChunkScorer, chunk_size: int, n_cols: int,
                 block_info=None) -> np.ndarray:
    offset = int(block_info[0]["array-location"][0][0]) if block_info else 0
    out = np.empty((block.shape[0], scorer.n_out), dtype=np.float64)
    with _task_numba_threads():
        for ch in _iter_block_chunks(block, chunk_size, n_cols, offset):
            out[ch.start - offset:ch.stop - offset] = scorer(ch)
    return out


def score_dask_array(method: ScoringMethod, X, chunk_size: int):
    """Raw first-pass scores of a prepared method as a lazy dask array.

    Parameters
    ----------
    method
        A prepared method.
    X
        Dask array with one column block (observations × genes).
    chunk_size
        Rows per kernel call inside a block.

    Returns
    -------
    dask.array.Array
        float64, observations × ``method.n_out()``, one row block per block of X,
        computed with :meth:`dask.array.Array.map_blocks`.
    """
    import dask

    scorer = ChunkScorer(method)
    # one graph key for the prepared method: shipped once to each worker, not per task
    scorer_d = dask.delayed(scorer, pure=True)
    return X.map_blocks(_score_block, scorer_d, int(chunk_size), int(X.shape[1]),
                        dtype=np.float64, chunks=(X.chunks[0], (scorer.n_out,)),
                        meta=np.empty((0, 0), dtype=np.float64))


def _rowwise_finalize(method: ScoringMethod) -> bool:
    """Whether ``finalize`` maps each row on its own (then it can run per block).

    A method may declare it with a ``finalize_rowwise`` attribute; by default only the
    base class's ``finalize`` (a plain table of the raw rows) is taken as row-wise.
    """
    default = type(method).finalize is ScoringMethod.finalize
    return bool(getattr(method, "finalize_rowwise", default)) and not method.two_pass


def _finalize_block(raw: np.ndarray, names: pd.Index, method: ScoringMethod) -> pd.DataFrame:
    return method.finalize(raw, names)


def run_method_dask(method: ScoringMethod, source: MatrixSource, ctx: ScoreContext, *,
                    obs_names: pd.Index, chunk_size: int, progress: bool = False,
                    stats: GeneStats | None = None, compute: bool = True):
    """:func:`~osteoimmune.scoring.run_method` for a dask array.

    Parameters
    ----------
    method, source, ctx, obs_names, chunk_size, progress, stats
        As for :func:`~osteoimmune.scoring.run_method`.
    compute
        ``True``: compute the scores (with the active dask scheduler) and return a pandas
        DataFrame. ``False``: return a lazy :class:`dask.dataframe.DataFrame` with one
        partition per row block of X (index = observation names); the gene statistics
        are computed now, the scoring pass when the frame is computed.

    Returns
    -------
    pandas.DataFrame or dask.dataframe.DataFrame

    Raises
    ------
    ValueError
        ``compute=False`` with a method whose normalisation needs all observations
        (two-pass methods or a non-row-wise ``finalize``, e.g. scDRS p-values).
    """
    import dask

    if not compute and not _rowwise_finalize(method):
        raise ValueError(
            f"method={method.name!r} normalises its scores over all observations, so it "
            "cannot return a lazy result; call with compute=True (the scoring still runs "
            "block by block on the dask scheduler)."
        )
    # a lazy result (compute=False) defers scoring, so it cannot share the counting pass
    raw = gather_stats(method, source, ctx, chunk_size, progress, stats,
                       allow_one_pass=compute)
    if raw is not None:
        return method.finalize(raw, obs_names)
    method.prepare(ctx)
    if method.two_pass:
        # scoring keeps state across chunks (scDRS: column sums, then the pooled null):
        # stream the blocks through the driver on the in-memory chunk grid and order
        raw = stream_passes(method, source, chunk_size, progress)
        return method.finalize(raw, obs_names)
    arr = score_dask_array(method, source.X, chunk_size)
    if not compute:
        import dask.dataframe as dd

        cols = method.columns()
        bounds = np.concatenate([[0], np.cumsum(arr.chunks[0])])
        parts = [dask.delayed(_finalize_block, pure=True)(blk, obs_names[s:e], method)
                 for blk, s, e in zip(arr.to_delayed().ravel(), bounds[:-1], bounds[1:])]
        meta = method.finalize(np.empty((0, len(cols))), obs_names[:0])
        return dd.from_delayed(parts, meta=meta, divisions=None, verify_meta=False)
    # the blocks go into one result allocated without huge pages (empty_small_pages),
    # not through dask's concatenation
    blocks = dask.compute(*arr.to_delayed().ravel())
    raw = empty_small_pages(arr.shape)
    np.concatenate(blocks, axis=0, out=raw)
    return method.finalize(raw, obs_names)
