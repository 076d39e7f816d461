"""scDRS scoring (method="scdrs"): parity with the scdrs package, calibration, invariances."""

from __future__ import annotations

import warnings

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from conftest import make_synthetic
from scipy import stats

import osteoimmune as oi
from osteoimmune.scoring import METHODS, MatrixSource, ScoreContext, compute_gene_stats, run_method
from osteoimmune.scoring.scdrs import ScDRS, loess_fit, scdrs_gene_table
from osteoimmune.signatures._matching import match_signatures
from osteoimmune.signatures._signature import as_signature_list


def _score(adata, sigs, **kw):
    kw.setdefault("progress", False)
    kw.setdefault("n_ctrl", 100)
    return oi.tl.score(adata, sigs, method="scdrs", **kw)


def _run(adata, sigs, n_ctrl=100, random_state=0):
    """Run the method directly and return it (to inspect control sets and weights)."""
    matched, _ = match_signatures(as_signature_list(sigs), pd.Index(adata.var_names))
    source = MatrixSource(adata.X)
    meth = ScDRS(n_ctrl=n_ctrl)
    ctx = ScoreContext(matched=matched, n_obs=adata.n_obs, n_vars=adata.n_vars,
                       var_names=pd.Index(adata.var_names), stats=None,
                       random_state=random_state)
    res = run_method(meth, source, ctx, obs_names=adata.obs_names, chunk_size=10_000,
                     progress=False)
    return meth, res


@pytest.fixture(scope="module")
def parity_data():
    adata = make_synthetic(n_obs=400, n_vars=1500, density=0.1, seed=1, dtype=np.float64)
    rng = np.random.default_rng(3)
    sigs = {"A": list(rng.choice(adata.var_names[5:], 30, replace=False)),
            "B": list(rng.choice(adata.var_names[5:], 12, replace=False))}
    return adata, sigs


@pytest.fixture(scope="module")
def scdrs_ref(parity_data):
    scdrs = pytest.importorskip("scdrs")
    adata, _ = parity_data
    b = adata.copy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        scdrs.preprocess(b, n_mean_bin=20, n_var_bin=20)
    return scdrs, b


def test_registered():
    assert METHODS["scdrs"] is ScDRS


# ----------------------------------------------------------------------------- loess
def test_loess_equals_skmisc_direct():
    skl = pytest.importorskip("skmisc.loess")
    rng = np.random.default_rng(0)
    x = rng.normal(size=800)
    y = 1.5 * x + 0.3 * x**2 + rng.normal(scale=0.3, size=800)
    x[:10] = x[10]  # ties
    m = skl.loess(x, y, span=0.3, degree=2, surface="direct")
    m.fit()
    np.testing.assert_allclose(loess_fit(x, y, 0.3), m.outputs.fitted_values, atol=1e-9)


def test_loess_recovers_quadratic_exactly():
    x = np.linspace(-2, 3, 200)
    y = 0.5 - x + 0.25 * x**2
    np.testing.assert_allclose(loess_fit(x, y, 0.3), y, atol=1e-10)


def test_loess_bad_input():
    with pytest.raises(ValueError, match="finite"):
        loess_fit(np.array([1.0, np.nan, 2, 3]), np.ones(4))
    with pytest.raises(ValueError, match="Too few points"):
        loess_fit(np.arange(5.0), np.arange(5.0), 0.3)


# ----------------------------------------------------------------------------- parity
def test_gene_table_matches_scdrs_preprocess(parity_data, scdrs_ref):
    adata, _ = parity_data
    _, b = scdrs_ref
    ref = b.uns["SCDRS_PARAM"]["GENE_STATS"]
    st = compute_gene_stats(MatrixSource(adata.X), 128, expm1=True)
    with pytest.warns(UserWarning, match="12 × 12"):
        tab, bins = scdrs_gene_table(st, adata.var_names)
    assert bins == (12, 12)
    for col in ["mean", "var", "ct_mean", "ct_var"]:
        np.testing.assert_allclose(tab[col], ref[col].astype(float), rtol=1e-10, atol=1e-14)
    # the loess is the exact local fit; scDRS interpolates it on a kd-tree: ~1e-3 apart
    np.testing.assert_allclose(tab["ct_var_tech"], ref["ct_var_tech"].astype(float), rtol=1e-2)
    np.testing.assert_allclose(tab["var_tech"], ref["var_tech"].astype(float), rtol=1e-2)
    assert (tab["mean_var"].to_numpy() == ref["mean_var"].to_numpy()).all()


def test_control_sets_equal_scdrs(parity_data, scdrs_ref):
    from scdrs.method import _select_ctrl_geneset

    adata, sigs = parity_data
    _, b = scdrs_ref
    meth, _ = _run(adata, sigs, n_ctrl=50, random_state=7)
    df_gene = b.uns["SCDRS_PARAM"]["GENE_STATS"].copy()
    names = np.asarray(adata.var_names)
    for name, genes in sigs.items():
        ctrl_ref, _ = _select_ctrl_geneset(df_gene, sorted(genes), [1] * len(genes),
                                           "mean_var", 50, 200, 7)
        ours = meth.control_genes_[name]
        for i in range(50):
            assert list(names[ours[i]]) == [str(g) for g in ctrl_ref[i]]


def test_exact_parity_given_same_gene_stats(parity_data, scdrs_ref):
    """With scDRS fed our gene table, scores and p-values agree to float32 precision."""
    scdrs, b = scdrs_ref
    adata, sigs = parity_data
    res = _score(adata, sigs, n_ctrl=200, random_state=0)
    meth, _ = _run(adata, sigs, n_ctrl=200, random_state=0)
    c = b.copy()
    c.uns["SCDRS_PARAM"]["GENE_STATS"] = meth.gene_table_.copy()
    n_null = adata.n_obs * 200
    for name, genes in sigs.items():
        ref = scdrs.score_cell(c, genes, n_ctrl=200, random_seed=0)
        np.testing.assert_allclose(res[name], ref["norm_score"], atol=2e-5, rtol=1e-5)
        np.testing.assert_allclose(res[f"{name}_pval"], ref["pval"], atol=3 / n_null,
                                   rtol=1e-5)


def test_agreement_with_scdrs_pipeline(parity_data, scdrs_ref):
    scdrs, b = scdrs_ref
    adata, sigs = parity_data
    for seed in (0, 1):
        res = _score(adata, sigs, n_ctrl=200, random_state=seed)
        for name, genes in sigs.items():
            ref = scdrs.score_cell(b, genes, n_ctrl=200, random_seed=seed)
            assert np.corrcoef(res[name], ref["norm_score"])[0, 1] > 0.999
            assert np.max(np.abs(res[name] - ref["norm_score"])) < 0.02
            lp, lr = -np.log10(res[f"{name}_pval"]), ref["nlog10_pval"]
            assert np.corrcoef(lp, lr)[0, 1] > 0.999


# ----------------------------------------------------------------------------- statistics
def test_null_pvalues_uniform():
    adata = make_synthetic(n_obs=400, n_vars=800, density=0.3, seed=11)
    rng = np.random.default_rng(5)
    sigs = {f"R{i}": list(rng.choice(adata.var_names[5:], 25, replace=False))
            for i in range(6)}
    res = _score(adata, sigs, n_ctrl=200, random_state=2)
    p = res[[f"R{i}_pval" for i in range(6)]].to_numpy().ravel()
    assert stats.kstest(p, "uniform").pvalue > 0.01
    assert 0.3 < np.mean(p < 0.5) < 0.7


def test_planted_signal_recovered():
    adata = make_synthetic(n_obs=400, n_vars=800, density=0.3, seed=12)
    rng = np.random.default_rng(6)
    genes = rng.choice(np.arange(5, 800), 20, replace=False)
    hit = np.zeros(adata.n_obs, dtype=bool)
    hit[rng.choice(adata.n_obs, 40, replace=False)] = True
    X = adata.X.toarray()
    X[np.ix_(hit, genes)] += 1.5
    adata = ad.AnnData(sp.csr_matrix(X), obs=adata.obs, var=adata.var)
    res = _score(adata, {"P": list(adata.var_names[genes])}, n_ctrl=300)
    assert np.median(res.loc[hit, "P_pval"]) < 0.01
    assert np.median(res.loc[~hit, "P_pval"]) > 0.1
    assert res.loc[hit, "P"].mean() > res.loc[~hit, "P"].mean() + 2


def test_zero_cells_get_p_one_and_min_score():
    adata = make_synthetic(n_obs=300, n_vars=600, density=0.2, seed=4, dtype=np.float64)
    genes = list(adata.var_names[10:14])
    X = adata.X.tolil()
    X[:20, 10:14] = 0
    adata = ad.AnnData(X.tocsr(), obs=adata.obs, var=adata.var)
    res = _score(adata, {"S": genes})
    zero = np.asarray(adata[:, genes].X.sum(axis=1)).ravel() == 0
    assert zero[:20].all()
    assert (res.loc[zero, "S_pval"] == 1.0).all()
    assert np.allclose(res.loc[zero, "S"], res["S"].min())
    assert (res.loc[~zero, "S"] > res["S"].min()).all()


# ----------------------------------------------------------------------------- invariances
def test_chunk_size_storage_and_determinism(tmp_path):
    adata = make_synthetic(n_obs=250, n_vars=500, density=0.2, seed=8)
    rng = np.random.default_rng(1)
    sigs = {"A": list(rng.choice(adata.var_names[5:], 15, replace=False)),
            "B": list(rng.choice(adata.var_names[5:], 40, replace=False))}
    ref = _score(adata, sigs, chunk_size=10_000)
    assert list(ref.columns) == ["A", "B", "A_pval", "B_pval"]
    for cs in (5, 64):
        pd.testing.assert_frame_equal(_score(adata, sigs, chunk_size=cs), ref, check_exact=True)
    pd.testing.assert_frame_equal(_score(adata, sigs), ref, check_exact=True)
    dense = ad.AnnData(adata.X.toarray(), obs=adata.obs, var=adata.var)
    pd.testing.assert_frame_equal(_score(dense, sigs, chunk_size=33), ref, check_exact=True)
    path = tmp_path / "x.h5ad"
    adata.write_h5ad(path)
    backed = ad.read_h5ad(path, backed="r")
    pd.testing.assert_frame_equal(_score(backed, sigs, chunk_size=50), ref, check_exact=True)
    backed.file.close()
    # each signature is scored independently of the others in the call
    alone = _score(adata, {"B": sigs["B"]})
    np.testing.assert_array_equal(alone["B"], ref["B"])
    np.testing.assert_array_equal(alone["B_pval"], ref["B_pval"])
    # another seed draws other control sets
    other = _score(adata, sigs, random_state=1)
    assert not np.array_equal(other["A"], ref["A"])
    assert np.corrcoef(other["A"], ref["A"])[0, 1] > 0.9


def test_pvalue_is_pooled_empirical(parity_data):
    """Brute-force check of the normalisation and pooled p-value on the method's own sets."""
    adata, sigs = parity_data
    meth, res = _run(adata, {"A": sigs["A"]}, n_ctrl=60, random_state=3)
    idx, w_sig, w_ctrl = meth.weights_["A"]
    ctrl = meth.control_genes_["A"]
    X = adata.X.toarray()
    var = meth.gene_table_["var"].to_numpy()
    raw = X[:, idx] @ w_sig
    craw = np.stack([X[:, ctrl[i]] @ w_ctrl[i] for i in range(60)], axis=1)
    ratio = (var[ctrl] * w_ctrl**2).sum(axis=1) / (var[idx] * w_sig**2).sum()
    c = (craw - craw.mean(axis=0)) / np.sqrt(ratio)
    m, sd = c.mean(axis=1), c.std(axis=1)
    v = ((raw - raw.mean()) - m) / sd
    cn = (c - m[:, None]) / sd[:, None]
    v, cn = v - v.mean(), cn - cn.mean(axis=0)
    lo = min(v.min(), cn.min())
    v[raw == 0] = lo - 1e-3
    cn[craw == 0] = lo
    np.testing.assert_allclose(res["A"], v, atol=1e-10)
    null = np.sort(cn.ravel())
    p = (null.size - np.searchsorted(null, v, side="left") + 1) / (null.size + 1)
    np.testing.assert_allclose(res["A_pval"], p, atol=2 / null.size)


# ----------------------------------------------------------------------------- errors
def test_bad_options_and_input():
    adata = make_synthetic(n_obs=100, n_vars=300, seed=2)
    sig = {"S": list(adata.var_names[10:20])}
    with pytest.raises(ValueError, match="n_ctrl"):
        _score(adata, sig, n_ctrl=0)
    with pytest.raises(ValueError, match="weight_opt"):
        _score(adata, sig, weight_opt="od")
    with pytest.raises(TypeError, match="Unknown option"):
        oi.tl.score(adata, sig, method="scdrs", n_ctrls=10, progress=False)
    with pytest.raises(ValueError, match="none of its"):
        _score(adata, {"S": list(adata.var_names[:5])})  # never-expressed genes
    counts = ad.AnnData(sp.random(100, 300, density=0.2, format="csr", random_state=0,
                                  data_rvs=lambda k: np.ones(k) * 7.0).astype(np.float32),
                        var=adata.var)
    with pytest.raises(ValueError):
        _score(counts, sig)


def test_signed_signature_uses_up_genes_with_warning():
    adata = make_synthetic(n_obs=150, n_vars=400, density=0.2, seed=9)
    up = list(adata.var_names[10:20])
    down = [g + "-" for g in adata.var_names[30:35]]
    with pytest.warns(UserWarning, match="up genes"):
        signed = _score(adata, {"S": up + down})
    plain = _score(adata, {"S": up})
    np.testing.assert_array_equal(signed.to_numpy(), plain.to_numpy())
    with pytest.raises(ValueError, match="positive weight"):
        _score(adata, {"S": down})
