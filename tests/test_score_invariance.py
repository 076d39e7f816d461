"""Invariances of oi.tl.score: cell order, signature grouping, chunking, storage, errors."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from conftest import make_synthetic

import osteoimmune as oi

METHODS = ["module", "aucell", "ucell", "zmean"]
SETS = {"a": [f"G{i}" for i in range(10, 40)], "b": ["G5", "G6", "G100", "G101"],
        "c": ["G200", "G201", "G202-", "G203-"]}


@pytest.fixture(scope="module")
def data():
    return make_synthetic(n_obs=500, n_vars=400, seed=3)


@pytest.mark.parametrize("method", METHODS)
def test_permuting_cells_permutes_scores(data, method):
    base = oi.tl.score(data, SETS, method=method, progress=False)
    perm = np.random.default_rng(0).permutation(data.n_obs)
    other = oi.tl.score(data[perm].copy(), SETS, method=method, progress=False)
    # the module score's bins and zmean's gene statistics are sums over cells: the order of
    # summation changes the last bits only
    np.testing.assert_allclose(other.to_numpy(), base.iloc[perm].to_numpy(), rtol=0,
                               atol=1e-9)
    assert list(other.index) == list(data.obs_names[perm])


@pytest.mark.parametrize("method", METHODS)
def test_together_equals_one_by_one(data, method):
    together = oi.tl.score(data, SETS, method=method, progress=False)
    for name, genes in SETS.items():
        alone = oi.tl.score(data, {name: genes}, method=method, progress=False)
        assert np.array_equal(alone[name].to_numpy(), together[name].to_numpy()), name


@pytest.mark.parametrize("method", METHODS)
def test_chunk_size_bit_identical(data, method):
    ref = oi.tl.score(data, SETS, method=method, progress=False, chunk_size=10_000)
    for cs in (1, 7, 64, 499):
        out = oi.tl.score(data, SETS, method=method, progress=False, chunk_size=cs)
        assert np.array_equal(ref.to_numpy(), out.to_numpy()), cs


@pytest.mark.parametrize("method", METHODS)
def test_dense_sparse_backed_identical(data, method, tmp_path):
    ref = oi.tl.score(data, SETS, method=method, progress=False)
    dense = data.copy()
    dense.X = data.X.toarray()
    assert np.array_equal(ref.to_numpy(),
                          oi.tl.score(dense, SETS, method=method, progress=False).to_numpy())
    for name, obj in (("sparse", data), ("dense", dense)):
        path = tmp_path / f"{name}.h5ad"
        obj.write_h5ad(path)
        backed = ad.read_h5ad(path, backed="r")
        try:
            out = oi.tl.score(backed, SETS, method=method, progress=False, chunk_size=128)
        finally:
            backed.file.close()
        assert np.array_equal(ref.to_numpy(), out.to_numpy()), name


@pytest.mark.parametrize("method", METHODS)
def test_deterministic_and_input_untouched(data, method):
    before = data.copy()
    a = oi.tl.score(data, SETS, method=method, progress=False, random_state=5)
    b = oi.tl.score(data, SETS, method=method, progress=False, random_state=5)
    assert np.array_equal(a.to_numpy(), b.to_numpy())
    assert (data.X != before.X).nnz == 0
    assert data.obs.equals(before.obs) and data.var.equals(before.var)
    assert "osteoimmune" not in data.uns and len(data.obsm) == 0


def test_float32_float64_close(data):
    d64 = data.copy()
    d64.X = data.X.astype(np.float64)
    for method in METHODS:
        a = oi.tl.score(data, SETS, method=method, progress=False)
        b = oi.tl.score(d64, SETS, method=method, progress=False)
        np.testing.assert_allclose(a.to_numpy(), b.to_numpy(), atol=1e-6)


def test_module_random_state_changes_controls(data):
    # bins hold ~16 genes here: draw fewer so that the seed matters
    a = oi.tl.score(data, SETS, method="module", progress=False, random_state=0, ctrl_size=5)
    b = oi.tl.score(data, SETS, method="module", progress=False, random_state=1, ctrl_size=5)
    assert not np.array_equal(a["a"].to_numpy(), b["a"].to_numpy())


def test_inplace_stores_scores_and_report(data):
    d = data.copy()
    out = oi.tl.score(d, SETS, method="ucell", inplace=True, progress=False)
    assert d.obsm["ucell_scores"].equals(out)
    rep = d.uns["osteoimmune"]["ucell_scores"]
    assert rep["params"]["method"] == "ucell"
    assert set(rep["coverage"]["signature"]) == set(SETS)
    oi.tl.score(d, SETS, method="module", inplace=True, key_added="mod", progress=False)
    assert "mod" in d.obsm


def test_planted_signal_recovered_by_every_method():
    d = make_synthetic(n_obs=400, n_vars=300, seed=9)
    X = d.X.toarray()
    planted = np.arange(200)
    genes = [f"G{i}" for i in range(50, 70)]
    X[np.ix_(planted, range(50, 70))] += 2.0
    d.X = sp.csr_matrix(X)
    for method in METHODS:
        s = oi.tl.score(d, {"p": genes}, method=method, progress=False)["p"]
        assert s.iloc[:200].mean() > s.iloc[200:].mean(), method
        auc = (s.iloc[:200].to_numpy()[:, None] > s.iloc[200:].to_numpy()[None]).mean()
        assert auc > 0.95, (method, auc)


def test_gene_matching_case_alias_and_ensembl():
    d = make_synthetic(n_obs=50, n_vars=30, seed=1)
    d.var_names = [f"GENE{i}" for i in range(29)] + ["CXCL8"]
    d.var["gene_ids"] = [f"ENSG{i:011d}" for i in range(30)]
    s = oi.tl.score(d, {"x": ["gene10", "Gene11", "GENE12"]}, method="ucell", progress=False)
    assert oi.tl.coverage(s).loc["x", "n_found"] == 3
    # Ensembl ids with version suffixes against Ensembl var names
    e = d.copy()
    e.var_names = list(d.var["gene_ids"])
    s2 = oi.tl.score(e, {"x": ["ENSG00000000010.4", "ENSG00000000011"]}, method="ucell",
                     progress=False)
    assert oi.tl.coverage(s2).loc["x", "n_found"] == 2
    # symbols from a var column when var_names are Ensembl ids
    e.var["symbol"] = list(d.var_names)
    s3 = oi.tl.score(e, {"x": ["GENE10", "GENE11"]}, method="ucell", gene_symbols="symbol",
                     progress=False)
    assert np.array_equal(s3["x"].to_numpy(), oi.tl.score(
        d, {"x": ["GENE10", "GENE11"]}, method="ucell", progress=False)["x"].to_numpy())


def test_errors_are_clear(data):
    with pytest.raises(ValueError, match="none of its 2 genes is in the data"):
        oi.tl.score(data, {"x": ["NOPE1", "NOPE2"]}, progress=False)
    with pytest.raises(ValueError, match="Unknown method"):
        oi.tl.score(data, SETS, method="gsva", progress=False)
    with pytest.raises(TypeError, match="Unknown option"):
        oi.tl.score(data, SETS, method="ucell", n_up=3, progress=False)
    counts = data.copy()
    counts.X = sp.csr_matrix(np.round(np.expm1(data.X.toarray()) * 3))
    with pytest.raises(ValueError, match="raw counts.*normalize_total"):
        oi.tl.score(counts, SETS, method="module", progress=False)
    # explicit opt-in works, rank methods accept counts (ranks are scale-free)
    oi.tl.score(counts, SETS, method="module", allow_counts=True, progress=False)
    oi.tl.score(counts, SETS, method="ucell", progress=False)
    nan = data.copy()
    nan.X = data.X.toarray()
    nan.X[3, 4] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        oi.tl.score(nan, SETS, method="module", progress=False)
    dup = data.copy()
    dup.var_names = ["G10"] + list(data.var_names[1:])
    with pytest.raises(ValueError, match="var_names_make_unique"):
        oi.tl.score(dup, SETS, method="module", progress=False)
    with pytest.warns(UserWarning, match="Low gene coverage"):
        oi.tl.score(data, {"x": ["G10", "N1", "N2", "N3"]}, method="ucell", progress=False)
    with pytest.raises(KeyError, match="Layer 'nope' not found"):
        oi.tl.score(data, SETS, layer="nope", progress=False)
    with pytest.raises(TypeError, match="AnnData"):
        oi.tl.score(pd.DataFrame(data.X.toarray()), SETS, progress=False)


def test_gmt_path_and_signature_inputs(data, tmp_path):
    lib = oi.signatures.SignatureLibrary(
        [oi.signatures.Signature.from_genes(n, g) for n, g in SETS.items()])
    path = lib.to_gmt(tmp_path / "sets.gmt")
    a = oi.tl.score(data, str(path), method="ucell", progress=False)
    b = oi.tl.score(data, lib, method="ucell", progress=False)
    c = oi.tl.score(data, SETS, method="ucell", progress=False)
    assert a.equals(b) and b.equals(c)
    d = oi.tl.score(data, lib["c"], method="ucell", progress=False)
    assert d["c"].equals(c["c"])


def test_result_round_trips_through_parquet(data, tmp_path):
    out = oi.tl.score(data, SETS, method="module", progress=False)
    out.to_parquet(tmp_path / "s.parquet")
    back = pd.read_parquet(tmp_path / "s.parquet")
    assert back.equals(out)
    assert oi.tl.coverage(back).equals(oi.tl.coverage(out))
    assert back.attrs["params"]["method"] == "module"


def test_empty_signature_raise_or_drop(data):
    sets = {"a": SETS["a"], "none": ["NOPE1", "NOPE2"]}
    with pytest.raises(ValueError, match="on_empty='drop'"):
        oi.tl.score(data, sets, method="ucell", progress=False)
    with pytest.warns(UserWarning, match="left out: none"):
        out = oi.tl.score(data, sets, method="ucell", progress=False, on_empty="drop")
    assert list(out.columns) == ["a"]
    lib = oi.signatures.SignatureLibrary(
        [oi.signatures.Signature.from_genes(n, g) for n, g in sets.items()])
    with pytest.warns(UserWarning, match="left out"):
        out2 = oi.tl.score(data, lib, method="ucell", progress=False)  # library: drop
    assert out2.equals(out)
    with pytest.raises(ValueError, match="None of the 1 signatures"):
        oi.tl.score(data, {"none": ["NOPE"]}, method="ucell", progress=False, on_empty="drop")
