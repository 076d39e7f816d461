"""The shared runner: one pass of gene statistics, one scoring pass over row chunks."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
from tqdm.auto import tqdm

from ._base import GeneStats, ScoreContext, ScoringMethod
from ._kernels import csr_times_sparse, gene_stats_update
from ._source import MatrixSource


def compute_gene_stats(source: MatrixSource, chunk_size: int, expm1: bool = False,
                       progress: bool = False) -> GeneStats:
    """Per-gene sums, sums of squares and non-zero counts in one pass (row order).

    Raises
    ------
    ValueError
        If the matrix holds NaN or infinite values.
    """
    n_obs, n_vars = source.shape
    s64 = np.zeros(n_vars)
    sq64 = np.zeros(n_vars)
    nnz = np.zeros(n_vars, dtype=np.int64)
    s32 = np.zeros(n_vars, dtype=np.float32)
    es = np.zeros(n_vars if expm1 else 1)
    esq = np.zeros(n_vars if expm1 else 1)
    glob = np.array([0.0, 0.0, -np.inf, np.inf, 0.0])
    it = source.iter_chunks(chunk_size)
    if progress:
        it = tqdm(it, total=-(-n_obs // chunk_size), desc="gene statistics", unit="chunk",
                  leave=False)
    for ch in it:
        gene_stats_update(ch.indptr, ch.indices, ch.data, s64, sq64, nnz, s32, expm1, es, esq,
                          glob)
    if glob[0] > 0:
        raise ValueError(
            f"The expression matrix holds {int(glob[0])} NaN or infinite values. Replace them "
            "(e.g. np.nan_to_num) or remove the affected observations before scoring."
        )
    native = s32 if source.dtype == np.float32 else s64
    return GeneStats(
        n_obs=n_obs, n_vars=n_vars, sum=s64, sumsq=sq64, nnz=nnz, sum_native=native.copy(),
        expm1_sum=es if expm1 else None, expm1_sumsq=esq if expm1 else None,
        n_nonfinite=int(glob[0]), n_nonint=int(glob[1]),
        max=float(glob[2]) if glob[4] else 0.0, min=float(glob[3]) if glob[4] else 0.0,
        n_stored_nonzero=int(glob[4]),
    )


def run_method(method: ScoringMethod, source: MatrixSource, ctx: ScoreContext, *,
               obs_names: pd.Index, chunk_size: int, progress: bool,
               stats: GeneStats | None = None) -> pd.DataFrame:
    """Run one method over all chunks and return its result table."""
    if method.needs_stats and stats is None:
        stats = compute_gene_stats(source, chunk_size, expm1=method.needs_expm1,
                                   progress=progress)
    ctx.stats = stats
    method.prepare(ctx)
    n_obs = source.shape[0]
    raw = np.empty((n_obs, method.n_out()), dtype=np.float64)
    lin = method.linear()
    if lin is not None:
        W, offset = lin
        W = sp.csr_matrix(W)
        W.sort_indices()
        w_indptr = W.indptr.astype(np.int64)
        w_indices = W.indices.astype(np.int64)
        w_data = W.data.astype(np.float64)
    n_chunks = -(-n_obs // chunk_size)
    passes = 2 if method.two_pass else 1
    for p in range(passes):
        it = source.iter_chunks(chunk_size)
        if progress:
            desc = f"{method.name} scoring" + (f" (pass {p + 1}/2)" if passes > 1 else "")
            it = tqdm(it, total=n_chunks, desc=desc, unit="chunk", leave=False)
        for ch in it:
            if p == 0:
                if lin is not None:
                    out = csr_times_sparse(ch.indptr, ch.indices, ch.data, w_indptr, w_indices,
                                           w_data, W.shape[1])
                    out += offset
                else:
                    out = method.score_chunk(ch)
                raw[ch.start:ch.stop] = out
            else:
                method.second_pass_chunk(ch, raw[ch.start:ch.stop])
    return method.finalize(raw, obs_names)


def describe(method: ScoringMethod) -> dict[str, Any]:
    return {"method": method.name, "reference": method.reference, **method.params()}
