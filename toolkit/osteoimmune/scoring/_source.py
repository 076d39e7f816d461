"""Row-chunk access to every supported matrix kind.

A :class:`MatrixSource` hides where the expression matrix lives: scipy sparse (CSR/CSC)
or dense in memory, an h5py dataset or anndata sparse dataset of a backed ``.h5ad``, or a
dask array (for example from :func:`anndata.experimental.read_elem_lazy`). It yields CSR
chunks of consecutive rows with sorted indices, in row order, on the same grid
``[0, chunk_size), [chunk_size, 2 * chunk_size), ...`` whatever the storage, so every
method sees identical chunks from every source.

Reading is out-of-core for backed and dask matrices: a backed CSR matrix is read with one
contiguous slice of ``data`` and ``indices`` per chunk (``indptr`` is read once), a dask
array block by block (each block computed once per pass). Per chunk at most the chunk's
rows are held, plus, for dask, the one or two blocks that overlap the chunk.

Chunk arrays keep the stored dtypes where the kernels accept them (``float32``/``float64``
data, ``int32``/``int64`` indices): nothing is copied unless a conversion is needed.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numba as nb
import numpy as np
import scipy.sparse as sp

from .._utils import warn

__all__ = ["Chunk", "MatrixSource"]


@dataclass
class Chunk:
    """Consecutive rows ``start:stop`` as CSR arrays (indices sorted within rows)."""

    start: int
    stop: int
    indptr: np.ndarray
    indices: np.ndarray
    data: np.ndarray

    @property
    def n_rows(self) -> int:
        return self.stop - self.start


def _is_dask(X) -> bool:
    return type(X).__module__.startswith("dask") and hasattr(X, "chunks")


def _is_backed_sparse(X) -> bool:
    mod = type(X).__module__
    return mod.startswith("anndata") and hasattr(X, "format") and hasattr(X, "shape") \
        and not sp.issparse(X)


def _is_h5_dataset(X) -> bool:
    mod = type(X).__module__
    return (mod.startswith("h5py") or mod.startswith("zarr")) and hasattr(X, "shape")


@nb.njit(nogil=True, cache=True)
def _count_descents(a) -> int:
    """Number of positions p >= 1 with ``a[p] <= a[p - 1]`` (a vectorised loop)."""
    n = 0
    for p in range(1, a.shape[0]):
        n += a[p] <= a[p - 1]
    return n


@nb.njit(nogil=True, cache=True)
def _rows_sorted(indptr, indices) -> bool:
    """True when column indices increase strictly within every row.

    Counts descents over the flat ``indices`` and compares them with the descents that
    fall on row starts, which are allowed.
    """
    n_rows = indptr.shape[0] - 1
    lo = indptr[0]
    hi = indptr[n_rows]
    n_desc = _count_descents(indices[lo:hi])
    if n_desc == 0:
        return True
    n_allowed = 0
    for i in range(1, n_rows):
        p = indptr[i]
        if lo < p < hi and p < indptr[i + 1]:  # a non-empty row after a non-empty part
            n_allowed += indices[p] <= indices[p - 1]
    return n_desc == n_allowed


def _sorted_csr(indptr: np.ndarray, indices: np.ndarray, data: np.ndarray, n_cols: int):
    """Return CSR arrays with sorted (and de-duplicated) rows; copies only when unsorted."""
    if _rows_sorted(indptr, indices):
        return indptr, indices, data
    m = sp.csr_matrix((data.copy(), indices.copy(), indptr.copy()),
                      shape=(indptr.shape[0] - 1, n_cols))
    m.sum_duplicates()  # sorts indices in place on the copy
    return m.indptr, m.indices, m.data


def _norm_dtypes(indptr: np.ndarray, indices: np.ndarray, data: np.ndarray):
    """Cast to the dtypes the kernels take, copying only what is not already one of them."""
    if data.dtype not in (np.float32, np.float64):
        data = data.astype(np.float64)
    if indices.dtype not in (np.int32, np.int64):
        indices = indices.astype(np.int64)
    # indptr is small (rows + 1) and int64 keeps offsets of huge chunks exact
    indptr = indptr.astype(np.int64, copy=False)
    return indptr, indices, data


class MatrixSource:
    """Row-chunked view of an expression matrix.

    Parameters
    ----------
    X
        scipy sparse matrix/array, numpy array, h5py/zarr dataset, anndata backed sparse
        dataset or dask array (observations × genes).

    Raises
    ------
    TypeError
        For an unsupported container or a non-numeric dtype.
    ValueError
        For a matrix that is not two-dimensional.
    """

    def __init__(self, X) -> None:
        if isinstance(X, np.matrix):
            X = np.asarray(X)
        self._indptr_cache: np.ndarray | None = None
        self._cached_block: tuple[int, object] | None = None
        if sp.issparse(X):
            self.kind = "sparse"
        elif isinstance(X, np.ndarray):
            self.kind = "dense"
        elif _is_dask(X):
            self.kind = "dask"
        elif _is_backed_sparse(X):
            self.kind = "backed_sparse"
        elif _is_h5_dataset(X):
            self.kind = "backed_dense"
        else:
            raise TypeError(
                f"Unsupported expression matrix type {type(X).__name__}: use a scipy sparse "
                "matrix, a numpy array, a backed AnnData (read_h5ad(..., backed='r')) or a "
                "dask array."
            )
        if len(X.shape) != 2:
            raise ValueError(f"Expression matrix must be 2-D, got shape {tuple(X.shape)}.")
        self.X = X
        self.shape = tuple(int(s) for s in X.shape)
        self.dtype = np.dtype(X.dtype)
        if not (np.issubdtype(self.dtype, np.floating) or np.issubdtype(self.dtype, np.integer)
                or self.dtype == np.bool_):
            raise TypeError(f"Expression matrix has non-numeric dtype {self.dtype}; convert "
                            "it to float (e.g. X.astype(np.float32)).")
        if self.kind == "backed_sparse" and X.format != "csr":
            warn(f"The backed matrix is stored as {X.format.upper()}: every row chunk reads "
                 "across all of its columns, which is slow for large files. Re-write it as "
                 "CSR for out-of-core scoring (adata.X = adata.X.tocsr() before write_h5ad).")
        if self.kind == "dask" and len(self.X.chunks[1]) > 1:
            # one column block per row block: each block holds whole rows
            self.X = self.X.rechunk({1: -1})

    @property
    def is_backed(self) -> bool:
        return self.kind.startswith("backed")

    @property
    def is_lazy(self) -> bool:
        """True when X is not held in memory (backed file or dask array)."""
        return self.kind in ("dask", "backed_sparse", "backed_dense")

    # -- raw row access ------------------------------------------------------------
    def _backed_indptr(self) -> np.ndarray:
        if self._indptr_cache is None:
            self._indptr_cache = np.asarray(self.X.group["indptr"][...], dtype=np.int64)
        return self._indptr_cache

    def _backed_csr_arrays(self, start: int, stop: int, out=None):
        """One contiguous read of ``data``/``indices`` for rows ``start:stop``.

        With ``out = (indices_buffer, data_buffer)`` (h5py datasets only) the values are
        read straight into the front of the buffers, which are returned as views: no new
        allocation per chunk, so no page faults on freshly mapped memory.
        """
        group = self.X.group
        ip = self._backed_indptr()[start:stop + 1]
        lo, hi = int(ip[0]), int(ip[-1])
        d_ds, i_ds = group["data"], group["indices"]
        if out is not None and hi > lo:
            ibuf, dbuf = out
            indices, data = ibuf[:hi - lo], dbuf[:hi - lo]
            i_ds.read_direct(indices, np.s_[lo:hi], np.s_[0:hi - lo])
            d_ds.read_direct(data, np.s_[lo:hi], np.s_[0:hi - lo])
        else:
            data = np.asarray(d_ds[lo:hi])
            indices = np.asarray(i_ds[lo:hi])
        return ip - lo, indices, data

    def _read_buffers(self, chunk_size: int, start: int, stop: int):
        """Two (indices, data) buffer pairs for the largest chunk, or None.

        Only for a backed CSR matrix in h5py whose stored dtypes the kernels take as they
        are (so a chunk is a view of the buffer, not a converted copy).
        """
        if not (self.kind == "backed_sparse" and self.X.format == "csr"):
            return None
        group = self.X.group
        d_ds, i_ds = group["data"], group["indices"]
        if not (hasattr(d_ds, "read_direct") and hasattr(i_ds, "read_direct")):
            return None
        if d_ds.dtype not in (np.float32, np.float64) or i_ds.dtype not in (np.int32,
                                                                            np.int64):
            return None
        ip = self._backed_indptr()
        bounds = np.append(np.arange(start, stop, chunk_size), stop)
        max_nnz = int(np.max(np.diff(ip[bounds]), initial=0))
        return [(np.empty(max_nnz, dtype=i_ds.dtype), np.empty(max_nnz, dtype=d_ds.dtype))
                for _ in range(2)]

    def _dask_rows(self, start: int, stop: int):
        """Rows ``start:stop`` of a dask array, computing each overlapping block once."""
        bounds = self._block_bounds()
        first = int(np.searchsorted(bounds, start, side="right")) - 1
        parts = []
        b = first
        while b < len(bounds) - 1 and bounds[b] < stop:
            blk = self._dask_block(b)
            lo = max(start, bounds[b]) - bounds[b]
            hi = min(stop, bounds[b + 1]) - bounds[b]
            parts.append(blk[lo:hi])
            b += 1
        if len(parts) == 1:
            return parts[0]
        if any(sp.issparse(p) for p in parts):
            return sp.vstack([sp.csr_matrix(p) for p in parts], format="csr")
        return np.concatenate([np.asarray(p) for p in parts], axis=0)

    def _block_bounds(self) -> np.ndarray:
        if not hasattr(self, "_bounds"):
            self._bounds = np.concatenate([[0], np.cumsum(self.X.chunks[0])]).astype(np.int64)
        return self._bounds

    def _dask_block(self, b: int):
        cached = self._cached_block
        if cached is not None and cached[0] == b:
            return cached[1]
        blk = self.X.blocks[b, 0].compute()
        if sp.issparse(blk) and blk.format != "csr":
            blk = blk.tocsr()
        self._cached_block = (b, blk)
        return blk

    def _rows(self, start: int, stop: int):
        if self.kind == "dask":
            return self._dask_rows(start, stop)
        if self.kind == "backed_sparse" and self.X.format == "csr":
            return self._backed_csr_arrays(start, stop)
        if self.kind == "sparse" and self.X.format == "csr":
            # views into the in-memory CSR arrays: scipy's row slicing copies and is slow
            ip = np.asarray(self.X.indptr[start:stop + 1], dtype=np.int64)
            lo, hi = int(ip[0]), int(ip[-1])
            return ip - lo, self.X.indices[lo:hi], self.X.data[lo:hi]
        return self.X[start:stop]

    # -- conversion ----------------------------------------------------------------
    @staticmethod
    def to_csr_arrays(block, n_cols: int | None = None
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """CSR arrays (indptr, indices, data) with sorted indices; never mutates ``block``.

        Parameters
        ----------
        block
            A scipy sparse matrix/array, a dense array, or a tuple ``(indptr, indices,
            data)`` of CSR arrays.
        n_cols
            Number of columns (needed only for the tuple form when rows must be sorted).

        Returns
        -------
        tuple of numpy.ndarray
            ``indptr`` (int64), ``indices`` (int32 or int64, as stored) and ``data``
            (float32 or float64, as stored; other dtypes become float64).
        """
        if isinstance(block, tuple):
            indptr, indices, data = _norm_dtypes(*block)
            return _sorted_csr(indptr, indices, data, n_cols if n_cols is not None
                               else int(indices.max(initial=-1)) + 1)
        if sp.issparse(block):
            m = block.tocsr() if block.format != "csr" else block
            indptr, indices, data = _norm_dtypes(m.indptr, m.indices, m.data)
            return _sorted_csr(indptr, indices, data, m.shape[1])
        arr = np.asarray(block)
        if arr.ndim != 2:
            raise ValueError(f"Expected a 2-D block, got shape {arr.shape}.")
        m = sp.csr_matrix(arr)  # sorted by construction
        return _norm_dtypes(m.indptr, m.indices, m.data)

    def iter_chunks(self, chunk_size: int, start: int = 0, stop: int | None = None, *,
                    prefetch: bool | None = None, reuse_buffers: bool = False
                    ) -> Iterator[Chunk]:
        """Yield :class:`Chunk` objects of at most ``chunk_size`` rows, in row order.

        Chunk boundaries lie on the grid ``start + k * chunk_size`` whatever the storage.

        Parameters
        ----------
        chunk_size
            Rows per chunk.
        start, stop
            Row range (default: all rows).
        prefetch
            Read the next chunk in a background thread while the current one is being
            used (default: for backed and dask matrices). The kernels release the GIL,
            so reading and computing overlap.
        reuse_buffers
            For a backed CSR matrix: read every chunk into one of two preallocated
            buffers. A chunk's arrays are then valid only until the next chunk is
            requested (its buffer is refilled then), so use this only when each chunk is
            consumed before the next one is asked for.
        """
        if int(chunk_size) < 1:
            raise ValueError(f"chunk_size must be a positive integer, got {chunk_size}.")
        chunk_size = int(chunk_size)
        start = int(start)
        n = self.shape[0] if stop is None else min(int(stop), self.shape[0])
        starts = list(range(start, n, chunk_size))
        if prefetch is None:
            prefetch = self.is_lazy
        bufs = self._read_buffers(chunk_size, start, n) if reuse_buffers else None

        def read(k: int) -> Chunk:
            s = starts[k]
            e = min(n, s + chunk_size)
            if bufs is not None:
                rows = self._backed_csr_arrays(s, e, out=bufs[k % 2])
            else:
                rows = self._rows(s, e)
            indptr, indices, data = self.to_csr_arrays(rows, self.shape[1])
            return Chunk(s, e, indptr, indices, data)

        try:
            if not prefetch or len(starts) < 2:
                for k in range(len(starts)):
                    yield read(k)
                return
            from concurrent.futures import ThreadPoolExecutor

            # One reader thread, one chunk ahead. The read of chunk k + 1 is submitted
            # only once chunk k has been requested, i.e. once chunk k - 1 (which used the
            # same buffer) has been consumed.
            with ThreadPoolExecutor(max_workers=1,
                                    thread_name_prefix="osteoimmune-read") as pool:
                fut = pool.submit(read, 0)
                for k in range(len(starts)):
                    chunk = fut.result()
                    if k + 1 < len(starts):
                        fut = pool.submit(read, k + 1)
                    yield chunk
        finally:
            if self.kind == "dask":
                self._cached_block = None  # release the last block

    def first_rows(self, n: int):
        """The first ``n`` rows as CSR arrays (for input checks)."""
        out = self.to_csr_arrays(self._rows(0, min(n, self.shape[0])), self.shape[1])
        if self.kind == "dask":
            self._cached_block = None
        return out
