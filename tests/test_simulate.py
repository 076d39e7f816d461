"""simulate_cohort: reproducible, 10x-like, the planted effect present and nothing else."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import pytest
from scipy import stats

import osteoimmune as oi

SMALL = {"n_donors": 6, "cells_per_donor": 60, "n_genes": 800}
REQUIRED_TYPES = {"classical monocyte", "non-classical monocyte", "macrophage-like", "cDC",
                  "neutrophil", "T cell", "B cell", "NK cell"}


@pytest.fixture(scope="module")
def cohort():
    """The default cohort (24 donors x 300 cells), as the demo uses it."""
    return oi.datasets.simulate_cohort(random_state=0)


@pytest.fixture(scope="module")
def big_cohort():
    """More donors, fewer cells and genes: power to see (and not see) donor-level effects."""
    return oi.datasets.simulate_cohort(n_donors=40, cells_per_donor=120, n_genes=1500,
                                       random_state=11)


def _donor_means(adata, genes, cell_type):
    m = (adata.obs["cell_type"] == cell_type).to_numpy()
    idx = adata.var_names.get_indexer(genes)
    vals = np.asarray(adata.X[m][:, idx].mean(axis=1)).ravel()
    return pd.Series(vals).groupby(adata.obs["donor"].to_numpy()[m]).mean()


def _corr_with_bmd(adata, genes, cell_type):
    per = _donor_means(adata, genes, cell_type)
    bmd = oi.datasets.donor_table(adata).loc[per.index, "bmd"]
    return stats.pearsonr(per.to_numpy(), bmd.to_numpy())


def test_same_seed_identical_different_seed_not():
    a = oi.datasets.simulate_cohort(**SMALL, random_state=3)
    b = oi.datasets.simulate_cohort(**SMALL, random_state=3)
    c = oi.datasets.simulate_cohort(**SMALL, random_state=4)
    assert (a.X != b.X).nnz == 0 and (a.layers["counts"] != b.layers["counts"]).nnz == 0
    assert a.obs.equals(b.obs) and a.var.equals(b.var)
    assert a.uns["donor_table"].equals(b.uns["donor_table"])
    assert a.uns["truth"] == b.uns["truth"]
    assert a.X.shape != c.X.shape or (a.X != c.X).nnz > 0


def test_labelled_simulated_with_truth_and_donor_table(cohort):
    assert cohort.uns["simulated"] is True
    assert "SIMULATED" in cohort.uns["dataset"]["title"]
    truth = cohort.uns["truth"]
    assert truth["cell_type"] == "classical monocyte" and truth["phenotype"] == "bmd"
    assert truth["effect"] == 0.5 and truth["direction"] == "negative"
    assert set(truth["genes"]) <= set(cohort.var_names)
    assert cohort.var["planted"].sum() == len(truth["genes"])
    assert REQUIRED_TYPES == set(cohort.obs["cell_type"].cat.categories)
    assert cohort.obs["donor"].nunique() == 24 and cohort.n_obs == 24 * 300
    dt = oi.datasets.donor_table(cohort)
    assert list(dt.columns[:6]) == ["age", "sex", "bmd", "t_score", "osteoporosis", "low_bmd"]
    assert (dt["osteoporosis"] == (dt["t_score"] <= -2.5)).all()
    assert dt["osteoporosis"].any() and not dt["osteoporosis"].all()
    # the same table from obs alone (constant-within-donor columns)
    plain = cohort.copy()
    del plain.uns["donor_table"]
    derived = oi.datasets.donor_table(plain)
    for col in ("age", "bmd", "t_score", "osteoporosis"):
        np.testing.assert_array_equal(derived.loc[dt.index, col].to_numpy(), dt[col].to_numpy())
    with pytest.raises(ValueError, match="vary within donors"):
        oi.datasets.donor_table(plain, columns=["cell_type"])


def test_default_planted_set_comes_from_the_library(cohort):
    truth = cohort.uns["truth"]
    lib = oi.signatures.load()
    if "trained_immunity_bcg_shared" in lib.names:
        assert truth["signature"] == "trained_immunity_bcg_shared"
        assert set(truth["genes"]) == set(lib["trained_immunity_bcg_shared"].up_genes)
    else:
        assert truth["signature"].endswith("_fallback")


def test_sparsity_and_library_sizes_in_10x_range(cohort):
    counts = cohort.layers["counts"]
    zero_fraction = 1 - counts.nnz / np.prod(counts.shape)
    assert 0.75 <= zero_fraction <= 0.97
    total = np.asarray(counts.sum(axis=1)).ravel()
    assert 1000 <= np.median(total) <= 6000  # UMIs per cell over the simulated gene space
    assert 0.12 <= np.log10(total).std() <= 0.45  # ~2-3 fold spread, as in 10x
    detected = np.diff(counts.indptr)
    assert 200 <= np.median(detected) <= 2500
    by_type = pd.Series(total).groupby(cohort.obs["cell_type"].to_numpy()).median()
    assert by_type["neutrophil"] < by_type["classical monocyte"]  # neutrophils: fewest UMIs


def test_mean_variance_relation_is_overdispersed(cohort):
    m = (cohort.obs["cell_type"] == "T cell").to_numpy()
    c = cohort.layers["counts"][m].toarray()
    mu, var = c.mean(axis=0), c.var(axis=0, ddof=1)
    k = mu > 0.05
    assert (var[k] >= mu[k]).mean() > 0.9  # NB, not Poisson
    slope = np.polyfit(np.log(mu[k]), np.log(var[k]), 1)[0]
    assert 1.0 < slope < 2.0


def test_x_is_log_normalised_counts(cohort):
    counts = cohort.layers["counts"][:500].toarray().astype(np.float64)
    ref = np.log1p(counts / counts.sum(axis=1, keepdims=True) * 1e4)  # normalize_total + log1p
    np.testing.assert_allclose(cohort.X[:500].toarray(), ref, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(cohort.obs["total_counts"].to_numpy()[:500],
                                  counts.sum(axis=1))
    assert oi.pp.detect_scale(cohort.X[:200].data, 200, cohort.n_vars).kind == "log_normalized"


def test_planted_effect_recovered_in_the_planted_cell_type(cohort):
    r, p = _corr_with_bmd(cohort, cohort.uns["truth"]["genes"], "classical monocyte")
    assert r < -0.8 and p < 1e-5


def test_nothing_else_is_associated_beyond_chance(big_cohort):
    truth = big_cohort.uns["truth"]
    planted = truth["genes"]
    r, p = _corr_with_bmd(big_cohort, planted, truth["cell_type"])
    assert r < -0.8 and p < 1e-8
    pvals = []
    # the planted set in every other cell type
    for ct in truth["null_cell_types"]:
        pvals.append(_corr_with_bmd(big_cohort, planted, ct)[1])
    # random sets of the same size (not planted genes) in the planted cell type
    rng = np.random.default_rng(0)
    others = big_cohort.var_names[~big_cohort.var["planted"].to_numpy()]
    for _ in range(20):
        genes = rng.choice(others, size=len(planted), replace=False)
        pvals.append(_corr_with_bmd(big_cohort, list(genes), truth["cell_type"])[1])
    pvals = np.array(pvals)
    assert pvals.min() > 1e-3  # nothing near the planted signal
    assert (pvals < 0.05).sum() <= 4  # 27 null tests: ~1.4 expected at 5%


def test_no_effect_means_no_association():
    a = oi.datasets.simulate_cohort(n_donors=30, cells_per_donor=80, n_genes=1000, effect=0.0,
                                    random_state=5)
    r, p = _corr_with_bmd(a, a.uns["truth"]["genes"], "classical monocyte")
    assert p > 0.01
    assert a.uns["truth"]["direction"] == "none"


def test_age_confounder_on_the_signature():
    a = oi.datasets.simulate_cohort(n_donors=30, cells_per_donor=80, n_genes=1000, effect=0.0,
                                    confounders={"age_on_signature": 1.0}, random_state=6)
    genes = a.uns["truth"]["genes"]
    age = oi.datasets.donor_table(a)["age"]
    for ct in ("classical monocyte", "neutrophil"):
        per = _donor_means(a, genes, ct)
        assert stats.pearsonr(per.to_numpy(), age.loc[per.index].to_numpy())[0] > 0.6
    # and BMD falls with age by construction (age_on_bmd)
    dt = oi.datasets.donor_table(a)
    assert stats.pearsonr(dt["age"], dt["bmd"])[0] < 0


def test_custom_signature_and_cell_type():
    genes = ["IL1B", "TNF", "IL6", "CCL3", "NFKBIA", "PTGS2"]
    a = oi.datasets.simulate_cohort(n_donors=12, cells_per_donor=60, n_genes=800,
                                    signature={"my_set": genes}, planted_cell_type="neutrophil",
                                    effect=1.0, random_state=2)
    assert a.uns["truth"]["signature"] == "my_set" and a.uns["truth"]["genes"] == genes
    r, _ = _corr_with_bmd(a, genes, "neutrophil")
    assert r < -0.7


def test_h5ad_roundtrip_keeps_truth(tmp_path):
    a = oi.datasets.simulate_cohort(**SMALL, random_state=1)
    path = tmp_path / "sim.h5ad"
    a.write_h5ad(path)
    b = ad.read_h5ad(path)
    assert b.uns["truth"]["signature"] == a.uns["truth"]["signature"]
    assert list(b.uns["truth"]["genes"]) == list(a.uns["truth"]["genes"])
    assert bool(b.uns["simulated"]) is True
    pd.testing.assert_frame_equal(b.uns["donor_table"], a.uns["donor_table"], check_dtype=False,
                                  check_categorical=False)


@pytest.mark.parametrize("kwargs, match", [
    ({"n_donors": 2}, "at least 4"),
    ({"cell_types": ["osteoblast"]}, "unknown cell type"),
    ({"confounders": {"smoking": 1.0}}, "unknown confounder"),
    ({"cell_types": ["T cell", "B cell"]}, "planted_cell_type"),
    ({"signature": {"a": ["X"], "b": ["Y"]}}, "exactly one"),
])
def test_bad_input_is_refused_with_the_fix(kwargs, match):
    with pytest.raises((ValueError, KeyError), match=match):
        oi.datasets.simulate_cohort(**{**SMALL, **kwargs})
