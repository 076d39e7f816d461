"""Out-of-core scoring: backed .h5ad and dask give the in-memory numbers, bit for bit."""

from __future__ import annotations

import threading
import warnings

import anndata as ad
import dask
import dask.array as da
import h5py
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from conftest import make_synthetic

import osteoimmune as oi
from osteoimmune.scoring import METHODS, MatrixSource, compute_gene_stats
from osteoimmune.scoring._dask import dask_gene_stats

N_OBS, N_VARS = 700, 320
CHUNK = 96  # rows per chunk: misaligned with every dask block size used below


def _opts(method: str) -> dict:
    return {"n_ctrl": 40} if method == "scdrs" else {}


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    adata = make_synthetic(n_obs=N_OBS, n_vars=N_VARS, density=0.12, seed=3)
    path = tmp_path_factory.mktemp("backed") / "small.h5ad"
    adata.write_h5ad(path)
    rng = np.random.default_rng(7)
    genes = adata.var_names.to_numpy()
    sigs = {f"sig{i}": list(rng.choice(genes[5:], 15, replace=False)) for i in range(5)}
    sigs["signed"] = list(rng.choice(genes[5:], 8, replace=False)) + \
        [f"{g}-" for g in rng.choice(genes[5:], 4, replace=False)]
    return adata, path, sigs


def _score(adata, sigs, method, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return oi.tl.score(adata, sigs, method=method, progress=False, chunk_size=CHUNK,
                           **_opts(method), **kw)


def _dask_adata(adata, chunks):
    out = adata.copy()
    out.X = da.from_array(adata.X, chunks=chunks, asarray=False)
    return out


def _lazy_adata(path, rows):
    """AnnData whose X is anndata.experimental.read_elem_lazy's dask array of CSR blocks."""
    from anndata.experimental import read_elem_lazy

    f = h5py.File(path, "r")
    X = read_elem_lazy(f["X"], chunks=(rows, -1))
    return ad.AnnData(X=X, obs=ad.io.read_elem(f["obs"]), var=ad.io.read_elem(f["var"])), f


def _assert_identical(a: pd.DataFrame, b: pd.DataFrame):
    assert list(a.columns) == list(b.columns)
    assert a.index.equals(b.index)
    # bit-identical, NaN-safe
    assert np.array_equal(a.to_numpy().view(np.uint64), b.to_numpy().view(np.uint64))


def test_every_method_is_covered():
    assert {"module", "aucell", "ucell", "zmean"} <= set(METHODS)


@pytest.mark.parametrize("method", sorted(METHODS))
def test_backed_memory_dask_identical(small, method):
    adata, path, sigs = small
    ref = _score(adata, sigs, method)
    assert np.isfinite(ref.to_numpy()).all()
    assert ref.std().gt(0).all()  # real scores, not a constant

    backed = ad.read_h5ad(path, backed="r")
    try:
        assert MatrixSource(backed.X).kind == "backed_sparse"
        _assert_identical(ref, _score(backed, sigs, method))
    finally:
        backed.file.close()

    # dask array of CSR blocks, irregular row blocks and two column blocks (rechunked)
    dsk = _dask_adata(adata, chunks=((250, 13, 300, 137), (200, 120)))
    _assert_identical(ref, _score(dsk, sigs, method))

    lazy, f = _lazy_adata(path, rows=128)
    try:
        _assert_identical(ref, _score(lazy, sigs, method))
    finally:
        f.close()


def test_results_do_not_depend_on_chunk_size_or_blocks(small):
    adata, _, sigs = small
    ref = _score(adata, sigs, "module")
    for rows in (7, 64, N_OBS):
        dsk = _dask_adata(adata, chunks=(rows, N_VARS))
        for cs in (1, 50, 10_000):
            if rows == 7 and cs == 1:
                continue  # 700 single-row kernel calls add time, not coverage
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                got = oi.tl.score(dsk, sigs, method="module", progress=False, chunk_size=cs)
            _assert_identical(ref, got)


def test_dask_gene_stats_bit_identical(small):
    adata, _, _ = small
    ref = compute_gene_stats(MatrixSource(adata.X), 10_000, expm1=True)
    for chunks in ((N_OBS, N_VARS), (33, N_VARS), ((1, 400, 299), N_VARS)):
        src = MatrixSource(da.from_array(adata.X, chunks=chunks, asarray=False))
        got = dask_gene_stats(src, CHUNK, expm1=True)
        for field in ("sum", "sumsq", "nnz", "sum_native", "expm1_sum", "expm1_sumsq"):
            assert np.array_equal(getattr(ref, field), getattr(got, field)), field
        assert (ref.max, ref.min, ref.n_stored_nonzero) == (got.max, got.min,
                                                            got.n_stored_nonzero)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_expressed_level_matches_counts(small, dtype):
    """Level "expressed" (AUCell's) flags exactly the genes with a non-zero count, and
    still counts every NaN and infinity after all genes have been seen (when it stops
    marking genes), by chunk and on dask."""
    from osteoimmune.scoring._dask import _count_total
    from osteoimmune.scoring._runner import StatsAccumulator

    adata, _, _ = small
    X = sp.lil_matrix(adata.X.astype(dtype))
    never = np.flatnonzero(adata.X.getnnz(axis=0) == 0)
    assert len(never)
    X[0, never] = 0.5  # every gene expressed somewhere ...
    X[:, 7] = 0.0
    X[N_OBS - 2, 7] = 3.0  # ... gene 7 only in the second-last row
    X = sp.csr_matrix(X)
    X.data[X.indptr[2] + 1] = 0.0  # an explicit zero is not an expression
    late = X.indptr[N_OBS - 50]
    X.data[late] = np.nan  # before every gene has been seen ...
    X.data[X.indptr[N_OBS - 1]] = -np.inf  # ... and after it
    X.data[X.indptr[1]] = np.inf

    def run(level, cs):
        acc = StatsAccumulator(N_VARS, level=level)
        for ch in MatrixSource(X).iter_chunks(cs):
            acc.update(ch.indptr, ch.indices, ch.data)
        return acc

    ref = run("count", CHUNK)
    counts = ref.state[:, 2]
    assert ref.glob[0] == 3 and counts[7] == 1
    for cs in (1, CHUNK, N_OBS):
        got = run("expressed", cs)
        assert np.array_equal(got.state[:, 2], counts > 0)
        assert got.glob[0] == 3 and got.n_unseen == 0
    # gene 7 keeps the marking on until the second-last row
    acc = StatsAccumulator(N_VARS, level="expressed")
    head = MatrixSource(X).first_rows(N_OBS - 2)
    acc.update(*head)
    assert acc.n_unseen == 1 and acc.seen[7] == 0
    for blocks in ((175, N_VARS), (N_OBS, N_VARS)):
        total = _count_total(da.from_array(X, chunks=blocks, asarray=False), CHUNK,
                             "expressed").compute()
        assert np.array_equal(total[:N_VARS] > 0, counts > 0)
        assert total[N_VARS:].tolist() == [3, N_OBS]


def test_dask_stats_with_nan_raise(small):
    adata, _, sigs = small
    X = adata.X.copy()
    X.data[3] = np.nan
    dsk = ad.AnnData(X=da.from_array(X, chunks=(200, N_VARS), asarray=False),
                     obs=adata.obs, var=adata.var)
    with pytest.raises(ValueError, match="NaN or infinite"):
        _score(dsk, sigs, "zmean")


def test_dask_distributed_client(small):
    distributed = pytest.importorskip("distributed")
    adata, _, sigs = small
    dsk = _dask_adata(adata, chunks=(175, N_VARS))
    refs = {m: _score(adata, sigs, m) for m in ("module", "aucell")}
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        with distributed.get_task_stream(client) as ts:
            for m, ref in refs.items():
                _assert_identical(ref, _score(dsk, sigs, m))
        keys = [str(t["key"]) for t in ts.data]
        # both passes ran as tasks on the cluster: the ordered fold (module sums) or
        # per-block counts (AUCell), and map_blocks
        assert sum("fold_block" in k for k in keys) == len(dsk.X.chunks[0])
        # AUCell: a one-pass try (scores and counts, one task per block; the first chunk
        # misses few genes) that five never-expressed genes overturn, then the scoring
        # pass; module: its scoring pass
        assert sum("score_count_block" in k for k in keys) == len(dsk.X.chunks[0])
        assert sum("score_block" in k for k in keys) == 2 * len(dsk.X.chunks[0])
        lazy = _score(dsk, sigs, "aucell", compute=False)
        _assert_identical(refs["aucell"], client.compute(lazy).result())


def test_compute_false_is_lazy_map_blocks(small):
    adata, _, sigs = small
    ref = _score(adata, sigs, "ucell")
    dsk = _dask_adata(adata, chunks=(160, N_VARS))
    lazy = _score(dsk, sigs, "ucell", compute=False)
    import dask.dataframe as dd

    assert isinstance(lazy, dd.DataFrame)
    assert lazy.npartitions == len(dsk.X.chunks[0])
    assert list(lazy.columns) == list(ref.columns)
    graph = dict(lazy.__dask_graph__())
    assert any("score_block" in str(k) for k in graph)  # the map_blocks layer
    _assert_identical(ref, lazy.compute())


def test_compute_false_errors(small):
    adata, _, sigs = small
    dsk = _dask_adata(adata, chunks=(160, N_VARS))
    with pytest.raises(ValueError, match="inplace=True"):
        _score(dsk, sigs, "module", compute=False, inplace=True)
    if "scdrs" in METHODS:
        with pytest.raises(ValueError, match="compute=True"):
            _score(dsk, sigs, "scdrs", compute=False)


def test_inplace_on_backed(small):
    adata, path, sigs = small
    backed = ad.read_h5ad(path, backed="r")
    try:
        res = _score(backed, sigs, "zmean", inplace=True)
        _assert_identical(res, backed.obsm["zmean_scores"])
        _assert_identical(_score(adata, sigs, "zmean"), res)
    finally:
        backed.file.close()


def test_backed_dense_and_unsorted_indices(tmp_path, small):
    adata, _, sigs = small
    ref = _score(adata, sigs, "aucell")
    dense = adata.copy()
    dense.X = adata.X.toarray()
    dense.write_h5ad(tmp_path / "dense.h5ad")
    b = ad.read_h5ad(tmp_path / "dense.h5ad", backed="r")
    try:
        assert MatrixSource(b.X).kind == "backed_dense"
        _assert_identical(ref, _score(b, sigs, "aucell"))
    finally:
        b.file.close()
    # a CSR matrix stored with indices reversed inside every row
    X = adata.X.copy()
    for i in range(X.shape[0]):
        s, e = X.indptr[i], X.indptr[i + 1]
        X.indices[s:e] = X.indices[s:e][::-1].copy()
        X.data[s:e] = X.data[s:e][::-1].copy()
    X.has_sorted_indices = False
    uns = ad.AnnData(X=X, obs=adata.obs, var=adata.var)
    uns.write_h5ad(tmp_path / "unsorted.h5ad")
    with h5py.File(tmp_path / "unsorted.h5ad", "r") as f:
        first = f["X/indices"][: X.indptr[1]]
        assert np.all(np.diff(first) < 0)  # really stored unsorted
    b = ad.read_h5ad(tmp_path / "unsorted.h5ad", backed="r")
    try:
        _assert_identical(ref, _score(b, sigs, "aucell"))
    finally:
        b.file.close()
    assert not np.array_equal(X.indices, adata.X.indices)  # the user's matrix untouched


def test_backed_chunks_keep_stored_dtypes(small):
    adata, path, _ = small
    b = ad.read_h5ad(path, backed="r")
    try:
        src = MatrixSource(b.X)
        mem = list(MatrixSource(adata.X).iter_chunks(CHUNK))
        got = list(src.iter_chunks(CHUNK))
        assert [(c.start, c.stop) for c in got] == [(c.start, c.stop) for c in mem]
        for c, m in zip(got, mem):
            assert c.data.dtype == np.float32 and c.indices.dtype == np.int32  # no upcast
            assert np.array_equal(c.indptr, m.indptr)
            assert np.array_equal(c.indices, m.indices)
            assert np.array_equal(c.data, m.data)
    finally:
        b.file.close()


def test_dask_dense_blocks(small):
    adata, _, sigs = small
    ref = _score(adata, sigs, "module")
    dsk = ad.AnnData(X=da.from_array(adata.X.toarray(), chunks=(111, 100)), obs=adata.obs,
                     var=adata.var)
    _assert_identical(ref, _score(dsk, sigs, "module"))


def test_aggregate_on_backed_never_reads_x(small, monkeypatch):
    adata, path, sigs = small
    rng = np.random.default_rng(0)
    donors = np.array([f"d{i}" for i in rng.integers(0, 6, N_OBS)])
    ctypes = np.array(["mono", "mac"])[rng.integers(0, 2, N_OBS)]
    mem = adata.copy()
    mem.obs["donor"], mem.obs["cell_type"] = donors, ctypes
    b = ad.read_h5ad(path, backed="r")
    try:
        b.obs["donor"], b.obs["cell_type"] = donors, ctypes
        scores = _score(b, sigs, "module", inplace=True)
        ref = oi.tl.aggregate(mem, _score(mem, sigs, "module"), sample_key="donor",
                              groupby="cell_type", min_cells=5)

        def _no_x(self):
            raise AssertionError("aggregate read X")

        monkeypatch.setattr(ad.AnnData, "X", property(_no_x))
        monkeypatch.setattr(ad.AnnData, "to_memory", _no_x)
        for s in (scores, "module_scores"):
            got = oi.tl.aggregate(b, s, sample_key="donor", groupby="cell_type",
                                  min_cells=5)
            pd.testing.assert_frame_equal(ref.reset_index(drop=True),
                                          got.reset_index(drop=True))
        with pytest.raises(AssertionError, match="read X"):
            b.X  # noqa: B018 - the guard is live
    finally:
        monkeypatch.undo()
        b.file.close()


def test_dask_scheduler_synchronous_equals_threads(small):
    adata, _, sigs = small
    dsk = _dask_adata(adata, chunks=(90, N_VARS))
    with dask.config.set(scheduler="synchronous"):
        a = _score(dsk, sigs, "zmean")
    with dask.config.set(scheduler="threads"):
        b = _score(dsk, sigs, "zmean")
    _assert_identical(a, b)
    _assert_identical(_score(adata, sigs, "zmean"), a)


def test_unsupported_matrix_type_message():
    with pytest.raises(TypeError, match="backed AnnData"):
        MatrixSource([[1.0, 2.0]])
    with pytest.raises(TypeError, match="astype"):
        MatrixSource(np.array([["a", "b"]]))
    assert MatrixSource(sp.csr_matrix(np.eye(3))).kind == "sparse"


@pytest.mark.parametrize("reuse", [False, True])
def test_backed_chunks_prefetched_equal_in_memory_rows(small, reuse):
    """The prefetching reader (one chunk ahead, optionally into two reused buffers) yields
    exactly the in-memory rows, in order; closing it early neither hangs nor corrupts a
    later pass."""
    adata, path, _ = small
    ref = adata.X.tocsr()
    backed = ad.read_h5ad(path, backed="r")
    try:
        src = MatrixSource(backed.X)
        for _ in range(2):
            seen = 0
            for ch in src.iter_chunks(97, reuse_buffers=reuse):
                block = ref[ch.start:ch.stop]
                assert ch.start == seen
                assert np.array_equal(ch.indptr, block.indptr)
                assert np.array_equal(ch.indices, block.indices)
                assert np.array_equal(ch.data, block.data)
                seen = ch.stop
            assert seen == ref.shape[0]
        it = src.iter_chunks(50, reuse_buffers=reuse)
        first = next(it)
        assert first.start == 0
        it.close()  # the in-flight read finishes, the reader thread ends
    finally:
        backed.file.close()


class _CountingMatrix:
    """A CSR matrix that counts how often dask reads each row block from it."""

    def __init__(self, X):
        self.X, self.shape, self.dtype, self.ndim = X, X.shape, X.dtype, 2
        self.reads: dict[int, int] = {}

    def __getitem__(self, key):
        start, stop, _ = key[0].indices(self.shape[0])
        if stop > start:  # not dask's empty probe for the block type
            self.reads[start] = self.reads.get(start, 0) + 1
        return self.X[key]


@pytest.fixture(scope="module")
def filtered(tmp_path_factory):
    """Every gene expressed somewhere, five of them only in the last rows."""
    adata = make_synthetic(n_obs=N_OBS, n_vars=N_VARS, density=0.12, seed=5)
    X = adata.X.tolil()
    X[N_OBS - 3:, :5] = 1.25
    adata.X = X.tocsr()
    path = tmp_path_factory.mktemp("filtered") / "filtered.h5ad"
    adata.write_h5ad(path)
    rng = np.random.default_rng(11)
    sigs = {f"sig{i}": list(rng.choice(adata.var_names.to_numpy(), 15, replace=False))
            for i in range(4)}
    sigs["rare"] = [f"G{j}" for j in range(5)] + ["G10", "G11"]
    return adata, path, sigs


def test_aucell_one_pass_from_disk_and_dask(filtered):
    """AUCell reads the data once when every gene is expressed somewhere: same bits."""
    adata, path, sigs = filtered
    ref = _score(adata, sigs, "aucell")
    assert ref.attrs["params"]["passes_over_X"] == 2  # in memory: a cheap count pass first
    assert ref["rare"].gt(0).sum() >= 3  # the late genes do score
    backed = ad.read_h5ad(path, backed="r")
    try:
        got = _score(backed, sigs, "aucell")
    finally:
        backed.file.close()
    _assert_identical(ref, got)
    assert got.attrs["params"]["passes_over_X"] == 1
    counting = _CountingMatrix(adata.X)
    dsk = adata.copy()
    dsk.X = da.from_array(counting, chunks=(175, N_VARS), asarray=False)
    got = _score(dsk, sigs, "aucell")
    _assert_identical(ref, got)
    assert got.attrs["params"]["passes_over_X"] == 1
    # the scores and the gene counts came from one read of each block (plus the first
    # chunk, read once for the input checks)
    assert sorted(counting.reads) == [0, 175, 350, 525]
    assert counting.reads == {0: 2, 175: 1, 350: 1, 525: 1}


def test_dask_first_rows_checked_where_their_block_is(small, monkeypatch):
    """The input checks of a dask array (scale, expressed genes) run as a task on its
    first block, so the rows never come to the caller, unless that block is shorter than
    a chunk."""
    adata, _, sigs = small
    ref = _score(adata, sigs, "aucell")
    calls = []
    orig = MatrixSource.first_rows

    def spy(self, n):
        calls.append(self.kind)
        return orig(self, n)

    monkeypatch.setattr(MatrixSource, "first_rows", spy)
    dsk = adata.copy()
    dsk.X = da.from_array(adata.X, chunks=(175, N_VARS), asarray=False)
    _assert_identical(ref, _score(dsk, sigs, "aucell"))
    assert calls == []
    counts = dsk.copy()  # raw counts are refused all the same
    counts.X = da.from_array(sp.csr_matrix(np.round(adata.X.toarray() * 10) + 1),
                             chunks=(175, N_VARS), asarray=False)
    with pytest.raises(ValueError, match="raw counts"):
        _score(counts, sigs, "module")
    assert calls == []
    dsk.X = da.from_array(adata.X, chunks=(CHUNK // 2, N_VARS), asarray=False)
    _assert_identical(ref, _score(dsk, sigs, "aucell"))
    assert calls == ["dask"]


def test_one_pass_aucell_looks_for_late_genes_in_flagged_rows(filtered, tmp_path,
                                                              monkeypatch):
    """Past the first chunk, one-pass AUCell looks for the genes not seen yet only in the
    rows its kernel flags as storing one: genes with late values are marked (one pass,
    no chunk scanned whole), a gene stored late only as zeros is not (the guess fails:
    a second pass, same bits as in memory)."""
    from osteoimmune.scoring import _runner

    calls = {"whole": 0, "flagged": 0}
    orig_whole, orig_flagged = _runner.mark_expressed, _runner.mark_watched_rows

    def whole(*a):
        calls["whole"] += 1
        return orig_whole(*a)

    def flagged(*a):
        calls["flagged"] += 1
        return orig_flagged(*a)

    monkeypatch.setattr(_runner, "mark_expressed", whole)
    monkeypatch.setattr(_runner, "mark_watched_rows", flagged)
    adata, path, sigs = filtered
    zeroed = adata.copy()  # G0 stored in the last rows, but as zeros: never expressed
    zeroed.X = zeroed.X.copy()
    zeroed.X.data[zeroed.X.indices == 0] = 0.0  # stored entries kept
    assert (zeroed.X.indices == 0).sum() >= 3
    zpath = tmp_path / "zeroed.h5ad"
    zeroed.write_h5ad(zpath)
    for data, file, n_pass in ((adata, path, 1), (zeroed, zpath, 2)):
        ref = _score(data, sigs, "aucell")
        backed = ad.read_h5ad(file, backed="r")
        dsk = data.copy()
        dsk.X = da.from_array(data.X, chunks=(175, N_VARS), asarray=False)
        for target in (backed, dsk):
            calls.update(whole=0, flagged=0)
            got = _score(target, sigs, "aucell")
            _assert_identical(ref, got)
            assert got.attrs["params"]["passes_over_X"] == n_pass
            # the first chunk (the input checks' read) is marked whole, for the guess
            # and as the prior of every block; the one-pass chunks only through flags
            # (the second pass, prepared with the statistics the first one found,
            # marks nothing)
            assert calls["whole"] == 1
            # backed: every chunk; dask: every chunk of each of the 4 blocks
            if target is backed:
                assert calls["flagged"] == -(-N_OBS // CHUNK)
            else:
                assert calls["flagged"] >= 4
        backed.file.close()


def test_aucell_one_pass_falls_back_exactly(small, filtered):
    """A guess overturned at the end (genes never expressed) costs a pass, not accuracy."""
    adata, path, sigs = small
    ref = _score(adata, sigs, "aucell")
    backed = ad.read_h5ad(path, backed="r")
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            got = oi.tl.score(backed, sigs, method="aucell", progress=False,
                              chunk_size=CHUNK)
    finally:
        backed.file.close()
    _assert_identical(ref, got)
    assert got.attrs["params"]["passes_over_X"] == 2
    msgs = [str(w.message) for w in caught]
    # the one-pass try's warnings are dropped, the final preparation's kept: each once
    assert sum("zero in every observation" in m for m in msgs) == 0  # sigs avoid G0-G4
    assert sum("negative (down) part" in m for m in msgs) == 1
    # a whole data set in the first chunk is known exactly: no guess, no wasted pass
    fadata, fpath, fsigs = filtered
    backed = ad.read_h5ad(fpath, backed="r")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            got = oi.tl.score(backed, fsigs, method="aucell", progress=False,
                              chunk_size=N_OBS)
    finally:
        backed.file.close()
    assert got.attrs["params"]["passes_over_X"] == 1


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_aucell_one_pass_refuses_nan_past_the_first_chunk(filtered, tmp_path, dtype):
    """One-pass AUCell checks the values in the scoring pass (float32: the kernel counts
    NaN and infinity as it ranks; float64: the statistics do); a NaN it meets there
    (beyond the first chunk, which the input checks read) must still stop the call."""
    adata, _, sigs = filtered
    bad = adata.copy()
    X = bad.X.astype(dtype)
    row = 400
    X.data[X.indptr[row] + 2] = np.nan
    bad.X = X
    path = tmp_path / "nan.h5ad"
    bad.write_h5ad(path)
    backed = ad.read_h5ad(path, backed="r")
    try:
        with pytest.raises(ValueError, match="1 NaN or infinite"):
            _score(backed, sigs, "aucell")
    finally:
        backed.file.close()
    dsk = ad.AnnData(X=da.from_array(X, chunks=(175, N_VARS), asarray=False),
                     obs=bad.obs, var=bad.var)
    with pytest.raises(ValueError, match="1 NaN or infinite"):
        _score(dsk, sigs, "aucell")


def test_view_of_a_dask_anndata(small):
    """adata[mask] of a dask-backed AnnData holds anndata's DaskArrayView: scored as dask,
    the same bits as the in-memory subset."""
    adata, _, sigs = small
    keep = np.arange(N_OBS) % 3 != 0
    dsk = _dask_adata(adata, chunks=(175, N_VARS))[keep]
    assert type(dsk.X).__name__ == "DaskArrayView"
    for m in ("module", "aucell"):
        _assert_identical(_score(adata[keep].copy(), sigs, m), _score(dsk, sigs, m))


def _record_task_threads(monkeypatch) -> list:
    """Record, at every kernel call of the scoring runner, numba's thread count in the
    calling thread (and, for statistics, the level and the gene ranges the module
    statistics kernel is given)."""
    import numba

    from osteoimmune.scoring import _runner

    seen = []
    orig_update = _runner.StatsAccumulator.update
    orig_call = _runner.ChunkScorer.__call__
    orig_counted = _runner.ChunkScorer.counted
    orig_native = _runner.gene_native_sum_update
    given = threading.local()  # tasks of the threaded scheduler update concurrently

    def native(*a):
        given.ranges = a[-1]
        return orig_native(*a)

    def update(self, *a, **k):
        given.ranges = None
        out = orig_update(self, *a, **k)
        seen.append(("stats", numba.get_num_threads(), self.level, given.ranges))
        return out

    def call(self, ch):
        seen.append(("score", numba.get_num_threads(), None, None))
        return orig_call(self, ch)

    def counted(self, ch, expressed=None):
        seen.append(("score", numba.get_num_threads(), None, None))
        return orig_counted(self, ch, expressed)

    monkeypatch.setattr(_runner, "gene_native_sum_update", native)
    monkeypatch.setattr(_runner.StatsAccumulator, "update", update)
    monkeypatch.setattr(_runner.ChunkScorer, "__call__", call)
    monkeypatch.setattr(_runner.ChunkScorer, "counted", counted)
    return seen


def test_dask_tasks_run_kernels_on_one_thread_each(small, monkeypatch):
    """Dask runs one task per worker thread: under the threaded scheduler every task's
    kernels (statistics fold, one-pass counts, scoring) use one numba thread, and the
    module fold splits its genes in one range; the synchronous scheduler keeps numba's
    count; results are the same."""
    import numba

    n_default = numba.config.NUMBA_NUM_THREADS
    if n_default < 2:
        pytest.skip("numba has one thread here: nothing to limit")
    adata, _, sigs = small
    refs = {m: _score(adata, sigs, m) for m in ("module", "aucell")}
    dsk = _dask_adata(adata, chunks=(175, N_VARS))
    seen = _record_task_threads(monkeypatch)
    with dask.config.set(scheduler="threads"):
        for m, ref in refs.items():
            _assert_identical(ref, _score(dsk, sigs, m))
    assert {s[0] for s in seen} == {"stats", "score"}
    assert {s[1] for s in seen} == {1}
    assert {s[3] for s in seen if s[2] == "native"} == {1}
    assert numba.get_num_threads() == n_default  # the caller's count is left as it was
    seen.clear()
    with dask.config.set(scheduler="synchronous"):
        _assert_identical(refs["module"], _score(dsk, sigs, "module"))
    assert {s[1] for s in seen} == {n_default}


@pytest.mark.parametrize("omp", [None, "2"])
def test_dask_workers_follow_omp_num_threads(small, monkeypatch, omp):
    """On a distributed worker a task's kernels use OMP_NUM_THREADS threads, the
    variable distributed sets to 1 for its workers (1 when it is not set)."""
    distributed = pytest.importorskip("distributed")
    import numba

    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("numba has one thread here: nothing to limit")
    if omp is None:
        monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    else:
        monkeypatch.setenv("OMP_NUM_THREADS", omp)
    adata, _, sigs = small
    ref = _score(adata, sigs, "module")
    dsk = _dask_adata(adata, chunks=(175, N_VARS))
    seen = _record_task_threads(monkeypatch)
    with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=False,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster):
        _assert_identical(ref, _score(dsk, sigs, "module"))
    assert {s[1] for s in seen} == {1 if omp is None else 2}
