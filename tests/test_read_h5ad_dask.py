"""``oi.datasets.read_h5ad_dask``: an .h5ad file as dask row blocks, mapped not copied."""

from __future__ import annotations

import gc
import mmap
import sys
import warnings
import weakref

import anndata as ad
import dask
import numpy as np
import pandas as pd
import pytest
from test_mmap_reader import N_OBS, N_VARS, _root, _write_chunked

import osteoimmune as oi

LINUX = sys.platform.startswith("linux")
ROWS = 170  # rows per dask block


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("h5ad_dask")
    X = _write_chunked(d / "chunked.h5ad")  # storage breaks every few chunks
    _write_chunked(d / "gzip.h5ad", compression="gzip")
    obs = pd.DataFrame({"donor": [f"d{i % 7}" for i in range(N_OBS)]},
                       index=[f"c{i}" for i in range(N_OBS)])
    var = pd.DataFrame(index=[f"G{j}" for j in range(N_VARS)])
    ad.AnnData(X=X, obs=obs, var=var).write_h5ad(d / "contiguous.h5ad")
    ad.AnnData(X=X.toarray(), obs=obs, var=var).write_h5ad(d / "dense.h5ad")
    ad.AnnData(X=X.tocsc(), obs=obs, var=var).write_h5ad(d / "csc.h5ad")
    rng = np.random.default_rng(2)
    sigs = {f"s{i}": list(rng.choice(var.index.to_numpy(), 20, replace=False))
            for i in range(4)}
    return X, d, sigs, ad.AnnData(X=X, obs=obs, var=var)


def _block(a, b):
    """Block ``b`` of ``a.X`` as the task made it (``X.blocks[b]`` would slice a copy)."""
    return dask.compute(a.X.to_delayed()[b, 0], scheduler="synchronous")[0]


@pytest.mark.parametrize("name", ["contiguous.h5ad", "chunked.h5ad", "gzip.h5ad",
                                  "dense.h5ad"])
def test_blocks_hold_the_stored_rows(files, name):
    X, d, _, mem = files
    a = oi.datasets.read_h5ad_dask(d / name, chunk_size=ROWS)
    assert a.shape == mem.shape and a.X.chunks[0][0] == ROWS
    assert a.obs_names.equals(mem.obs_names) and a.var_names.equals(mem.var_names)
    if name not in ("chunked.h5ad", "gzip.h5ad"):  # written with obs columns
        assert a.obs["donor"].astype(str).equals(mem.obs["donor"].astype(str))
    n_mapped = 0
    for b, s in enumerate(range(0, N_OBS, ROWS)):
        block = _block(a, b)
        want = X[s:s + ROWS]
        if name == "dense.h5ad":
            assert isinstance(block, np.ndarray)
            assert np.array_equal(block, want.toarray())
            continue
        assert np.array_equal(block.indptr, want.indptr)
        assert np.array_equal(block.indices, want.indices)
        assert np.array_equal(block.data, want.data) and block.data.dtype == np.float32
        n_mapped += isinstance(_root(block.data), mmap.mmap)
    n_blocks = len(a.X.chunks[0])
    if not LINUX or name in ("gzip.h5ad", "dense.h5ad"):
        assert n_mapped == 0  # compressed or dense: read with h5py
    elif name == "contiguous.h5ad":
        assert n_mapped == n_blocks  # every block a view of the page cache
    else:
        assert 0 < n_mapped < n_blocks  # blocks across a storage break are joined copies


@pytest.mark.parametrize("name", ["contiguous.h5ad", "chunked.h5ad", "dense.h5ad"])
@pytest.mark.parametrize("method", ["module", "aucell", "ucell", "zmean", "scdrs"])
def test_scores_equal_in_memory(files, name, method):
    _, d, sigs, mem = files
    kw = {"n_ctrl": 30} if method == "scdrs" else {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = oi.tl.score(mem, sigs, method=method, progress=False, chunk_size=96, **kw)
        got = oi.tl.score(oi.datasets.read_h5ad_dask(d / name, chunk_size=ROWS), sigs,
                          method=method, progress=False, chunk_size=96, **kw)
    assert ref.index.equals(got.index) and list(ref.columns) == list(got.columns)
    assert np.array_equal(ref.to_numpy().view(np.uint64), got.to_numpy().view(np.uint64))


@pytest.mark.skipif(not LINUX, reason="blocks are mapped on Linux only")
def test_a_block_map_closes_with_the_block(files):
    """A worker holds only the blocks in use: the map of a block goes with its last view."""
    _, d, _, _ = files
    a = oi.datasets.read_h5ad_dask(d / "contiguous.h5ad", chunk_size=ROWS)
    block = _block(a, 3)
    mm = _root(block.data)
    assert isinstance(mm, mmap.mmap)
    ref = weakref.ref(mm)
    view = block.data[5:9]
    del block, mm
    gc.collect()
    assert ref() is not None  # a view still reads it
    assert np.isfinite(view).all()
    del view
    gc.collect()
    assert ref() is None


def test_bad_input(files, tmp_path):
    _, d, _, _ = files
    with pytest.raises(ValueError, match="csc_matrix.*CSR"):
        oi.datasets.read_h5ad_dask(d / "csc.h5ad")
    with pytest.raises(FileNotFoundError, match="No such .h5ad"):
        oi.datasets.read_h5ad_dask(tmp_path / "missing.h5ad")
    with pytest.raises(ValueError, match="chunk_size must be a positive integer"):
        oi.datasets.read_h5ad_dask(d / "contiguous.h5ad", chunk_size=0)


def test_distributed_worker_processes(files):
    """Worker processes open the file themselves (the task carries the path only)."""
    distributed = pytest.importorskip("distributed")
    _, d, sigs, mem = files
    ref = oi.tl.score(mem, sigs, method="module", progress=False, chunk_size=96)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster):
        a = oi.datasets.read_h5ad_dask(d / "chunked.h5ad", chunk_size=ROWS)
        got = oi.tl.score(a, sigs, method="module", progress=False, chunk_size=96)
    assert np.array_equal(ref.to_numpy(), got.to_numpy())
