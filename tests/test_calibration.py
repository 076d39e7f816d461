"""Null calibration of the sample-level models, and why cell-level OLS is refused.

Under the null the false-positive rate at alpha = 0.05 must lie in [0.02, 0.08] over 200
simulations (binomial SD 0.015 around 0.05). All simulations are seeded.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.stats as st

import osteoimmune as oi

N_SIM = 200
ALPHA = 0.05


def _null_cohort(seed=0, n=24):
    """200 independent null signatures: scores depend on age and sex, BMD depends on age
    (so BMD and scores are correlated marginally) but not on BMD given age and sex."""
    rng = np.random.default_rng(seed)
    age = rng.uniform(50, 85, n)
    sex = rng.choice(["F", "M"], n)
    bmd = 0.78 - 0.006 * (age - 50) + 0.08 * (sex == "M") + rng.normal(0, 0.1, n)
    ph = pd.DataFrame({"bmd": bmd, "age": age, "sex": sex},
                      index=[f"d{i}" for i in range(n)])
    Y = (0.03 * (age - 65))[:, None] + 0.5 * (sex == "M")[:, None] \
        + rng.standard_t(5, size=(n, N_SIM))
    scores = pd.DataFrame(Y, index=ph.index, columns=[f"null{j}" for j in range(N_SIM)])
    return scores, ph


@pytest.mark.parametrize("model,kw", [("ols", {}), ("spearman", {}),
                                      ("permutation", {"n_perm": 199})])
def test_null_false_positive_rate_with_covariates(model, kw):
    scores, ph = _null_cohort()
    res = oi.tl.associate(scores, ph, "bmd", covariates=["age", "sex"], model=model, **kw)
    fpr = float(np.mean(res["pvalue"] < ALPHA))
    assert 0.02 <= fpr <= 0.08, fpr
    # p-values are roughly uniform, not only at alpha
    assert st.kstest(res["pvalue"], "uniform").pvalue > 0.001


@pytest.mark.parametrize("model,kw", [("ols", {}), ("spearman", {}),
                                      ("permutation", {"n_perm": 199})])
def test_null_false_positive_rate_shuffled_phenotypes(model, kw):
    """A score that truly tracks BMD; the BMD labels shuffled 200 times."""
    rng = np.random.default_rng(11)
    n = 20
    bmd = rng.normal(0.8, 0.12, n)
    ids = [f"d{i}" for i in range(n)]
    scores = pd.DataFrame({"sig": -2.0 * bmd + rng.normal(0, 0.2, n)}, index=ids)
    shuffled = pd.DataFrame({f"perm{j}": rng.permutation(bmd) for j in range(N_SIM)},
                            index=ids)
    res = oi.tl.associate(scores, shuffled, list(shuffled.columns), model=model, **kw)
    fpr = float(np.mean(res["pvalue"] < ALPHA))
    assert 0.02 <= fpr <= 0.08, fpr
    truth = oi.tl.associate(scores, pd.DataFrame({"bmd": bmd}, index=ids), "bmd",
                            model=model, **kw)
    assert truth["pvalue"].item() < 0.01


def _cell_ols_pvalue(y, x):
    """Two-sided p of the slope of y ~ x over cells (what the API refuses to do)."""
    xc = x - x.mean()
    b = xc @ (y - y.mean()) / (xc @ xc)
    resid = y - y.mean() - b * xc
    df = len(y) - 2
    se = np.sqrt(resid @ resid / df / (xc @ xc))
    return 2 * st.t.sf(abs(b / se), df)


def test_cell_level_ols_is_inflated_sample_level_is_not():
    """Cells of a donor share the donor's deviation: treating them as replicates inflates
    false positives massively. This is why associate refuses cell-level OLS."""
    rng = np.random.default_rng(3)
    n_donors, n_cells = 8, 50
    p_cell, p_sample = [], []
    for _ in range(N_SIM):
        donor_effect = rng.normal(0, 0.5, n_donors)
        pheno = rng.normal(size=n_donors)                # unrelated to the scores
        cells = donor_effect[:, None] + rng.normal(0, 1.0, (n_donors, n_cells))
        p_cell.append(_cell_ols_pvalue(cells.ravel(), np.repeat(pheno, n_cells)))
        p_sample.append(st.linregress(pheno, cells.mean(axis=1)).pvalue)
    fpr_cell = np.mean(np.array(p_cell) < ALPHA)
    fpr_sample = np.mean(np.array(p_sample) < ALPHA)
    assert fpr_cell > 0.4, fpr_cell              # ~0.7: an order of magnitude too many
    assert 0.02 <= fpr_sample <= 0.08, fpr_sample
    ph = pd.DataFrame({"pheno": pheno}, index=[f"d{i}" for i in range(n_donors)])
    table = pd.DataFrame({"score": cells.ravel(),
                          "donor": np.repeat(ph.index.to_numpy(), n_cells)})
    with pytest.raises(ValueError, match="not independent replicates"):
        oi.tl.associate(table, ph, "pheno", sample_key="donor", model="ols")
