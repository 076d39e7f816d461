"""Provenance helpers: checksums, package versions, content hashes of in-memory data."""

from __future__ import annotations

import hashlib
import os
import platform
import sys
from importlib import metadata

import numpy as np
import pandas as pd
import scipy.sparse as sp

__all__ = ["adata_sha256", "file_sha256", "package_versions"]

PACKAGES = ("osteoimmune", "anndata", "scanpy", "numpy", "scipy", "pandas", "statsmodels",
            "numba", "matplotlib", "seaborn", "pyarrow", "h5py", "pyyaml", "click", "tqdm",
            "pooch")


def file_sha256(path: str | os.PathLike) -> str:
    """sha256 hex digest of a file, streamed in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def adata_sha256(adata) -> str:
    """sha256 of an in-memory AnnData's content (X, obs, var names), for generated data.

    The digest covers the matrix values and structure (CSR, float64), the observation and
    variable names and every ``obs`` column, so two simulations with the same arguments and
    seed have the same digest and any change of a value changes it.
    """
    h = hashlib.sha256()
    X = adata.X
    if sp.issparse(X):
        X = sp.csr_matrix(X)
        X.sort_indices()
        h.update(b"csr")
        h.update(np.asarray(X.shape, dtype=np.int64).tobytes())
        h.update(np.asarray(X.indptr, dtype=np.int64).tobytes())
        h.update(np.asarray(X.indices, dtype=np.int64).tobytes())
        h.update(np.asarray(X.data, dtype=np.float64).tobytes())
    else:
        arr = np.ascontiguousarray(np.asarray(X, dtype=np.float64))
        h.update(b"dense")
        h.update(np.asarray(arr.shape, dtype=np.int64).tobytes())
        h.update(arr.tobytes())
    h.update("\n".join(map(str, adata.obs_names)).encode())
    h.update("\n".join(map(str, adata.var_names)).encode())
    obs = adata.obs.copy()
    for c in obs.columns:
        obs[c] = obs[c].astype(str)
    h.update(pd.util.hash_pandas_object(obs, index=True).to_numpy().tobytes())
    return h.hexdigest()


def package_versions() -> dict[str, str]:
    """Installed versions of osteoimmune and its main dependencies, plus Python."""
    out = {"python": sys.version.split()[0], "platform": platform.platform()}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out
