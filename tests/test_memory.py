"""Scoring a backed file larger than a memory budget stays under the budget.

Memory is measured with :mod:`tracemalloc`, which sees every numpy buffer (h5py reads,
chunk conversions, score tables); a positive control shows the same measure exceeds the
budget when X is loaded.
"""

from __future__ import annotations

import gc
import tracemalloc
import warnings

import anndata as ad
import h5py
import numpy as np
import pandas as pd
import pytest

import osteoimmune as oi

N_OBS, N_VARS, DENSITY = 30_000, 2_000, 0.1  # ~6 M stored values, ~48 MB of X on disk
CHUNK = 1_000
BUDGET = 16 * 2**20  # a third of X


def _write_csr_h5ad(path, n_obs, n_vars, density, seed=0, rows_per_write=5_000):
    """A log-normalised-looking CSR .h5ad written in row blocks (never whole in memory)."""
    rng = np.random.default_rng(seed)
    p = rng.gamma(0.6, 1.0, n_vars)
    p = np.clip(p / p.mean() * density, 0, 0.95)
    obs = pd.DataFrame(index=[f"c{i}" for i in range(n_obs)])
    var = pd.DataFrame(index=[f"G{j}" for j in range(n_vars)])
    ad.AnnData(obs=obs, var=var).write_h5ad(path)
    with h5py.File(path, "a") as f:
        if "X" in f:
            del f["X"]
        g = f.create_group("X")
        g.attrs["encoding-type"] = "csr_matrix"
        g.attrs["encoding-version"] = "0.1.0"
        g.attrs["shape"] = (n_obs, n_vars)
        d = g.create_dataset("data", (0,), dtype=np.float32, maxshape=(None,),
                             chunks=(1 << 16,))
        ix = g.create_dataset("indices", (0,), dtype=np.int32, maxshape=(None,),
                              chunks=(1 << 16,))
        indptr = [np.zeros(1, dtype=np.int64)]
        total = 0
        for s in range(0, n_obs, rows_per_write):
            e = min(n_obs, s + rows_per_write)
            mask = rng.random((e - s, n_vars)) < p
            rows, cols = np.nonzero(mask)
            vals = np.log1p(rng.gamma(2.0, 2.0, rows.size)).astype(np.float32)
            n = rows.size
            d.resize((total + n,))
            ix.resize((total + n,))
            d[total:] = vals
            ix[total:] = cols.astype(np.int32)
            indptr.append(total + np.cumsum(np.bincount(rows, minlength=e - s)))
            total += n
        g.create_dataset("indptr", data=np.concatenate(indptr))
    return total


@pytest.fixture(scope="module")
def big_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("mem") / "big.h5ad"
    nnz = _write_csr_h5ad(path, N_OBS, N_VARS, DENSITY)
    return path, nnz


def _peak(fn):
    gc.collect()
    tracemalloc.start()
    try:
        out = fn()
        return out, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_file_is_larger_than_budget(big_file):
    path, nnz = big_file
    x_bytes = nnz * (4 + 4)
    assert x_bytes > 2.5 * BUDGET
    b = ad.read_h5ad(path, backed="r")
    try:
        # positive control: loading X does exceed the budget under the same measure
        X, peak = _peak(lambda: b.X[:])
        assert X.nnz == nnz
        assert peak > 2.5 * BUDGET
    finally:
        b.file.close()


@pytest.mark.parametrize("method", ["module", "aucell", "ucell"])
def test_backed_scoring_stays_under_budget(big_file, method):
    path, _ = big_file
    rng = np.random.default_rng(1)
    sigs = {f"s{i}": [f"G{j}" for j in rng.choice(N_VARS, 50, replace=False)]
            for i in range(10)}
    b = ad.read_h5ad(path, backed="r")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            oi.tl.score(b, {"warm": ["G1", "G2", "G3"]}, method=method, progress=False,
                        chunk_size=CHUNK)  # numba compilation outside the measurement
            res, peak = _peak(lambda: oi.tl.score(b, sigs, method=method, progress=False,
                                                  chunk_size=CHUNK))
    finally:
        b.file.close()
    assert res.shape == (N_OBS, 10)
    assert np.isfinite(res.to_numpy()).all() and res.std().gt(0).all()
    print(f"{method}: peak {peak / 2**20:.2f} MiB")
    assert peak < BUDGET, f"{method}: peak {peak / 2**20:.1f} MiB > {BUDGET / 2**20:.0f} MiB"
