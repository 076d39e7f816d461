"""oi.tl.aggregate: per-sample summaries of cell-level scores."""

from __future__ import annotations

import warnings

import anndata as ad
import numpy as np
import pandas as pd
import pytest

import osteoimmune as oi
from osteoimmune._utils import OsteoimmuneWarning


def _cells(seed=0):
    rng = np.random.default_rng(seed)
    n = 200
    obs = pd.DataFrame({
        "donor": rng.choice(["d1", "d2", "d3", "d4"], n),
        "cell_type": rng.choice(["mono", "dc"], n, p=[0.8, 0.2]),
    }, index=[f"c{i}" for i in range(n)])
    # make one donor × type pair tiny: d4/dc has exactly 3 cells
    dc4 = obs.index[(obs.donor == "d4") & (obs.cell_type == "dc")]
    obs.loc[dc4[3:], "cell_type"] = "mono"
    scores = pd.DataFrame({"sigA": rng.normal(size=n), "sigB": rng.gamma(2.0, size=n)},
                          index=obs.index)
    adata = ad.AnnData(obs=obs)          # no X at all: aggregate must never need it
    return adata, scores


def test_values_equal_hand_groupby():
    adata, scores = _cells()
    with pytest.warns(OsteoimmuneWarning, match=r"d4/dc \(3\)"):
        out = oi.tl.aggregate(adata, scores, "donor", groupby="cell_type", min_cells=5)
    assert list(out.columns) == ["sample", "group", "signature", "value", "n_cells"]
    assert not ((out["sample"] == "d4") & (out["group"] == "dc")).any()
    df = scores.join(adata.obs)
    for (s, g), sub in df.groupby(["donor", "cell_type"]):
        rows = out[(out["sample"] == s) & (out["group"] == g)]
        if len(sub) < 5:
            assert rows.empty
            continue
        for sig in ("sigA", "sigB"):
            r = rows[rows["signature"] == sig].iloc[0]
            assert r["value"] == pytest.approx(sub[sig].mean(), abs=1e-12)
            assert r["n_cells"] == len(sub)
    assert out.attrs["dropped"] == [("d4", "dc", 3)]


def test_median_and_fraction_above():
    adata, scores = _cells()
    warnings.simplefilter("ignore", OsteoimmuneWarning)
    med = oi.tl.aggregate(adata, scores, "donor", stat="median", min_cells=1)
    frac = oi.tl.aggregate(adata, scores, "donor", stat="fraction_above",
                           threshold={"sigA": 0.0, "sigB": 2.0}, min_cells=1)
    df = scores.join(adata.obs)
    for s, sub in df.groupby("donor"):
        m = med[(med["sample"] == s) & (med["signature"] == "sigA")]["value"].item()
        assert m == pytest.approx(np.median(sub["sigA"]))
        f = frac[(frac["sample"] == s) & (frac["signature"] == "sigB")]["value"].item()
        assert f == pytest.approx(np.mean(sub["sigB"] > 2.0))
    assert (med["group"] == "all").all()


def test_obsm_key_backed_file_and_no_input_mutation(tmp_path):
    adata, scores = _cells()
    rng = np.random.default_rng(1)
    full = ad.AnnData(X=rng.poisson(1.0, size=(adata.n_obs, 5)).astype(np.float32),
                      obs=adata.obs.copy())
    full.obsm["module_scores"] = scores
    path = tmp_path / "cells.h5ad"
    full.write_h5ad(path)
    backed = ad.read_h5ad(path, backed="r")
    before = backed.obs.copy()
    a = oi.tl.aggregate(backed, "module_scores", "donor", groupby="cell_type", min_cells=1)
    b = oi.tl.aggregate(full, scores, "donor", groupby="cell_type", min_cells=1)
    pd.testing.assert_frame_equal(a, b)
    pd.testing.assert_frame_equal(backed.obs, before)
    assert backed.isbacked
    backed.file.close()


def test_cell_order_invariance_and_subset_scores():
    adata, scores = _cells()
    perm = np.random.default_rng(3).permutation(adata.n_obs)
    a = oi.tl.aggregate(adata, scores, "donor", min_cells=1)
    b = oi.tl.aggregate(adata[perm].copy(), scores.iloc[perm], "donor", min_cells=1)
    pd.testing.assert_frame_equal(a, b)
    with pytest.warns(OsteoimmuneWarning, match="cover 100 of the 200 cells"):
        c = oi.tl.aggregate(adata, scores.iloc[:100], "donor", min_cells=1)
    assert c.groupby("sample")["n_cells"].first().sum() == 100


def test_scdrs_pvalue_columns_left_out():
    adata, scores = _cells()
    scores = scores.assign(sigA_pval=0.5)
    out = oi.tl.aggregate(adata, scores, "donor", min_cells=1)
    assert set(out["signature"]) == {"sigA", "sigB"}


def test_errors_name_problem_and_fix():
    adata, scores = _cells()
    with pytest.raises(ValueError, match="needs threshold"):
        oi.tl.aggregate(adata, scores, "donor", stat="fraction_above")
    with pytest.raises(ValueError, match="not one of"):
        oi.tl.aggregate(adata, scores, "donor", stat="sum")
    with pytest.raises(KeyError, match="not a column of adata.obs"):
        oi.tl.aggregate(adata, scores, "patient")
    with pytest.raises(KeyError, match="not a key of adata.obsm"):
        oi.tl.aggregate(adata, "module_scores", "donor")
    bad = scores.rename(index={"c0": "zz"})
    with pytest.raises(KeyError, match="not cells of adata"):
        oi.tl.aggregate(adata, bad, "donor")
    with pytest.raises(ValueError, match="no sample × group pair"):
        oi.tl.aggregate(adata, scores, "donor", min_cells=10_000)
