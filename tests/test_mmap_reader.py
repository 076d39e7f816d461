"""Backed CSR files read through a memory map: the h5py numbers, bounded resident memory."""

from __future__ import annotations

import mmap
import sys
import warnings

import anndata as ad
import h5py
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from test_memory import _write_csr_h5ad

import osteoimmune as oi
from osteoimmune.scoring import _source
from osteoimmune.scoring._source import MatrixSource

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                reason="the memory-mapped reader is used on Linux only")

N_OBS, N_VARS = 3_000, 300


def _write_chunked(path, compression=None):
    """CSR .h5ad whose data and indices chunks interleave in the file (appended in
    blocks), so each dataset's storage breaks every few chunks."""
    rng = np.random.default_rng(4)
    var = pd.DataFrame(index=[f"G{j}" for j in range(N_VARS)])
    obs = pd.DataFrame(index=[f"c{i}" for i in range(N_OBS)])
    ad.AnnData(obs=obs, var=var).write_h5ad(path)
    X = sp.random(N_OBS, N_VARS, density=0.2, format="csr", random_state=rng,
                  data_rvs=lambda k: np.log1p(rng.gamma(2.0, 2.0, size=k))).astype(np.float32)
    with h5py.File(path, "a") as f:
        if "X" in f:
            del f["X"]
        g = f.create_group("X")
        g.attrs.update({"encoding-type": "csr_matrix", "encoding-version": "0.1.0",
                        "shape": X.shape})
        kw = {"compression": compression} if compression else {}
        d = g.create_dataset("data", (0,), dtype=np.float32, maxshape=(None,),
                             chunks=(1 << 10,), **kw)
        ix = g.create_dataset("indices", (0,), dtype=np.int32, maxshape=(None,),
                              chunks=(1 << 10,), **kw)
        for s in range(0, N_OBS, 50):
            lo, hi = X.indptr[s], X.indptr[min(N_OBS, s + 50)]
            d.resize((hi,))
            ix.resize((hi,))
            d[lo:hi] = X.data[lo:hi]
            ix[lo:hi] = X.indices[lo:hi]
        g.create_dataset("indptr", data=X.indptr.astype(np.int64))
    return X


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("mmap")
    X = _write_chunked(d / "chunked.h5ad")
    _write_chunked(d / "gzip.h5ad", compression="gzip")
    contiguous = ad.AnnData(X=X, obs=pd.DataFrame(index=[f"c{i}" for i in range(N_OBS)]),
                            var=pd.DataFrame(index=[f"G{j}" for j in range(N_VARS)]))
    contiguous.write_h5ad(d / "contiguous.h5ad")
    return X, d


def _root(a):
    while isinstance(a, np.ndarray) and a.base is not None:
        a = a.base
    return a.obj if isinstance(a, memoryview) else a


def _backed(d, name):
    return ad.read_h5ad(d / name, backed="r")


def test_maps_follow_the_file_layout(files):
    _, d = files
    for name, runs in [("contiguous.h5ad", 1), ("chunked.h5ad", None), ("gzip.h5ad", 0)]:
        b = _backed(d, name)
        try:
            maps = MatrixSource(b.X)._maps()
            if runs == 0:
                assert maps is None  # compressed: h5py reads and decompresses
                continue
            n_runs = [len(m.run_el) - 1 for m in maps]
            if runs == 1:
                assert n_runs == [1, 1]
            else:
                assert min(n_runs) >= 2  # interleaved appends break the storage
        finally:
            b.file.close()
    b = ad.read_h5ad(d / "contiguous.h5ad", backed="r+")
    try:
        assert MatrixSource(b.X)._maps() is None  # never map a file open for writing
    finally:
        b.file.close()


@pytest.mark.parametrize("name", ["contiguous.h5ad", "chunked.h5ad", "gzip.h5ad"])
@pytest.mark.parametrize("split", [False, True])
def test_mapped_chunks_equal_the_rows(files, name, split):
    """Every piece holds exactly the stored rows; pieces tile each grid chunk in order."""
    X, d = files
    chunk = 170
    b = _backed(d, name)
    try:
        src = MatrixSource(b.X)
        pieces = []
        mapped = []  # chunks of reused buffers are valid only until the next: not kept
        seen = 0
        for ch in src.iter_chunks(chunk, reuse_buffers=True, split=split):
            pieces.append((ch.start, ch.stop, ch.n_rows))
            if isinstance(_root(ch.data), mmap.mmap):
                mapped.append(ch)
            assert ch.start == seen
            assert ch.start // chunk == (ch.stop - 1) // chunk  # inside one grid chunk
            block = X[ch.start:ch.stop]
            assert np.array_equal(ch.indptr, block.indptr)
            assert np.array_equal(ch.indices, block.indices)
            assert np.array_equal(ch.data, block.data)
            seen = ch.stop
        assert seen == N_OBS
        n_grid = -(-N_OBS // chunk)
        if split and name == "chunked.h5ad":
            assert len(pieces) > n_grid  # split at the storage breaks
            assert any(p[2] == 1 for p in pieces)  # rows straddling a break, copied alone
        else:
            assert len(pieces) == n_grid
        if name == "gzip.h5ad":
            assert not mapped
        else:
            assert len(mapped) >= n_grid // 2
            if split or name == "contiguous.h5ad":
                assert len(mapped) >= n_grid
        # views of the map stay valid after their pages were released
        for ch in mapped:
            block = X[ch.start:ch.stop]
            assert np.array_equal(ch.data, block.data)
            assert np.array_equal(ch.indices, block.indices)
    finally:
        b.file.close()


@pytest.mark.parametrize("method", ["module", "aucell", "ucell", "zmean", "scdrs"])
def test_scores_through_the_map_are_the_h5py_scores(files, method, monkeypatch):
    X, d = files
    rng = np.random.default_rng(2)
    sigs = {f"s{i}": [f"G{j}" for j in rng.choice(N_VARS, 12, replace=False)]
            for i in range(3)}
    opts = {"n_ctrl": 30} if method == "scdrs" else {}

    def run():
        b = _backed(d, "chunked.h5ad")
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return oi.tl.score(b, sigs, method=method, chunk_size=170, progress=False,
                                   **opts)
        finally:
            b.file.close()

    mapped = run()
    monkeypatch.setattr(_source, "_map_backed_csr", lambda group: None)
    plain = run()
    assert np.array_equal(mapped.to_numpy().view(np.uint64), plain.to_numpy().view(np.uint64))


def _rss_file_kib() -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("RssFile:"):
                return int(line.split()[1])
    raise RuntimeError("no RssFile in /proc/self/status")


def test_mapped_pages_are_released(tmp_path, monkeypatch):
    """The map's resident pages stay at a few chunks; without the release they would
    grow to the whole file (positive control)."""
    path = tmp_path / "big.h5ad"
    _write_csr_h5ad(path, 30_000, 2_000, 0.1)  # ~48 MB of X
    chunk = 1_000  # ~1.6 MB per chunk

    def peak_growth_mib() -> float:
        b = ad.read_h5ad(path, backed="r")
        try:
            src = MatrixSource(b.X)
            assert src._maps() is not None
            base = _rss_file_kib()
            peak = 0
            total = 0.0
            for ch in src.iter_chunks(chunk, reuse_buffers=True, split=True):
                total += float(ch.data.sum())  # every page of the chunk is read
                peak = max(peak, _rss_file_kib() - base)
            assert total > 0
            return peak / 1024
        finally:
            b.file.close()

    assert peak_growth_mib() < 12
    monkeypatch.setattr(_source._MappedDataset, "release", lambda self, lo, hi: None)
    assert peak_growth_mib() > 30


def test_userblock_file_reads_true_values(files, tmp_path):
    """File offsets with a user block before the HDF5 data: whether the map is used or
    refused by the sample check, the chunks hold the stored rows."""
    X, _ = files
    path = tmp_path / "userblock.h5ad"
    with h5py.File(path, "w", userblock_size=4096) as f:
        ad.io.write_elem(f, "X", X)
        ad.io.write_elem(f, "obs", pd.DataFrame(index=[f"c{i}" for i in range(N_OBS)]))
        ad.io.write_elem(f, "var", pd.DataFrame(index=[f"G{j}" for j in range(N_VARS)]))
    b = ad.read_h5ad(path, backed="r")
    try:
        src = MatrixSource(b.X)
        for ch in src.iter_chunks(400, reuse_buffers=True, split=True):
            block = X[ch.start:ch.stop]
            assert np.array_equal(ch.indices, block.indices)
            assert np.array_equal(ch.data, block.data)
    finally:
        b.file.close()


def _write_unsorted(path, X):
    """A contiguous CSR .h5ad whose rows store their columns in descending order."""
    ip = X.indptr
    order = np.concatenate([np.arange(ip[i + 1] - 1, ip[i] - 1, -1)
                            for i in range(X.shape[0])]).astype(np.int64)
    with h5py.File(path, "w") as f:
        g = f.create_group("X")
        g.attrs.update({"encoding-type": "csr_matrix", "encoding-version": "0.1.0",
                        "shape": X.shape})
        g.create_dataset("data", data=X.data[order])
        g.create_dataset("indices", data=X.indices[order])
        g.create_dataset("indptr", data=ip.astype(np.int64))
        ad.io.write_elem(f, "obs", pd.DataFrame(index=[f"c{i}" for i in range(N_OBS)]))
        ad.io.write_elem(f, "var", pd.DataFrame(index=[f"G{j}" for j in range(N_VARS)]))


def _count_sorting(files, tmp_path, monkeypatch, stored):
    """(X, path of the file stored ``stored``, list that grows by one per call of the
    sorted-rows check)."""
    X, d = files
    path = d / "contiguous.h5ad"
    if stored == "unsorted":
        path = tmp_path / "unsorted.h5ad"
        _write_unsorted(path, X)
    calls = []
    real = _source._sorted_csr

    def counted(*args):
        calls.append(1)
        return real(*args)

    monkeypatch.setattr(_source, "_sorted_csr", counted)
    return X, path, calls


@pytest.mark.parametrize("stored", ["sorted", "unsorted"])
def test_sorted_columns_are_checked_once_per_source(files, tmp_path, monkeypatch, stored):
    """A second pass over a mapped file skips the check that rows are sorted (the module
    score reads the file twice); rows stored unsorted are sorted (copied) on every pass,
    never remembered as checked."""
    X, path, calls = _count_sorting(files, tmp_path, monkeypatch, stored)
    b = ad.read_h5ad(path, backed="r")
    try:
        src = MatrixSource(b.X)
        assert src._maps() is not None
        n_grid = -(-N_OBS // 400)
        for p in range(2):
            calls.clear()
            seen = 0
            for ch in src.iter_chunks(400, reuse_buffers=True, split=True):
                block = X[ch.start:ch.stop]
                assert np.array_equal(ch.indptr, block.indptr)
                assert np.array_equal(ch.indices, block.indices)
                assert np.array_equal(ch.data, block.data)
                assert isinstance(_root(ch.data), mmap.mmap) == (stored == "sorted")
                seen = ch.stop
            assert seen == N_OBS
            expected = n_grid if (p == 0 or stored == "unsorted") else 0
            assert len(calls) == expected, (p, len(calls))
    finally:
        b.file.close()


@pytest.mark.parametrize("stored", ["sorted", "unsorted"])
def test_first_rows_are_map_views_checked_once(files, tmp_path, monkeypatch, stored):
    """The first rows (read for the input checks) are views of the map when the rows
    are stored sorted, checked once: the stream's first chunk is then not checked again.
    Rows stored unsorted come back sorted (a copy), and the stream checks them again."""
    X, path, calls = _count_sorting(files, tmp_path, monkeypatch, stored)
    b = ad.read_h5ad(path, backed="r")
    try:
        src = MatrixSource(b.X)
        indptr, indices, data = src.first_rows(400)
        block = X[:400]
        assert np.array_equal(indptr, block.indptr)
        assert np.array_equal(indices, block.indices)
        assert np.array_equal(data, block.data)
        assert isinstance(_root(data), mmap.mmap) == (stored == "sorted")
        assert len(calls) == 1
        calls.clear()
        n_grid = -(-N_OBS // 400)
        for ch in src.iter_chunks(400, reuse_buffers=True, split=True):
            assert np.array_equal(ch.indices, X[ch.start:ch.stop].indices)
        assert len(calls) == (n_grid - 1 if stored == "sorted" else n_grid)
    finally:
        b.file.close()


def _vm_flags(a: np.ndarray) -> list[str]:
    """The ``VmFlags`` of the mapping holding ``a``'s middle byte (/proc/self/smaps;
    NumPy asks for huge pages from the first page boundary inside the array on)."""
    addr = a.__array_interface__["data"][0] + a.nbytes // 2
    inside = False
    with open("/proc/self/smaps") as f:
        for line in f:
            head = line.split()[0]
            if "-" in head and ":" not in head:
                lo, hi = (int(x, 16) for x in head.split("-"))
                inside = lo <= addr < hi
            elif inside and head == "VmFlags:":
                return line.split()[1:]
    raise AssertionError("no mapping holds the array")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux /proc/self/smaps")
def test_results_are_allocated_without_huge_pages():
    """The score table of a large stream is allocated without NumPy's huge-page request
    (a first write to huge pages can wait for memory compaction); small ones, and the
    contents, are plain arrays."""
    from osteoimmune.scoring._runner import SMALL_PAGES_MIN_BYTES, empty_small_pages

    shape = (SMALL_PAGES_MIN_BYTES // 8 // 20 + 1, 20)
    a = empty_small_pages(shape)
    assert a.shape == shape and a.dtype == np.float64
    assert a.flags.c_contiguous and a.flags.writeable
    a[:] = 1.5
    assert a.sum() == 1.5 * a.size
    assert "hg" not in _vm_flags(a)  # MADV_HUGEPAGE sets the "hg" flag
    small = empty_small_pages((10, 20))
    assert small.flags.owndata and small.shape == (10, 20)
    ref = np.empty(shape)
    ref[:] = 0
    if "hg" not in _vm_flags(ref):
        pytest.skip("this NumPy does not ask for huge pages: nothing to compare with")


def test_will_need_covers_the_range_in_steps(monkeypatch):
    """Readahead requests tile a range's pages, each at most ``WILL_NEED_STEP`` bytes
    (Linux caps one request), across a break between two runs of the storage."""
    calls = []

    class FakeMap(bytearray):
        def madvise(self, flag, start, length):
            calls.append((flag, start, length))

    page = _source._MappedDataset.PAGE
    mm = FakeMap(64 * page)
    # two runs: elements 0-999 at byte 100, elements 1000-1999 at byte 40 pages
    md = _source._MappedDataset(mm, np.float32, 2000, np.array([0, 1000, 2000]),
                                np.array([100, 40 * page]))
    monkeypatch.setattr(_source._MappedDataset, "WILL_NEED_STEP", 3 * page)
    md.will_need(10, 1990)
    assert all(flag == mmap.MADV_WILLNEED and start % page == 0 and length <= 3 * page
               for flag, start, length in calls)
    covered = set()
    for _, start, length in calls:
        covered.update(range(start, start + length))
    first = set(range(100 + 10 * 4 - (100 + 10 * 4) % page, 100 + 1000 * 4))
    second = set(range(40 * page, 40 * page + 990 * 4))
    assert first | second == covered
