"""Row-chunk access to every supported matrix kind.

A :class:`MatrixSource` hides where the expression matrix lives: scipy sparse (CSR/CSC)
or dense in memory, an h5py dataset or anndata sparse dataset of a backed ``.h5ad``, or a
dask array. It yields CSR chunks of consecutive rows with sorted indices, in row order.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

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
    return type(X).__module__.startswith("h5py") and hasattr(X, "shape")


class MatrixSource:
    """Row-chunked view of an expression matrix.

    Parameters
    ----------
    X
        scipy sparse matrix/array, numpy array, h5py dataset, anndata backed sparse dataset
        or dask array (observations × genes).
    """

    def __init__(self, X) -> None:
        if isinstance(X, np.matrix):
            X = np.asarray(X)
        if sp.issparse(X):
            self.kind = "sparse"
        elif isinstance(X, np.ndarray):
            if X.ndim != 2:
                raise ValueError(f"Expression matrix must be 2-D, got shape {X.shape}.")
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
        self.X = X
        self.shape = tuple(int(s) for s in X.shape)
        self.dtype = np.dtype(X.dtype)
        if not (np.issubdtype(self.dtype, np.floating) or np.issubdtype(self.dtype, np.integer)
                or self.dtype == np.bool_):
            raise TypeError(f"Expression matrix has non-numeric dtype {self.dtype}.")

    @property
    def is_backed(self) -> bool:
        return self.kind.startswith("backed")

    def _rows(self, start: int, stop: int):
        X = self.X
        if self.kind == "sparse":
            block = X[start:stop]
        elif self.kind == "dense":
            block = X[start:stop]
        elif self.kind == "dask":
            block = X[start:stop].compute()
        elif self.kind == "backed_sparse":
            block = X[start:stop]
        else:  # backed dense h5py
            block = X[start:stop]
        return block

    @staticmethod
    def to_csr_arrays(block) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """CSR arrays (indptr, indices, data) with sorted indices; never mutates ``block``."""
        if sp.issparse(block):
            m = block.tocsr() if block.format != "csr" else block
            if not m.has_sorted_indices:
                m = m.copy()
                m.sort_indices()
            data = m.data
        else:
            arr = np.asarray(block)
            m = sp.csr_matrix(arr)
            data = m.data
        if data.dtype not in (np.float32, np.float64):
            data = data.astype(np.float64)
        return (m.indptr.astype(np.int64, copy=False), m.indices.astype(np.int64, copy=False),
                data)

    def iter_chunks(self, chunk_size: int) -> Iterator[Chunk]:
        """Yield :class:`Chunk` objects of at most ``chunk_size`` rows, in row order."""
        if chunk_size < 1:
            raise ValueError(f"chunk_size must be a positive integer, got {chunk_size}.")
        n = self.shape[0]
        for start in range(0, n, chunk_size):
            stop = min(n, start + chunk_size)
            indptr, indices, data = self.to_csr_arrays(self._rows(start, stop))
            yield Chunk(start, stop, indptr, indices, data)

    def first_rows(self, n: int):
        """The first ``n`` rows as CSR arrays (for input checks)."""
        return self.to_csr_arrays(self._rows(0, min(n, self.shape[0])))
