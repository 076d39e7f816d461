"""Shared fixtures. Real data come from OSTEOIMMUNE_DATA_DIR (default ../shared/data)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("OSTEOIMMUNE_DATA_DIR", str((ROOT.parent / "shared" / "data").resolve()))
os.environ.setdefault("MPLBACKEND", "Agg")
SHARED_DATA = Path(os.environ["OSTEOIMMUNE_DATA_DIR"])
SHARED_REFERENCE = SHARED_DATA.parent / "reference"


def require_file(path: Path) -> Path:
    """Skip the calling test with a clear reason when a real data file is absent."""
    if not Path(path).exists():
        pytest.skip(f"real data file not found: {path} (set OSTEOIMMUNE_DATA_DIR to the folder "
                    "holding the shared data)")
    return Path(path)


@pytest.fixture(scope="session")
def pbmc68k():
    import scanpy as sc

    return sc.datasets.pbmc68k_reduced()


def make_synthetic(n_obs=300, n_vars=400, density=0.15, seed=0, dtype=np.float32):
    """Log-normalised-looking sparse data with some genes never expressed."""
    import anndata as ad
    import pandas as pd

    rng = np.random.default_rng(seed)
    X = sp.random(n_obs, n_vars, density=density, format="csr", random_state=rng,
                  data_rvs=lambda k: np.log1p(rng.gamma(2.0, 2.0, size=k)))
    keep = np.ones(n_vars)
    keep[:5] = 0  # five genes never expressed
    X = (X @ sp.diags(keep)).tocsr().astype(dtype)
    X.eliminate_zeros()
    obs = pd.DataFrame(index=[f"cell{i}" for i in range(n_obs)])
    var = pd.DataFrame(index=[f"G{j}" for j in range(n_vars)])
    return ad.AnnData(X=X, obs=obs, var=var)


@pytest.fixture
def synthetic():
    return make_synthetic()
