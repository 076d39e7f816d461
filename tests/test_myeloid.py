"""oi.pp.select_myeloid: annotation mapping and marker scoring at cluster level."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from conftest import SHARED_DATA, require_file

import osteoimmune as oi
from osteoimmune._utils import OsteoimmuneWarning

EXPECTED = {
    "CD14+ Monocyte": "classical monocyte", "CD14+ Monocytes": "classical monocyte",
    "CD14 Mono": "classical monocyte", "Ly6C-hi monocytes": "classical monocyte",
    "Classical monocytes": "classical monocyte",
    "FCGR3A+ Monocytes": "non-classical monocyte", "CD16+ Mono": "non-classical monocyte",
    "Non-classical monocytes": "non-classical monocyte", "Ly6Clo monocytes":
        "non-classical monocyte", "CD14-CD16+ monocytes": "non-classical monocyte",
    "Dendritic": "cDC", "mDC": "cDC", "cDC1": "cDC", "cDC2": "cDC", "DC": "cDC",
    "pDC": "pDC", "Plasmacytoid dendritic cells": "pDC",
    "Neutrophils": "neutrophil", "PMN": "neutrophil",
    "Macrophage": "macrophage", "Kupffer cells": "macrophage",
    "Monocyte-derived macrophages": "macrophage", "BMDM": "macrophage",
    "Osteoclast": "osteoclast", "pre-OC": "osteoclast",
    "GMP": "myeloid progenitor", "CMP": "myeloid progenitor", "MDP": "myeloid progenitor",
}
NON_MYELOID = ["T cell", "CD4+/CD25 T Reg", "CD8+/CD45RA+ Naive Cytotoxic", "CD56+ NK",
               "CD19+ B", "B cells", "NK cells", "CD34+", "Plasma cells", "Erythrocytes",
               "CD4 T cells"]


def test_label_mapping_vocabulary():
    labels = list(EXPECTED) + NON_MYELOID + ["Mast cells", "cluster 7"]
    table = oi.pp.map_myeloid_labels(labels).set_index("label")
    for lab, typ in EXPECTED.items():
        assert table.loc[lab, "myeloid_type"] == typ, lab
    for lab in NON_MYELOID:
        assert table.loc[lab, "status"] == "non-myeloid", lab
        assert pd.isna(table.loc[lab, "myeloid_type"])
    assert table.loc["Mast cells", "status"] == "other myeloid"
    assert table.loc["cluster 7", "status"] == "not recognised"
    over = oi.pp.map_myeloid_labels(["cluster 7"], mapping={"cluster 7": "macrophage"})
    assert over["myeloid_type"].item() == "macrophage" and over["rule"].item() == "mapping"
    with pytest.raises(ValueError, match="not in the vocabulary"):
        oi.pp.map_myeloid_labels(["x"], mapping={"x": "monocyte"})


def test_annotation_selection_report_mask_and_no_mutation(pbmc68k):
    adata = pbmc68k.copy()
    adata.obs["label"] = adata.obs["bulk_labels"].astype(str)
    adata.obs.loc[adata.obs_names[:5], "label"] = "mystery"
    before = adata.obs.copy()
    with pytest.warns(OsteoimmuneWarning, match=r"'mystery' \(5\).*mapping="):
        out = oi.pp.select_myeloid(adata, annotation_key="label")
    pd.testing.assert_frame_equal(adata.obs, before)          # input untouched
    assert adata.n_obs == 700
    labels = adata.obs["label"]
    expect = labels.isin(["CD14+ Monocyte", "Dendritic"])
    assert out.n_obs == int(expect.sum())
    assert set(out.obs["myeloid_type"]) == {"classical monocyte", "cDC"}
    rep = out.uns["osteoimmune"]["select_myeloid"]["report"].set_index("label")
    assert rep.loc["CD19+ B", "status"] == "non-myeloid" and not rep.loc["CD19+ B", "kept"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", OsteoimmuneWarning)
        mask = oi.pp.select_myeloid(adata, annotation_key="label", return_mask=True,
                                    keep=["cDC"])
    assert mask.dtype == bool and mask.sum() == int((labels == "Dendritic").sum())
    with pytest.raises(KeyError, match="annotation_key"):
        oi.pp.select_myeloid(adata, annotation_key="celltype")
    with pytest.raises(ValueError, match="vocabulary"):
        oi.pp.select_myeloid(adata, annotation_key="label", keep=["monocyte"])


def test_marker_selection_separates_myeloid_from_lymphoid(pbmc68k):
    adata = pbmc68k
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", OsteoimmuneWarning)
        mask = oi.pp.select_myeloid(adata, return_mask=True)        # existing graph
        out = oi.pp.select_myeloid(adata, cluster_key="louvain")
    myeloid = adata.obs["bulk_labels"].isin(["CD14+ Monocyte", "Dendritic"]).to_numpy()
    assert mask[myeloid].mean() > 0.95                 # 367 of 369 in practice
    assert mask[~myeloid].mean() < 0.05                # 4 of 331
    assert set(out.obs["myeloid_type"]) <= {"classical monocyte", "non-classical monocyte",
                                            "cDC", "pDC"}
    rep = out.uns["osteoimmune"]["select_myeloid"]["report"]
    assert {"cluster", "label", "confidence", "ambiguous", "margin"} <= set(rep.columns)
    assert rep["confidence"].between(0, 1).all()
    assert "myeloid_confidence" in out.obs and "myeloid_cluster" in out.obs
    assert "myeloid_type" not in adata.obs


def test_marker_selection_warns_on_ambiguous_clusters(pbmc68k):
    with pytest.warns(OsteoimmuneWarning, match="ambiguous"):
        oi.pp.select_myeloid(pbmc68k, cluster_key="louvain", min_confidence=0.99,
                             return_mask=True)


def test_marker_selection_on_simulated_cohort_labels_known_clusters():
    """Clusters = the simulated cell types: myeloid ones are kept, T/B/NK dropped."""
    cohort = oi.datasets.simulate_cohort(n_donors=4, cells_per_donor=150, random_state=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", OsteoimmuneWarning)
        m1 = oi.pp.select_myeloid(cohort, cluster_key="cell_type", return_mask=True)
        out = oi.pp.select_myeloid(cohort, cluster_key="cell_type")
    np.testing.assert_array_equal(m1, cohort.obs["is_myeloid"].to_numpy(dtype=bool))
    lab = out.obs.groupby("cell_type", observed=True)["myeloid_type"].first()
    assert lab["classical monocyte"] == "classical monocyte"
    assert lab["non-classical monocyte"] == "non-classical monocyte"
    assert lab["neutrophil"] == "neutrophil"
    assert lab["cDC"] == "cDC"


def test_real_kang2018_annotation():
    import anndata as ad

    path = require_file(SHARED_DATA / "kang2018_muscat_example" /
                        "kang2018_muscat_example.h5ad")
    adata = ad.read_h5ad(path)
    out = oi.pp.select_myeloid(adata, annotation_key="cell_type")
    counts = out.obs["myeloid_type"].value_counts()
    assert counts["classical monocyte"] == 400 and counts["non-classical monocyte"] == 249
    assert out.n_obs == int(adata.obs["is_myeloid"].sum())
