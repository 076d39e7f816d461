"""oi.tl.associate: parity with statsmodels/scipy by hand, planted effects, validation."""

from __future__ import annotations

import itertools
import warnings

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.stats as st
import statsmodels.formula.api as smf
from conftest import SHARED_DATA, require_file

import osteoimmune as oi
from osteoimmune._utils import OsteoimmuneWarning

TOL = dict(rel=1e-8, abs=1e-12)


def simulate_cells(n_donors=30, cells_per_type=60, beta=-2.0, seed=0):
    """Donors with BMD/age/sex; cells of two types with three signature scores each.

    Planted: the donor mean of ``sig_planted`` in ``mono`` cells moves by ``beta`` per
    g/cm² of BMD. Every signature also rises with age (0.01/year), and BMD falls with age,
    so unadjusted analyses see a spurious BMD association: the truth needs ``age``.
    """
    rng = np.random.default_rng(seed)
    donors = [f"D{i:02d}" for i in range(n_donors)]
    age = rng.uniform(50, 85, n_donors)
    sex = rng.choice(["female", "male"], n_donors, p=[0.6, 0.4])
    bmd = 0.78 - 0.006 * (age - 50) + 0.08 * (sex == "male") + rng.normal(0, 0.1, n_donors)
    pheno = pd.DataFrame({"bmd": bmd, "age": age, "sex": sex}, index=donors)
    rows, scores = [], []
    for d, a, b in zip(donors, age, bmd):
        for ct in ("mono", "dc"):
            for _ in range(cells_per_type):
                rows.append((d, ct))
            donor_shift = rng.normal(0, 0.05, 3) + 0.01 * (a - 60)
            base = rng.normal(0, 0.3, (cells_per_type, 3)) + donor_shift
            if ct == "mono":
                base[:, 0] += beta * (b - 0.7)
            scores.append(base)
    obs = pd.DataFrame(rows, columns=["donor", "cell_type"],
                       index=[f"cell{i}" for i in range(len(rows))])
    S = pd.DataFrame(np.vstack(scores), index=obs.index,
                     columns=["sig_planted", "sig_null1", "sig_null2"])
    return ad.AnnData(obs=obs), S, pheno


@pytest.fixture(scope="module")
def cohort():
    return simulate_cells()


@pytest.fixture(scope="module")
def wide():
    rng = np.random.default_rng(1)
    n = 25
    ph = pd.DataFrame({"bmd": rng.normal(0.8, 0.12, n), "age": rng.uniform(50, 85, n),
                       "sex": rng.choice(["F", "M"], n),
                       "status": rng.choice(["OVX", "sham"], n)},
                      index=[f"s{i}" for i in range(n)])
    sc = pd.DataFrame({"a": 0.5 * ph["bmd"].to_numpy() + rng.normal(0, 0.1, n),
                       "b": rng.normal(size=n) + (ph["status"] == "OVX") * 0.8},
                      index=ph.index)
    return sc, ph


def test_planted_effect_recovered_unplanted_not_significant(cohort):
    adata, S, pheno = cohort
    per = oi.tl.aggregate(adata, S, "donor", groupby="cell_type", min_cells=10)
    res = oi.tl.associate(per, pheno, "bmd", covariates=["age", "sex"], model="ols")
    assert len(res) == 6 and set(res["model"]) == {"ols"}
    hit = res[(res.signature == "sig_planted") & (res.group == "mono")].iloc[0]
    assert hit["ci_low"] < -2.0 < hit["ci_high"]
    assert hit["qvalue"] < 1e-6 and hit["n"] == 30
    others = res.drop(index=hit.name)
    assert (others["qvalue"] > 0.05).all()
    # the covariate matters: every score rises with age and BMD falls with age
    naive = oi.tl.associate(per, pheno, "bmd", model="ols")
    assert (naive.drop(index=hit.name)["pvalue"] < 0.05).any()


def test_simulate_cohort_planted_signature_found():
    cohort = oi.datasets.simulate_cohort(n_donors=16, cells_per_donor=150, effect=1.0,
                                         random_state=0)
    truth = cohort.uns["truth"]
    lib = oi.signatures.load()
    sigs = [truth["signature"], "osteoclast_resorption", "HALLMARK_HYPOXIA"]
    scores = oi.tl.score(cohort, lib.select(names=sigs), method="zmean", progress=False)
    my = cohort.obs["cell_type"].isin(["classical monocyte", "non-classical monocyte",
                                       "cDC", "neutrophil"]).to_numpy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", OsteoimmuneWarning)
        per = oi.tl.aggregate(cohort[my], scores[my], "donor", groupby="cell_type",
                              min_cells=5)
    donors = cohort.uns["donor_table"]
    res = oi.tl.associate(per, donors, "bmd", covariates=["age", "sex"])
    hit = res[(res.signature == truth["signature"]) & (res.group == truth["cell_type"])]
    assert hit["qvalue"].item() < 0.05
    assert np.sign(hit["effect"].item()) == -1  # truth: higher signature, lower BMD
    assert (res.drop(index=hit.index)["qvalue"] > 0.05).all()


def test_ols_equals_statsmodels_by_hand(wide):
    sc, ph = wide
    res = oi.tl.associate(sc, ph, "bmd", covariates=["age", "sex"], model="ols")
    for robust in (None, "HC3"):
        res = oi.tl.associate(sc, ph, "bmd", covariates=["age", "sex"], model="ols",
                              robust=robust)
        for sig in ("a", "b"):
            df = ph.assign(y=sc[sig])
            fit = smf.ols("y ~ bmd + age + C(sex)", df).fit(
                cov_type=robust or "nonrobust")
            r = res.set_index("signature").loc[sig]
            assert r["effect"] == pytest.approx(fit.params["bmd"], **TOL)
            assert r["se"] == pytest.approx(fit.bse["bmd"], **TOL)
            assert r["pvalue"] == pytest.approx(fit.pvalues["bmd"], **TOL)
            lo, hi = fit.conf_int().loc["bmd"]
            assert (r["ci_low"], r["ci_high"]) == (pytest.approx(lo, **TOL),
                                                   pytest.approx(hi, **TOL))
            assert r["effect_std"] == pytest.approx(
                fit.params["bmd"] * ph["bmd"].std() / sc[sig].std(), **TOL)
    q = st.false_discovery_control(res["pvalue"].to_numpy(), method="bh")
    np.testing.assert_allclose(res["qvalue"], q, rtol=1e-12)


def test_binary_string_phenotype_with_reference(wide):
    sc, ph = wide
    res = oi.tl.associate(sc, ph, "status", model="ols", reference="sham")
    r = res.set_index("signature").loc["b"]
    assert r["contrast"] == "OVX vs sham"
    diff = sc["b"][ph.status == "OVX"].mean() - sc["b"][ph.status == "sham"].mean()
    assert r["effect"] == pytest.approx(diff, **TOL)
    t = st.ttest_ind(sc["b"][ph.status == "OVX"], sc["b"][ph.status == "sham"])
    assert r["pvalue"] == pytest.approx(t.pvalue, **TOL)     # OLS on a 0/1 contrast = t-test
    flipped = oi.tl.associate(sc, ph, "status", model="ols", reference="OVX")
    assert flipped.set_index("signature").loc["b", "effect"] == pytest.approx(-diff, **TOL)
    assert flipped["contrast"].iloc[0] == "sham vs OVX"


def test_logit_equals_statsmodels_by_hand(wide):
    sc, ph = wide
    res = oi.tl.associate(sc, ph, "status", covariates=["age"], model="logit",
                          reference="sham")
    for sig in ("a", "b"):
        df = ph.assign(x=sc[sig], y=(ph.status == "OVX").astype(float))
        fit = smf.logit("y ~ x + age", df).fit(disp=0)
        r = res.set_index("signature").loc[sig]
        assert r["effect"] == pytest.approx(fit.params["x"], rel=1e-6)
        assert r["pvalue"] == pytest.approx(fit.pvalues["x"], rel=1e-6)
        assert r["effect_std"] == pytest.approx(fit.params["x"] * sc[sig].std(), rel=1e-6)


def test_spearman_equals_scipy_and_partial_by_hand(wide):
    sc, ph = wide
    res = oi.tl.associate(sc, ph, "bmd", model="spearman").set_index("signature")
    for sig in ("a", "b"):
        ref = st.spearmanr(sc[sig], ph["bmd"])
        assert res.loc[sig, "effect"] == pytest.approx(ref.statistic, **TOL)
        assert res.loc[sig, "pvalue"] == pytest.approx(ref.pvalue, **TOL)
    part = oi.tl.associate(sc, ph, "bmd", covariates=["age"], model="spearman")
    Z = np.column_stack([np.ones(len(ph)), ph["age"]])
    rs, rp = st.rankdata(sc["a"]), st.rankdata(ph["bmd"])
    e1 = rs - Z @ np.linalg.lstsq(Z, rs, rcond=None)[0]
    e2 = rp - Z @ np.linalg.lstsq(Z, rp, rcond=None)[0]
    r = np.corrcoef(e1, e2)[0, 1]
    df = len(ph) - 3
    p = 2 * st.t.sf(abs(r * np.sqrt(df / (1 - r**2))), df)
    got = part.set_index("signature").loc["a"]
    assert got["effect"] == pytest.approx(r, **TOL)
    assert got["pvalue"] == pytest.approx(p, **TOL)


def _freedman_lane_bruteforce(y, x, Z, perms):
    def t_of(yy):
        X = np.column_stack([x, Z])
        beta, *_ = np.linalg.lstsq(X, yy, rcond=None)
        resid = yy - X @ beta
        df = len(yy) - X.shape[1]
        cov = np.linalg.inv(X.T @ X) * (resid @ resid) / df
        return beta[0] / np.sqrt(cov[0, 0])

    g, *_ = np.linalg.lstsq(Z, y, rcond=None)
    fitted, resid = Z @ g, y - Z @ g
    t0 = t_of(y)
    ts = np.array([t_of(fitted + resid[list(p)]) for p in perms])
    return t0, ts


def test_exact_permutation_equals_bruteforce_freedman_lane():
    rng = np.random.default_rng(7)
    n = 7
    ph = pd.DataFrame({"bmd": rng.normal(size=n), "age": rng.uniform(50, 80, n)},
                      index=[f"m{i}" for i in range(n)])
    sc = pd.DataFrame({"s": 0.7 * ph["bmd"] + rng.normal(size=n)}, index=ph.index)
    res = oi.tl.associate(sc, ph, "bmd", covariates=["age"], model="permutation",
                          n_perm=10_000)  # 7! = 5040 <= n_perm: exact
    r = res.iloc[0]
    assert bool(r["exact"]) and r["n_perm"] == 5040
    Z = np.column_stack([np.ones(n), ph["age"]])
    t0, ts = _freedman_lane_bruteforce(sc["s"].to_numpy(), ph["bmd"].to_numpy(), Z,
                                       itertools.permutations(range(n)))
    p = np.mean(np.abs(ts) >= np.abs(t0) - 1e-10)
    assert r["pvalue"] == pytest.approx(p, abs=1e-12)
    assert r["statistic"] == pytest.approx(t0, rel=1e-8)


def test_monte_carlo_permutation_deterministic_and_valid(wide):
    sc, ph = wide
    a = oi.tl.associate(sc, ph, "bmd", covariates=["age", "sex"], model="permutation",
                        n_perm=499, random_state=3)
    b = oi.tl.associate(sc, ph, "bmd", covariates=["age", "sex"], model="permutation",
                        n_perm=499, random_state=3)
    pd.testing.assert_frame_equal(a, b)
    k = a["pvalue"].to_numpy() * 500                         # p = (1 + k) / (1 + B)
    np.testing.assert_allclose(k, np.round(k), atol=1e-9)
    assert a["pvalue"].min() >= 1 / 500
    ols = oi.tl.associate(sc, ph, "bmd", covariates=["age", "sex"])
    np.testing.assert_allclose(a["effect"], ols["effect"], rtol=1e-12)
    # strong effect "a": permutation p at its floor, like the parametric one is tiny
    assert a.set_index("signature").loc["a", "pvalue"] == pytest.approx(1 / 500)


def test_mixedlm_equals_statsmodels_by_hand(cohort):
    adata, S, pheno = cohort
    mono = (adata.obs["cell_type"] == "mono").to_numpy()
    cells = S[mono].join(adata.obs[["donor"]])
    sub = cells.iloc[::3]  # keep it quick
    res = oi.tl.associate(sub, pheno, "bmd", covariates=["age"], model="mixedlm",
                          sample_key="donor", signatures=["sig_planted"])
    df = sub.join(pheno, on="donor")
    fit = smf.mixedlm("sig_planted ~ bmd + age", df, groups=df["donor"]).fit(reml=True)
    r = res.iloc[0]
    assert r["effect"] == pytest.approx(fit.fe_params["bmd"], rel=1e-6)
    assert r["se"] == pytest.approx(fit.bse_fe["bmd"], rel=1e-6)
    assert r["pvalue"] == pytest.approx(fit.pvalues["bmd"], rel=1e-5)
    assert r["n"] == 30 and r["n_cells"] == len(sub)
    assert r["ci_low"] < -2.0 < r["ci_high"]


def test_cell_level_input_refused_with_reason(cohort):
    adata, S, pheno = cohort
    cells = S.join(adata.obs)
    with pytest.raises(ValueError, match="not independent replicates"):
        oi.tl.associate(cells, pheno, "bmd", sample_key="donor", model="ols")
    dup = S.set_index(adata.obs["donor"].to_numpy())
    with pytest.raises(ValueError, match="duplicated index ids.*aggregate"):
        oi.tl.associate(dup, pheno, "bmd")
    with pytest.raises(ValueError, match="sample_key"):
        oi.tl.associate(cells, pheno, "bmd", model="mixedlm")


def test_long_and_wide_inputs_agree_and_family(cohort):
    adata, S, pheno = cohort
    per = oi.tl.aggregate(adata, S, "donor", groupby="cell_type")
    long = oi.tl.associate(per, pheno, "bmd", ["age"], groups=["mono"])
    w = per[per.group == "mono"].pivot(index="sample", columns="signature", values="value")
    wide = oi.tl.associate(w, pheno, "bmd", ["age"])
    np.testing.assert_allclose(long["pvalue"], wide["pvalue"], rtol=1e-12)
    both = oi.tl.associate(per, pheno, ["bmd", "age"], family="phenotype")
    for _, sub in both.groupby("phenotype"):
        np.testing.assert_allclose(sub["qvalue"], oi.stats.bh_adjust(sub["pvalue"]))


def test_phenotype_validation_messages(wide):
    sc, ph = wide
    with pytest.warns(OsteoimmuneWarning, match="no row in the phenotype table.*s0"):
        r = oi.tl.associate(sc, ph.drop(index="s0"), "bmd")
    assert (r["n"] == 24).all()
    with pytest.raises(ValueError, match="no sample id"):
        oi.tl.associate(sc, ph.set_axis([f"x{i}" for i in range(len(ph))]), "bmd")
    nan = ph.copy()
    nan.loc["s3", "age"] = np.nan
    with pytest.warns(OsteoimmuneWarning, match=r"missing values in \['age'\].*s3"):
        r = oi.tl.associate(sc, nan, "bmd", ["age"])
    assert (r["n"] == 24).all()
    with pytest.raises(ValueError, match="constant"):
        oi.tl.associate(sc, ph.assign(bmd=1.0), "bmd")
    with pytest.raises(ValueError, match="3 levels"):
        oi.tl.associate(sc, ph.assign(status=["a", "b", "c"] * 8 + ["a"]), "status")
    with pytest.raises(ValueError, match="single value"):
        oi.tl.associate(sc, ph.assign(sex="F"), "bmd", ["sex"])
    with pytest.raises(ValueError, match="too few samples"):
        oi.tl.associate(sc.iloc[:4], ph, "bmd", ["age", "sex"])
    with pytest.raises(ValueError, match="needs a binary phenotype"):
        oi.tl.associate(sc, ph, "bmd", model="logit")
    with pytest.raises(ValueError, match="not a level"):
        oi.tl.associate(sc, ph, "status", reference="control")
    with pytest.raises(KeyError, match="not in the phenotype table"):
        oi.tl.associate(sc, ph, "bmd", ["weight"])
    with pytest.raises(ValueError, match="robust= applies"):
        oi.tl.associate(sc, ph, "bmd", model="spearman", robust=True)


def test_real_gse56815_sample_sheet_binary_phenotype():
    path = require_file(SHARED_DATA / "gse56815_gse7429_pheno" / "datMeta_GSE56815_GPL96.csv")
    sheet = pd.read_csv(path, index_col=0)
    rng = np.random.default_rng(0)
    # per-sample scores of the 80 monocyte samples (bulk: no cells); planted +0.5 in low BMD
    low = (sheet["Characteristics"] == "low_BMD").to_numpy()
    scores = pd.DataFrame({"score": rng.normal(size=len(sheet)) + 0.5 * low},
                          index=sheet.index)
    res = oi.tl.associate(scores, sheet, "Characteristics", covariates=["State"],
                          reference="high_BMD")
    r = res.iloc[0]
    assert r["contrast"] == "low_BMD vs high_BMD" and r["n"] == 80
    fit = smf.ols("y ~ low + C(State)", sheet.assign(y=scores["score"], low=low * 1.0)).fit()
    assert r["effect"] == pytest.approx(fit.params["low"], **TOL)
    assert r["pvalue"] == pytest.approx(fit.pvalues["low"], **TOL)
