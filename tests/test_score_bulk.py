"""Bulk input, species detection and human → mouse conversion inside oi.tl.score."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import pytest

import osteoimmune as oi
from osteoimmune.tl._score import detect_species


def _bulk(symbols, seed=0, n=12, counts=False):
    rng = np.random.default_rng(seed)
    if counts:
        X = rng.negative_binomial(5, 0.01, size=(n, len(symbols))).astype(float)
    else:
        X = rng.normal(7, 1.5, size=(n, len(symbols))).clip(1, 15)
    return ad.AnnData(X, obs=pd.DataFrame(index=[f"s{i}" for i in range(n)]),
                      var=pd.DataFrame(index=symbols))


MOUSE = ["Acp5", "Ctsk", "Mmp9", "Oscar", "Itgb3", "Car2", "Nfatc1", "Fos", "Tnfrsf11a",
         "Csf1r", "Dcstamp", "Ocstamp", "Actb", "Gapdh", "Il1b", "Tnf", "Il6", "Cxcl10"]


def test_detect_species_from_names_and_uns():
    assert detect_species(_bulk(MOUSE)) == "mouse"
    assert detect_species(_bulk([g.upper() for g in MOUSE])) == "human"
    a = _bulk(MOUSE)
    a.uns["dataset"] = {"organism": "Homo sapiens"}
    assert detect_species(a) == "human"  # declared species wins
    e = _bulk([f"ENSMUSG{i:011d}" for i in range(20)])
    assert detect_species(e) == "mouse"
    assert detect_species(_bulk(["a1", "b2"])) is None


def test_human_signature_scored_on_mouse_data_through_orthologs():
    a = _bulk(MOUSE)
    sig = {"resorption": ["ACP5", "CTSK", "MMP9", "OSCAR", "ITGB3", "CA2", "NOT_A_GENE"]}
    s = oi.tl.score(a, sig, method="zmean", progress=False)
    cov = oi.tl.coverage(s)
    assert cov.loc["resorption", "species"] == "mouse"
    assert cov.loc["resorption", "converted_from"] == "human"
    assert cov.loc["resorption", "n_found"] == 6  # CA2 -> Car2 through the MGI pair
    assert cov.loc["resorption", "n_no_ortholog"] == 1
    # the same as scoring the mouse symbols directly
    direct = oi.tl.score(a, {"resorption": ["Acp5", "Ctsk", "Mmp9", "Oscar", "Itgb3", "Car2"]},
                         method="zmean", progress=False)
    np.testing.assert_array_equal(s["resorption"], direct["resorption"])
    # declaring the data human skips the conversion: the mouse genes are then matched by
    # case only
    h = oi.tl.score(a, sig, species="human", method="zmean", progress=False, min_coverage=0)
    assert oi.tl.coverage(h).loc["resorption", "converted_from"] == ""
    with pytest.raises(ValueError, match="species must be"):
        oi.tl.score(a, sig, species="rat", method="zmean", progress=False)


def test_microarray_intensities_are_scored_and_called_samples():
    a = _bulk([g.upper() for g in MOUSE], n=8)
    out = oi.tl.score(a, {"x": ["ACP5", "CTSK", "MMP9"]}, method="module", ctrl_size=3,
                      n_bins=3, progress=False)
    assert out.attrs["params"]["input_scale"] == "log_intensity"
    assert out.shape == (8, 1)


def test_bulk_counts_refused_with_the_bulk_fix_and_no_cells_wording():
    a = _bulk([g.upper() for g in MOUSE], counts=True)
    with pytest.raises(ValueError) as e:
        oi.tl.score(a, {"x": ["ACP5", "CTSK", "MMP9"]}, method="zmean", progress=False)
    msg = str(e.value)
    assert "normalize_bulk" in msg and "samples" in msg and "cells" not in msg
    # after the documented normalisation it scores
    b = oi.pp.normalize_bulk(a)
    oi.tl.score(b, {"x": ["ACP5", "CTSK", "MMP9"]}, method="zmean", progress=False)


def test_single_cell_counts_message_names_normalize_total(synthetic):
    c = synthetic.copy()
    c.X = c.X.copy()
    c.X.data = np.round(np.expm1(c.X.data) * 5) + 1
    with pytest.raises(ValueError, match="normalize_total.*log1p"):
        oi.tl.score(c, {"x": ["G10", "G11"]}, method="module", progress=False)
