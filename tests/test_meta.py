"""oi.tl.meta_analyze: fixed effect and DerSimonian–Laird random effects."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.stats as st
from statsmodels.stats.meta_analysis import combine_effects

import osteoimmune as oi

Y = np.array([0.30, 0.10, 0.55, -0.05])
SE = np.array([0.10, 0.15, 0.12, 0.20])
N = [40, 25, 30, 18]


def _results():
    return {f"c{i}": pd.DataFrame({"signature": ["s"], "group": ["mono"], "phenotype": ["bmd"],
                                   "model": ["ols"], "n": [N[i]], "effect": [Y[i]],
                                   "se": [SE[i]], "effect_std": [Y[i] * 2],
                                   "se_std": [SE[i] * 2]})
            for i in range(4)}


def test_random_effects_equal_hand_dersimonian_laird():
    res = oi.tl.meta_analyze(_results(), method="random")
    r = res.iloc[0]
    # DerSimonian & Laird (1986), written out
    w = 1 / SE**2
    fe = np.sum(w * Y) / np.sum(w)
    Q = np.sum(w * (Y - fe) ** 2)
    k = len(Y)
    tau2 = max(0.0, (Q - (k - 1)) / (np.sum(w) - np.sum(w**2) / np.sum(w)))
    wr = 1 / (SE**2 + tau2)
    re = np.sum(wr * Y) / np.sum(wr)
    se_re = np.sqrt(1 / np.sum(wr))
    I2 = max(0.0, (Q - (k - 1)) / Q)
    assert Q > k - 1  # heterogeneous example: tau2 > 0
    assert r["Q"] == pytest.approx(Q, rel=1e-12)
    assert r["tau2"] == pytest.approx(tau2, rel=1e-12)
    assert r["I2"] == pytest.approx(I2, rel=1e-12)
    assert r["effect"] == pytest.approx(re, rel=1e-12)
    assert r["se"] == pytest.approx(se_re, rel=1e-12)
    assert r["ci_low"] == pytest.approx(re - st.norm.ppf(0.975) * se_re, rel=1e-12)
    assert r["pvalue"] == pytest.approx(2 * st.norm.sf(abs(re / se_re)), rel=1e-10)
    assert r["Q_pvalue"] == pytest.approx(st.chi2.sf(Q, k - 1), rel=1e-10)
    assert r["k"] == 4 and r["n_total"] == sum(N)
    assert r["n_per_cohort"] == "c0=40; c1=25; c2=30; c3=18"
    # and statsmodels agrees
    sm = combine_effects(Y, SE**2, method_re="dl")
    assert r["effect"] == pytest.approx(sm.mean_effect_re, rel=1e-10)
    assert r["se"] == pytest.approx(sm.sd_eff_w_re, rel=1e-10)
    assert r["tau2"] == pytest.approx(sm.tau2, rel=1e-10)


def test_fixed_effect_and_standardised_scale():
    fe = oi.tl.meta_analyze(_results(), method="fixed").iloc[0]
    w = 1 / SE**2
    assert fe["effect"] == pytest.approx(np.sum(w * Y) / np.sum(w), rel=1e-12)
    assert fe["se"] == pytest.approx(1 / np.sqrt(np.sum(w)), rel=1e-12)
    std = oi.tl.meta_analyze(_results(), method="fixed", effect="effect_std").iloc[0]
    assert std["effect"] == pytest.approx(2 * fe["effect"], rel=1e-12)


def test_homogeneous_cohorts_have_no_heterogeneity():
    res = _results()
    for i, r in enumerate(res.values()):
        r["effect"] = 0.2
        r["se"] = SE[i]
    out = oi.tl.meta_analyze(res).iloc[0]
    assert out["Q"] == pytest.approx(0.0, abs=1e-15)
    assert out["tau2"] == 0.0 and out["I2"] == 0.0
    assert out["effect"] == pytest.approx(0.2)


def test_spearman_combined_on_fisher_z_scale():
    rhos, ns = np.array([0.3, 0.5]), np.array([30, 50])
    tabs = [pd.DataFrame({"signature": ["s"], "group": ["all"], "phenotype": ["bmd"],
                          "model": ["spearman"], "n": [n], "effect": [r],
                          "se": [1 / np.sqrt(n - 3)]}) for r, n in zip(rhos, ns)]
    out = oi.tl.meta_analyze(tabs, method="fixed").iloc[0]
    z = np.arctanh(rhos)
    w = ns - 3
    assert out["effect"] == pytest.approx(np.tanh(np.sum(w * z) / np.sum(w)), rel=1e-12)


def test_inputs_list_frame_and_errors():
    res = _results()
    a = oi.tl.meta_analyze(list(res.values()))
    stacked = pd.concat([r.assign(cohort=k) for k, r in res.items()])
    b = oi.tl.meta_analyze(stacked)
    assert a["effect"].item() == pytest.approx(b["effect"].item(), rel=1e-14)
    assert a["cohorts"].item() == "cohort1, cohort2, cohort3, cohort4"
    with pytest.raises(ValueError, match="'cohort' column"):
        oi.tl.meta_analyze(stacked.drop(columns="cohort"))
    with pytest.raises(ValueError, match="random' or 'fixed"):
        oi.tl.meta_analyze(res, method="reml")
    with pytest.raises(KeyError, match="lack columns"):
        oi.tl.meta_analyze({k: r.drop(columns="se") for k, r in res.items()})


def test_meta_of_associate_results_end_to_end():
    rng = np.random.default_rng(5)
    results = {}
    for c in range(3):
        n = 30
        ph = pd.DataFrame({"bmd": rng.normal(size=n)}, index=[f"c{c}d{i}" for i in range(n)])
        wide = pd.DataFrame({"sig": 0.6 * ph["bmd"] + rng.normal(size=n),
                             "null": rng.normal(size=n)}, index=ph.index)
        results[f"cohort{c}"] = oi.tl.associate(wide, ph, "bmd")
    out = oi.tl.meta_analyze(results, by=("signature", "phenotype"))
    sig = out.set_index("signature").loc["sig"]
    assert sig["k"] == 3 and sig["n_total"] == 90
    assert sig["ci_low"] < 0.6 < sig["ci_high"]
    assert sig["pvalue"] < 1e-3
