"""oi.pp.collapse_ids (ids -> symbols with a stated rule) and oi.pp.normalize_bulk."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

import osteoimmune as oi


@pytest.fixture
def probes():
    X = np.array([[1.0, 5.0, 2.0, 9.0, 4.0],
                  [3.0, 5.0, 2.0, 9.0, 6.0],
                  [2.0, 8.0, 2.0, 9.0, 8.0]])
    var = pd.DataFrame(index=["p1", "p2", "p3", "p4", "p5"])
    obs = pd.DataFrame({"time": [0, 24, 48]}, index=["s1", "s2", "s3"])
    adata = ad.AnnData(X=X, obs=obs, var=var)
    adata.layers["raw"] = X * 10
    mapping = {"p1": "GENEA", "p2": "GENEA", "p3": "GENEB", "p4": "GENEC///GENED", "p5": "GENEA"}
    return adata, mapping


def test_max_mean_keeps_the_highest_mean_probe(probes):
    adata, mapping = probes
    before = adata.X.copy()
    with pytest.warns(UserWarning, match="1 of 5 ids have no single gene symbol"):
        out = oi.pp.collapse_ids(adata, mapping, rule="max_mean")
    assert np.array_equal(adata.X, before) and list(adata.var_names) == ["p1", "p2", "p3", "p4",
                                                                          "p5"]
    assert list(out.var_names) == ["GENEA", "GENEB"]
    # GENEA: means p1 = 2, p2 = 6, p5 = 6 -> tie between p2 and p5, the first (p2) wins
    assert out.var.loc["GENEA", "selected_id"] == "p2"
    assert out.var.loc["GENEA", "n_ids"] == 3 and out.var.loc["GENEA", "ids"] == "p1;p2;p5"
    np.testing.assert_array_equal(out[:, "GENEA"].X.ravel(), [5, 5, 8])
    np.testing.assert_array_equal(out[:, "GENEA"].layers["raw"].ravel(), [50, 50, 80])
    assert out.obs.equals(adata.obs)
    assert out.uns["osteoimmune"]["id_mapping"]["rule"] == "max_mean"


def test_mean_and_sum_rules(probes):
    adata, mapping = probes
    with pytest.warns(UserWarning):
        mean = oi.pp.collapse_ids(adata, mapping, rule="mean")
        total = oi.pp.collapse_ids(adata, mapping, rule="sum")
    np.testing.assert_allclose(mean[:, "GENEA"].X.ravel(), [(1 + 5 + 4) / 3, (3 + 5 + 6) / 3,
                                                            (2 + 8 + 8) / 3])
    np.testing.assert_allclose(total[:, "GENEA"].X.ravel(), [10, 14, 18])
    np.testing.assert_allclose(total[:, "GENEB"].X.ravel(), [2, 2, 2])


def test_sparse_input_and_keep_unmapped(probes):
    adata, mapping = probes
    adata = adata.copy()
    adata.X = sp.csr_matrix(adata.X)
    out = oi.pp.collapse_ids(adata, mapping, rule="sum", unmapped="keep")
    assert sp.issparse(out.X)
    assert "p4" in out.var_names  # kept under its own id
    np.testing.assert_allclose(out[:, "GENEA"].X.toarray().ravel(), [10, 14, 18])


def test_shipped_entrez_tables():
    mouse = oi.pp.id_table("entrez_mouse")
    human = oi.pp.id_table("entrez_human")
    assert mouse["16176"] == "Il1b" and mouse["15945"] == "Cxcl10"
    assert human["3553"] == "IL1B" and human["7124"] == "TNF"
    adata = ad.AnnData(X=np.ones((2, 3)), var=pd.DataFrame(index=["16176", "15945", "999999999"]))
    with pytest.warns(UserWarning, match="1 of 3 ids"):
        out = oi.pp.collapse_ids(adata, "entrez_mouse", rule="sum")
    assert list(out.var_names) == ["Il1b", "Cxcl10"]


def test_collapse_errors_name_the_fix(probes):
    adata, _ = probes
    with pytest.raises(ValueError, match="choose one of"):
        oi.pp.collapse_ids(adata, {"p1": "A"}, rule="median")
    with pytest.raises(ValueError, match="No id could be mapped"):
        oi.pp.collapse_ids(adata, {"x": "A"})
    with pytest.raises(ValueError, match="exactly two columns"):
        oi.pp.collapse_ids(adata, pd.DataFrame({"a": [1], "b": [2], "c": [3]}))


# ------------------------------------------------------------------ normalize_bulk
@pytest.fixture
def counts():
    X = np.array([[10, 0, 90], [5, 5, 0], [0, 1, 3]], dtype=np.float64)
    return ad.AnnData(X=X, obs=pd.DataFrame(index=["a", "b", "c"]),
                      var=pd.DataFrame(index=["g1", "g2", "g3"]))


def test_cpm_log1p_by_hand(counts):
    before = counts.X.copy()
    out = oi.pp.normalize_bulk(counts)
    assert np.array_equal(counts.X, before) and "counts" not in counts.layers  # not in place
    # sample a: library 100 -> CPM 1e5, 0, 9e5
    np.testing.assert_allclose(out.X[0], [np.log(1 + 1e5), 0.0, np.log(1 + 9e5)])
    # sample c: library 4 -> CPM 0, 2.5e5, 7.5e5
    np.testing.assert_allclose(out.X[2], [0.0, np.log(1 + 2.5e5), np.log(1 + 7.5e5)])
    np.testing.assert_array_equal(out.layers["counts"], before)
    np.testing.assert_array_equal(out.obs["library_size"], [100, 10, 4])
    assert out.uns["osteoimmune"]["normalization"]["method"] == "cpm_log1p"
    assert out.uns["osteoimmune"]["data_type"] == "rnaseq"


def test_log2cpm_and_edger_logcpm_by_hand(counts):
    out = oi.pp.normalize_bulk(counts, method="log2cpm")
    np.testing.assert_allclose(out.X[1], np.log2(1 + np.array([5e5, 5e5, 0.0])))
    ed = oi.pp.normalize_bulk(counts, method="logcpm_edger", prior_count=2)
    lib = np.array([100.0, 10.0, 4.0])
    prior = 2 * lib / lib.mean()  # edgeR: prior scaled by library size / mean library size
    expected = np.log2((counts.X + prior[:, None]) / (lib + 2 * prior)[:, None] * 1e6)
    np.testing.assert_allclose(ed.X, expected)
    # known value: sample b, gene g3 (count 0): prior = 2*10/38
    p = 20 / 38
    assert ed.X[1, 2] == pytest.approx(np.log2(p / (10 + 2 * p) * 1e6))


def test_normalize_inplace_and_layer(counts):
    c = counts.copy()
    c.layers["counts"] = c.X.copy()
    c.X = np.log1p(c.X)  # not counts any more
    with pytest.raises(ValueError, match="non-integer values.*layer='counts'"):
        oi.pp.normalize_bulk(c)
    res = oi.pp.normalize_bulk(c, layer="counts", inplace=True)
    assert res is None
    np.testing.assert_allclose(c.X[0, 0], np.log1p(1e5))


def test_normalize_refuses_bad_counts(counts):
    neg = counts.copy()
    neg.X[0, 0] = -1
    with pytest.raises(ValueError, match="negative"):
        oi.pp.normalize_bulk(neg)
    empty = counts.copy()
    empty.X[2] = 0
    with pytest.raises(ValueError, match="no counts at all.*'c'"):
        oi.pp.normalize_bulk(empty)
    frac = counts.copy()
    frac.X = frac.X + 0.5
    out = oi.pp.normalize_bulk(frac, allow_non_integer=True)
    assert np.isfinite(out.X).all()


def test_normalised_bulk_is_scale_invariant(counts):
    """CPM removes library size: doubling every count of a sample changes nothing."""
    doubled = counts.copy()
    doubled.X = doubled.X * np.array([[2.0], [1.0], [3.0]])
    a = oi.pp.normalize_bulk(counts).X
    b = oi.pp.normalize_bulk(doubled).X
    np.testing.assert_allclose(a, b)
