"""Property-based tests (hypothesis) of the scoring invariants of ``oi.tl.score``.

On random small matrices and random signatures, for every method:

- cell order: permuting the cells permutes the scores (nothing else changes);
- gene order: permuting the var columns leaves the scores unchanged (module with every bin
  gene as control, zmean, AUCell, UCell; scDRS and the sampled module score draw their
  control genes in var order, so they are seed-equivalent, not order-invariant);
- duplicated signatures: the same genes under two names give identical columns;
- chunk size: scores are bit-identical for any ``chunk_size``;
- storage: CSR, CSC and dense give bit-identical scores;
- dtype: float32 and float64 storage of the same values give scores equal to 1e-5 (rank
  methods: identical).

Matrices are tiny, so each example costs a few milliseconds; every property runs at least
100 examples (profile ``osteoimmune``: ``deadline=None``, no database, derandomised so CI
runs are reproducible). Set ``HYPOTHESIS_PROFILE=osteoimmune-long`` for a longer search.
"""

from __future__ import annotations

import os
import warnings

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import osteoimmune as oi

settings.register_profile("osteoimmune", max_examples=100, deadline=None, database=None,
                          derandomize=True, print_blob=True,
                          suppress_health_check=[HealthCheck.too_slow,
                                                 HealthCheck.data_too_large])
settings.register_profile("osteoimmune-long", max_examples=1000, deadline=None,
                          database=None,
                          suppress_health_check=[HealthCheck.too_slow,
                                                 HealthCheck.data_too_large])
PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "osteoimmune")
N_EXAMPLES = settings.get_profile(PROFILE).max_examples
assert N_EXAMPLES >= 100

# options that make each method well defined on 30-40 genes; module uses every gene of a
# bin as control (ctrl_size above the bin size), as a deterministic reference
OPTIONS = {
    "module": {"n_bins": 5, "ctrl_size": 1000},
    "zmean": {},
    "aucell": {"n_up": 8},
    "ucell": {"max_rank": 12},
    "scdrs": {"n_ctrl": 10, "n_mean_bin": 2, "n_var_bin": 2},
}
ORDER_METHODS = ["module", "zmean", "aucell", "ucell"]
ALL_METHODS = [*ORDER_METHODS, "scdrs"]
RANK_METHODS = {"aucell", "ucell"}


@st.composite
def problems(draw, methods=ALL_METHODS):
    """(dense float64 matrix of float32-representable values, signatures, method)."""
    n_obs = draw(st.integers(3, 20))
    n_vars = draw(st.integers(30, 40))
    density = draw(st.floats(0.3, 0.9))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    X = np.log1p(rng.gamma(2.0, 2.0, size=(n_obs, n_vars)))
    X[rng.random((n_obs, n_vars)) > density] = 0.0
    X[0, :10] = np.linspace(0.5, 3.0, 10)  # at least 10 expressed genes (AUCell n_up)
    X = X.astype(np.float32).astype(np.float64)  # same values in both dtypes
    genes = st.integers(0, n_vars - 1)
    sets = draw(st.lists(st.lists(genes, min_size=2, max_size=5, unique=True),
                         min_size=1, max_size=3))
    sigs = {f"sig{k}": [f"GENE{j}" for j in s] for k, s in enumerate(sets)}
    method = draw(st.sampled_from(methods))
    return X, sigs, method


def make(X: np.ndarray, fmt: str = "csr", dtype=np.float32, var_order=None,
         obs_order=None) -> ad.AnnData:
    n_obs, n_vars = X.shape
    obs_names = np.array([f"cell{i}" for i in range(n_obs)])
    var_names = np.array([f"GENE{j}" for j in range(n_vars)])
    if obs_order is not None:
        X, obs_names = X[obs_order], obs_names[obs_order]
    if var_order is not None:
        X, var_names = X[:, var_order], var_names[var_order]
    M = X.astype(dtype)
    if fmt == "csr":
        M = sp.csr_matrix(M)
    elif fmt == "csc":
        M = sp.csc_matrix(M)
    return ad.AnnData(M, obs=pd.DataFrame(index=obs_names), var=pd.DataFrame(index=var_names))


def run(adata: ad.AnnData, sigs: dict, method: str, **kw) -> pd.DataFrame:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return oi.tl.score(adata, sigs, method=method, progress=False, species="human",
                           **OPTIONS[method], **kw)


@settings(settings.get_profile(PROFILE))
@given(problem=problems(ORDER_METHODS), data=st.data())
def test_cell_order_gene_order_and_duplicated_signatures(problem, data):
    X, sigs, method = problem
    n_obs, n_vars = X.shape
    first = next(iter(sigs))
    with_dup = {**sigs, "copy_of_first": list(sigs[first])}
    ref = run(make(X), with_dup, method)
    # duplicated signatures: identical columns (same genes, same controls)
    np.testing.assert_array_equal(ref[first].to_numpy(), ref["copy_of_first"].to_numpy())
    ref = ref[list(sigs)]
    # cell order: permuting cells permutes the rows, values unchanged
    perm = np.asarray(data.draw(st.permutations(range(n_obs)), label="cell permutation"))
    got = run(make(X, obs_order=perm), sigs, method)
    assert list(got.index) == [f"cell{i}" for i in perm]
    pd.testing.assert_frame_equal(got.loc[ref.index], ref, check_exact=False, rtol=1e-9,
                                  atol=1e-12)
    # gene order: permuting var columns leaves every score unchanged
    gperm = np.asarray(data.draw(st.permutations(range(n_vars)), label="gene permutation"))
    got = run(make(X, var_order=gperm), sigs, method)
    pd.testing.assert_frame_equal(got, ref, check_exact=method in RANK_METHODS, rtol=1e-9,
                                  atol=1e-12)


@settings(settings.get_profile(PROFILE))
@given(problem=problems(ALL_METHODS), data=st.data())
def test_chunk_size_storage_format_and_dtype(problem, data):
    X, sigs, method = problem
    n_obs = X.shape[0]
    ref = run(make(X, "csr"), sigs, method)
    # chunk size: bit-identical
    chunk = data.draw(st.integers(1, n_obs), label="chunk_size")
    pd.testing.assert_frame_equal(run(make(X, "csr"), sigs, method, chunk_size=chunk), ref,
                                  check_exact=True)
    # storage: CSC and dense give the same bits as CSR
    fmt = data.draw(st.sampled_from(["csc", "dense"]), label="format")
    pd.testing.assert_frame_equal(run(make(X, fmt), sigs, method), ref, check_exact=True)
    # dtype: float64 storage of the same values agrees closely (rank methods exactly)
    got = run(make(X, "csr", dtype=np.float64), sigs, method)
    if method == "scdrs":  # p-values are ranks against controls: compare the scores
        cols = list(sigs)
        got, ref = got[cols], ref[cols]
    pd.testing.assert_frame_equal(got, ref, check_exact=method in RANK_METHODS, rtol=1e-5,
                                  atol=1e-5)


def test_profile_runs_at_least_100_examples():
    assert settings.get_profile(PROFILE).max_examples >= 100


@pytest.mark.parametrize("method", ALL_METHODS)
def test_strategy_is_valid_for_every_method(method):
    """A fixed example of the strategy scores without error for each method (so the
    properties above are not vacuously filtering)."""
    X = np.log1p(np.arange(3 * 30, dtype=np.float64).reshape(3, 30) % 7)
    X[0, :10] = np.linspace(0.5, 3.0, 10)
    res = run(make(X), {"a": ["GENE1", "GENE2", "GENE3"]}, method)
    assert res.shape[0] == 3 and np.isfinite(res["a"].to_numpy()).all()
