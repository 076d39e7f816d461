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


@nb.njit(cache=True)
def _rows_sorted(indptr, indices) -> bool:
    """True when column indices increase strictly within every row."""
    for i in range(indptr.shape[0] - 1):
        for p in range(indptr[i] + 1, indptr[i + 1]):
            if indices[p] <= indices[p - 1]:
                return False
    return True


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
    def _backed_csr_arrays(self, start: int, stop: int):
        """One contiguous read of ``data``/``indices`` for rows ``start:stop``."""
        group = self.X.group
        if self._indptr_cache is None:
            self._indptr_cache = np.asarray(group["indptr"][...], dtype=np.int64)
        ip = self._indptr_cache[start:stop + 1]
        lo, hi = int(ip[0]), int(ip[-1])
        data = np.asarray(group["data"][lo:hi])
        indices = np.asarray(group["indices"][lo:hi])
        return ip - lo, indices, data

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

    def iter_chunks(self, chunk_size: int, start: int = 0, stop: int | None = None
                    ) -> Iterator[Chunk]:
        """Yield :class:`Chunk` objects of at most ``chunk_size`` rows, in row order.

        Chunk boundaries lie on the grid ``start + k * chunk_size`` whatever the storage.
        """
        if int(chunk_size) < 1:
            raise ValueError(f"chunk_size must be a positive integer, got {chunk_size}.")
        chunk_size = int(chunk_size)
        n = self.shape[0] if stop is None else min(int(stop), self.shape[0])
        for s in range(int(start), n, chunk_size):
            e = min(n, s + chunk_size)
            indptr, indices, data = self.to_csr_arrays(self._rows(s, e), self.shape[1])
            yield Chunk(s, e, indptr, indices, data)
        if self.kind == "dask":
            self._cached_block = None  # release the last block

    def first_rows(self, n: int):
        """The first ``n`` rows as CSR arrays (for input checks)."""
        out = self.to_csr_arrays(self._rows(0, min(n, self.shape[0])), self.shape[1])
        if self.kind == "dask":
            self._cached_block = None
        return out
