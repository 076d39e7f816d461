"""An ``.h5ad`` file as AnnData whose ``X`` is a dask array of row blocks.

anndata's lazy reader (:func:`anndata.experimental.read_elem_lazy`) reads every block with
h5py and then copies it. :func:`read_h5ad_dask` reads an uncompressed CSR ``X`` (on Linux)
through memory maps of just the block's bytes instead: the block's ``data`` and
``indices`` are views of the page cache (copied once only where the file's storage
breaks inside the block), and a map is closed once the last view of the block is gone,
so a worker holds only the blocks it is using. Anything else (compressed storage, other
platforms, dense ``X``) is read with h5py. The values are the stored values either way.
"""

from __future__ import annotations

import mmap
import os
import threading
from functools import partial
from pathlib import Path

import anndata as ad
import h5py
import numpy as np
import scipy.sparse as sp

__all__ = ["read_h5ad_dask"]


class _OpenFile:
    """One process's handle on an ``.h5ad`` matrix: the h5py file, the row pointers and
    the layout of ``data``/``indices`` in the file (when they can be mapped)."""

    def __init__(self, path: str, key: str) -> None:
        from ..scoring._source import _map_backed_csr

        self.file = h5py.File(path, "r")
        self.lock = threading.Lock()  # h5py reads from several threads of one worker
        elem = self.file[key]
        self.sparse = isinstance(elem, h5py.Group)
        self.elem = elem
        self.indptr = None
        self.maps = None
        self.fd = None
        if self.sparse:
            self.indptr = np.asarray(elem["indptr"][...], dtype=np.int64)
            if (elem["data"].dtype in (np.float32, np.float64)
                    and elem["indices"].dtype in (np.int32, np.int64)):
                self.maps = _map_backed_csr(elem)
            if self.maps is not None:
                self.fd = self.file.id.get_vfd_handle()


_HANDLES: dict[tuple, _OpenFile] = {}
_HANDLES_LOCK = threading.Lock()
#: handles kept per process; the oldest is dropped beyond this (its file closes once no
#: task uses it any more)
_MAX_HANDLES = 8


def _handle(path: str, key: str, stamp: tuple[int, int]) -> _OpenFile:
    """The process's cached handle (one per file, key and modification stamp)."""
    k = (path, key, stamp)
    with _HANDLES_LOCK:
        h = _HANDLES.get(k)
        if h is None:
            while len(_HANDLES) >= _MAX_HANDLES:
                _HANDLES.pop(next(iter(_HANDLES)))
            h = _HANDLES[k] = _OpenFile(path, key)
        return h


def _stamp(path: str) -> tuple[int, int]:
    st = os.stat(path)
    return (st.st_mtime_ns, st.st_size)


def _populate(mm: mmap.mmap) -> None:
    """Map a block's pages in now (reading them from disk if needed, with the kernel's
    sequential read-ahead), so the block's consumer, often the sequential statistics
    fold, does not stop on page faults: the loading task, which runs ahead in parallel,
    pays instead. One byte per page is read (``madvise(MADV_POPULATE_READ)`` was slower
    from disk: 38 s against 29 s for a module score at 1M cells)."""
    from ..scoring._source import _touch_pages

    if hasattr(mmap, "MADV_SEQUENTIAL"):
        mm.madvise(mmap.MADV_SEQUENTIAL)
    _touch_pages(np.frombuffer(mm, dtype=np.uint8), mmap.PAGESIZE)


def _mapped_values(fd: int, mds, lo: int, hi: int) -> np.ndarray:
    """Elements ``lo:hi`` of a mapped dataset, from maps of just their bytes.

    Inside one stretch of the file (a run of chunks stored back to back) the result is
    a view of the map, closed when the last view is gone; across a break in the storage
    the pieces are joined into a new array (one copy, no more).
    """
    pieces = []
    while lo < hi:
        e = mds.run_break(lo, hi)
        b0, b1 = mds._bytes(lo, e)
        start = b0 - b0 % mmap.ALLOCATIONGRANULARITY
        mm = mmap.mmap(fd, b1 - start, offset=start, access=mmap.ACCESS_COPY)
        _populate(mm)
        # read as same-size opaque items first: the array's base then has as many
        # items as the view, so scipy keeps the view (it copies a view of a much larger
        # base, and cannot size a bare mmap base)
        raw = np.frombuffer(mm, dtype=np.dtype((np.void, mds.dtype.itemsize)),
                            count=e - lo, offset=b0 - start)
        pieces.append(raw.view(mds.dtype))
        lo = e
    if len(pieces) == 1:
        return pieces[0]
    return np.concatenate(pieces) if pieces else np.zeros(0, dtype=mds.dtype)


def _read_block(path: str, key: str, stamp: tuple[int, int], n_cols: int,
                block_info=None):
    """Rows of one block (dask task): a CSR matrix, or an array for a dense ``X``."""
    (s, e), _ = block_info[None]["array-location"]
    h = _handle(path, key, stamp)
    if not h.sparse:
        with h.lock:
            return np.asarray(h.elem[s:e])
    ip = h.indptr[s:e + 1]
    lo, hi = int(ip[0]), int(ip[-1])
    if h.maps is not None and hi > lo:
        idx, dat = h.maps
        indices = _mapped_values(h.fd, idx, lo, hi)
        data = _mapped_values(h.fd, dat, lo, hi)
    else:
        with h.lock:
            indices = np.asarray(h.elem["indices"][lo:hi])
            data = np.asarray(h.elem["data"][lo:hi])
    return sp.csr_matrix((data, indices, ip - lo), shape=(e - s, n_cols))


def read_h5ad_dask(path: str | os.PathLike, chunk_size: int = 10_000) -> ad.AnnData:
    """Read an ``.h5ad`` file with ``X`` as a dask array of row blocks.

    ``obs`` and ``var`` are read into memory; ``X`` stays on disk and each block of
    ``chunk_size`` rows is read when a task needs it, in whatever process runs the task
    (a :class:`dask.distributed.Client`'s workers open the file themselves). For an
    uncompressed CSR ``X`` on Linux, a block's values are views of the operating
    system's page cache (no copy), released when the block is; otherwise blocks are
    read with h5py. The result scores with :func:`osteoimmune.tl.score` (dask path)
    exactly as the same file read in memory, backed, or with
    :func:`anndata.experimental.read_elem_lazy`.

    Parameters
    ----------
    path : str or os.PathLike
        An ``.h5ad`` file whose ``X`` is CSR (``csr_matrix`` encoding) or dense. CSC
        cannot be cut into row blocks without reading it all.
    chunk_size : int, default 10000
        Rows per dask block.

    Returns
    -------
    anndata.AnnData
        ``X`` a :class:`dask.array.Array` (blocks: :class:`scipy.sparse.csr_matrix`, or
        :class:`numpy.ndarray` for a dense file); ``obs`` and ``var`` in memory. Other
        elements (layers, obsm, uns) are not read: use :func:`anndata.read_h5ad` for
        them.

    Raises
    ------
    FileNotFoundError
        ``path`` does not exist.
    ValueError
        ``chunk_size`` is not positive, or ``X`` is CSC or missing.

    Examples
    --------
    >>> adata = oi.datasets.read_h5ad_dask("atlas.h5ad", chunk_size=20_000)  # doctest: +SKIP
    >>> scores = oi.tl.score(adata, lib, method="module")  # doctest: +SKIP
    """
    import dask.array as da
    from dask.base import tokenize

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No such .h5ad file: {path}")
    if int(chunk_size) < 1:
        raise ValueError(f"chunk_size must be a positive integer, got {chunk_size}.")
    chunk_size = int(chunk_size)
    spath = str(path.resolve())
    stamp = _stamp(spath)
    with h5py.File(spath, "r") as f:
        if "X" not in f:
            raise ValueError(f"{path} has no X.")
        elem = f["X"]
        obs = ad.io.read_elem(f["obs"])
        var = ad.io.read_elem(f["var"])
        if isinstance(elem, h5py.Group):
            enc = elem.attrs.get("encoding-type", "")
            if enc != "csr_matrix":
                raise ValueError(
                    f"X of {path} is stored as {enc or 'an unknown group'}; read_h5ad_dask "
                    "cuts row blocks from CSR (or dense) X only. Convert it once "
                    "(adata.X = adata.X.tocsr(); adata.write_h5ad(...)) or read it with "
                    "anndata.read_h5ad(path, backed='r').")
            shape = tuple(int(v) for v in elem.attrs["shape"])
            dtype = elem["data"].dtype
            meta = sp.csr_matrix((0, 0), dtype=dtype)
        else:
            shape = tuple(int(v) for v in elem.shape)
            dtype = elem.dtype
            meta = np.empty((0, 0), dtype=dtype)
    n_obs, n_vars = shape
    rows = tuple([chunk_size] * (n_obs // chunk_size)
                 + ([n_obs % chunk_size] if n_obs % chunk_size else [])) or (0,)
    name = "osteoimmune-h5ad-X-" + tokenize(spath, stamp, chunk_size)
    X = da.map_blocks(partial(_read_block, spath, "X", stamp, n_vars), dtype=dtype,
                      chunks=(rows, (n_vars,)), meta=meta, name=name)
    return ad.AnnData(X=X, obs=obs, var=var)
