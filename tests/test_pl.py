"""Figures draw what they claim: one artist per input group, valid files, clear errors."""

from __future__ import annotations

import anndata as ad
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from matplotlib.collections import LineCollection, PathCollection, PolyCollection, QuadMesh
from matplotlib.patches import PathPatch, Rectangle

import osteoimmune as oi

MAGIC = {".png": b"\x89PNG\r\n\x1a\n", ".pdf": b"%PDF-", ".svg": b"<?xml"}


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


@pytest.fixture
def cells():
    rng = np.random.default_rng(0)
    n = 240
    obs = pd.DataFrame({
        "cell_type": pd.Categorical(rng.choice(["cMono", "ncMono", "Mac", "cDC"], n),
                                    categories=["cMono", "ncMono", "Mac", "cDC", "absent"]),
        "condition": rng.choice(["sham", "ovx"], n),
    }, index=[f"cell{i}" for i in range(n)])
    adata = ad.AnnData(X=np.zeros((n, 2), dtype=np.float32), obs=obs,
                       obsm={"X_umap": rng.normal(size=(n, 2)),
                             "X_pca": rng.normal(size=(n, 5))})
    scores = pd.DataFrame({"trained": rng.normal(size=n), "resorption": rng.normal(size=n),
                           "trained_pval": rng.uniform(size=n)}, index=obs.index)
    return adata, scores


@pytest.fixture
def samples():
    rng = np.random.default_rng(1)
    ids = [f"d{i:02d}" for i in range(12)]
    ph = pd.DataFrame({"bmd": rng.normal(1.0, 0.1, 12), "age": rng.uniform(40, 80, 12),
                       "sex": rng.choice(["F", "M"], 12), "status": ["op"] * 6 + ["ctl"] * 6},
                      index=ids)
    rows = []
    for g in ["cMono", "Mac"]:
        for s in ["trained", "resorption"]:
            for i, d in enumerate(ids):
                rows.append({"sample": d, "group": g, "signature": s,
                             "value": 2.0 * ph["bmd"].iloc[i] + rng.normal(0, 0.05),
                             "n_cells": 50})
    per_sample = pd.DataFrame(rows)
    results = pd.DataFrame({
        "signature": ["trained", "trained", "resorption", "resorption", "extra"],
        "group": ["cMono", "Mac", "cMono", "Mac", "cMono"],
        "phenotype": "bmd", "model": "ols", "n": 12,
        "effect": [0.8, 0.1, -0.5, 0.02, 0.3],
        "ci_low": [0.5, -0.2, -0.8, -0.3, -0.1],
        "ci_high": [1.1, 0.4, -0.2, 0.34, 0.7],
        "pvalue": [1e-5, 0.5, 0.004, 0.9, 0.2],
        "qvalue": [5e-5, 0.62, 0.01, 0.9, 0.33],
    })
    return per_sample, ph, results


# ------------------------------------------------------------------ scores_by_group
@pytest.mark.parametrize("hue", [None, "condition"])
def test_violins_one_per_group(cells, hue):
    adata, scores = cells
    ax = oi.pl.scores_by_group(adata, scores, "cell_type", signatures="trained", hue=hue)
    violins = [c for c in ax.collections if isinstance(c, PolyCollection)]
    n_groups = adata.obs["cell_type"].nunique()  # the unused category draws nothing
    n_hue = adata.obs["condition"].nunique() if hue else 1
    assert len(violins) == n_groups * n_hue
    assert [t.get_text() for t in ax.get_xticklabels()] == ["cMono", "ncMono", "Mac", "cDC"]


def test_boxes_one_per_group_and_hue(cells):
    adata, scores = cells
    ax = oi.pl.scores_by_group(adata.obs, scores, "cell_type", signatures="trained",
                               hue="condition", kind="box")
    boxes = [p for p in ax.patches if isinstance(p, PathPatch)]
    assert len(boxes) == 4 * 2
    legend_labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert sorted(legend_labels) == ["ovx", "sham"]


def test_scores_by_group_grid_one_panel_per_signature(cells):
    adata, scores = cells
    fig = oi.pl.scores_by_group(adata, scores, "cell_type")
    visible = [a for a in fig.axes if a.get_visible()]
    # *_pval columns are not scores
    assert sorted(a.get_title() for a in visible) == ["resorption", "trained"]


def test_scores_by_group_errors(cells):
    adata, scores = cells
    with pytest.raises(KeyError, match="not a column of obs"):
        oi.pl.scores_by_group(adata, scores, "tissue")
    with pytest.raises(KeyError, match="not among the score columns"):
        oi.pl.scores_by_group(adata, scores, "cell_type", signatures="nope")
    with pytest.raises(ValueError, match="kind="):
        oi.pl.scores_by_group(adata, scores, "cell_type", kind="swarm")
    _, ax = plt.subplots()
    with pytest.raises(ValueError, match="one panel"):
        oi.pl.scores_by_group(adata, scores, "cell_type", ax=ax)
    with pytest.raises(ValueError, match="does not match"):
        oi.pl.scores_by_group(adata, scores.iloc[:10].set_axis([f"x{i}" for i in range(10)]),
                              "cell_type")


# ------------------------------------------------------------------ scores_embedding
def test_embedding_points_and_colours(cells):
    adata, scores = cells
    ax = oi.pl.scores_embedding(adata, scores, "trained")
    pts = [c for c in ax.collections if isinstance(c, PathCollection)]
    assert len(pts) == 1
    assert pts[0].get_offsets().shape == (adata.n_obs, 2)
    # the colours encode the scores: colour array equals the score values (sorted order)
    arr = np.asarray(pts[0].get_array())
    assert np.allclose(np.sort(arr), np.sort(scores["trained"].to_numpy()))
    assert ax.get_title() == "trained"
    assert "trained" not in adata.obs.columns  # input untouched


def test_embedding_grid_and_obsm_key(cells):
    adata, scores = cells
    adata.obsm["module_scores"] = scores
    fig = oi.pl.scores_embedding(adata, "module_scores", basis="pca")
    titles = sorted(a.get_title() for a in fig.axes if a.get_title())
    assert titles == ["resorption", "trained"]
    emb_axes = [a for a in fig.axes if any(isinstance(c, PathCollection) for c in a.collections)]
    assert len(emb_axes) == 2


def test_embedding_missing_basis_names_fix(cells):
    adata, scores = cells
    del adata.obsm["X_umap"]
    with pytest.raises(KeyError, match=r"sc\.tl\.umap"):
        oi.pl.scores_embedding(adata, scores, "trained")
    with pytest.raises(KeyError, match="not a key of adata.obsm"):
        oi.pl.scores_embedding(adata, "aucell_scores", basis="pca")


# ------------------------------------------------------------------ association_scatter
def test_scatter_points_line_and_colour(samples):
    per_sample, ph, results = samples
    ax = oi.pl.association_scatter(per_sample, ph, "trained", "bmd", group="cMono",
                                   color="sex", results=results)
    pts = [c for c in ax.collections if isinstance(c, PathCollection)]
    assert len(pts) == 1 and pts[0].get_offsets().shape[0] == len(ph)
    # x = phenotype, y = score for each sample
    sub = per_sample[(per_sample.signature == "trained") & (per_sample.group == "cMono")]
    off = pts[0].get_offsets()
    assert np.allclose(np.sort(off[:, 0]), np.sort(ph["bmd"].to_numpy()))
    assert np.allclose(np.sort(off[:, 1]), np.sort(sub["value"].to_numpy()))
    # regression line equals numpy's least-squares fit, and a CI band is drawn
    line = ax.lines[0]
    slope, intercept = np.polyfit(off[:, 0], off[:, 1], 1)
    xd, yd = line.get_data()
    assert np.allclose(yd, intercept + slope * np.asarray(xd))
    assert any(isinstance(c, PolyCollection) for c in ax.collections)
    # colours follow the covariate: two legend entries F, M
    assert sorted(t.get_text() for t in ax.get_legend().get_texts()) == ["F", "M"]
    assert len({tuple(c) for c in pts[0].get_facecolors()}) == 2
    assert "q = 5e-05" in ax.get_title()


def test_scatter_numeric_colour_adds_colorbar_and_band_covers_line(samples):
    per_sample, ph, _ = samples
    ax = oi.pl.association_scatter(per_sample, ph, "trained", "bmd", group="Mac", color="age")
    assert len(ax.figure.axes) == 2  # plot + colorbar
    band = [c for c in ax.collections if isinstance(c, PolyCollection)][0]
    verts = band.get_paths()[0].vertices
    line_y = ax.lines[0].get_data()[1]
    assert verts[:, 1].min() < line_y.min() and verts[:, 1].max() > line_y.max()


def test_scatter_binary_phenotype_no_line(samples):
    per_sample, ph, _ = samples
    ax = oi.pl.association_scatter(per_sample, ph, "trained", "status", group="Mac")
    assert len(ax.lines) == 0
    assert [t.get_text() for t in ax.get_xticklabels()] == ["ctl", "op"]
    assert ax.collections[0].get_offsets().shape[0] == 12


def test_scatter_errors(samples):
    per_sample, ph, _ = samples
    with pytest.raises(ValueError, match="several groups"):
        oi.pl.association_scatter(per_sample, ph, "trained", "bmd")
    with pytest.raises(KeyError, match="not a column of phenotypes"):
        oi.pl.association_scatter(per_sample, ph, "trained", "height", group="Mac")
    with pytest.raises(KeyError, match="signature 'x'"):
        oi.pl.association_scatter(per_sample, ph, "x", "bmd", group="Mac")
    with pytest.raises(ValueError, match="lacks column"):
        oi.pl.association_scatter(per_sample.drop(columns="value"), ph, "trained", "bmd")
    with pytest.raises(ValueError, match="index"):
        oi.pl.association_scatter(per_sample, ph.set_axis([f"z{i}" for i in range(12)]),
                                  "trained", "bmd", group="Mac")


# ------------------------------------------------------------------ forest
def test_forest_one_bar_per_row_and_q_marks(samples):
    _, _, results = samples
    ax = oi.pl.forest(results)
    n = len(results)
    err_lines = [c for c in ax.collections if isinstance(c, LineCollection)]
    assert len(err_lines) == n  # one CI bar per signature × group
    assert len(ax.get_yticklabels()) == n
    labels = {t.get_text() for t in ax.get_yticklabels()}
    assert "trained · cMono" in labels and "extra · cMono" in labels
    n_sig = int((results["qvalue"] < 0.05).sum())
    q_texts = [t for t in ax.texts if t.get_text().startswith("q=")]
    assert len(q_texts) == n_sig == 2
    # CI extents equal the table's
    segs = np.concatenate([c.get_segments() for c in err_lines])
    assert np.allclose(sorted(s[0][0] for s in segs), sorted(results["ci_low"]))
    assert np.allclose(sorted(s[1][0] for s in segs), sorted(results["ci_high"]))


def test_forest_requires_choice_between_phenotypes(samples):
    _, _, results = samples
    two = pd.concat([results, results.assign(phenotype="status")])
    with pytest.raises(ValueError, match="several phenotypes"):
        oi.pl.forest(two)
    ax = oi.pl.forest(two, phenotype="status")
    assert len(ax.get_yticklabels()) == len(results)
    with pytest.raises(ValueError, match="lacks column"):
        oi.pl.forest(results.drop(columns="ci_low"))


# ------------------------------------------------------------------ heatmap
def test_heatmap_cells_and_stars(samples):
    _, _, results = samples
    ax = oi.pl.association_heatmap(results)
    mesh = [c for c in ax.collections if isinstance(c, QuadMesh)][0]
    arr = mesh.get_array()
    assert arr.shape == (3, 2)  # 3 signatures × 2 cell types
    assert int(np.ma.count_masked(arr)) == 1  # extra × Mac absent
    assert np.isclose(arr[0, 0], 0.8)  # trained × cMono
    stars = [t.get_text() for t in ax.texts]
    assert sorted(stars) == ["*", "***"]  # q = 0.01 and q = 5e-5
    assert [t.get_text() for t in ax.get_xticklabels()] == ["cMono", "Mac"]
    vmin, vmax = mesh.get_clim()
    assert np.isclose(-vmin, vmax)


def test_heatmap_duplicate_rows_error(samples):
    _, _, results = samples
    with pytest.raises(ValueError, match="several models"):
        oi.pl.association_heatmap(pd.concat([results, results.assign(model="spearman")]))


# ------------------------------------------------------------------ coverage
def test_coverage_bars_equal_found_genes():
    cov = pd.DataFrame({"n_requested": [10, 20, 5], "n_found": [10, 8, 0],
                        "n_missing": [0, 12, 5]},
                       index=pd.Index(["a", "b", "c"], name="signature"))
    cov["coverage"] = cov.n_found / cov.n_requested
    ax = oi.pl.signature_coverage(cov)
    found = [p for p in ax.patches if isinstance(p, Rectangle) and p.get_gid() == "found"]
    missing = [p for p in ax.patches if isinstance(p, Rectangle) and p.get_gid() == "missing"]
    assert len(found) == len(missing) == 3
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert labels == ["a", "b", "c"]  # sorted by found fraction, top to bottom
    widths = {lab: (f.get_width(), m.get_width()) for lab, f, m in
              zip(labels, sorted(found, key=lambda p: -p.get_y()),
                  sorted(missing, key=lambda p: -p.get_y()))}
    assert widths == {"a": (10, 0), "b": (8, 12), "c": (0, 5)}
    red = [t.get_text() for t in ax.get_yticklabels() if t.get_color() == "#D55E00"]
    assert red == ["b", "c"]


def test_coverage_from_real_score_call(synthetic):
    sigs = {"s1": ["G10", "G11", "G12", "NOT_A_GENE"], "s2": ["G20", "G21"]}
    scores = oi.tl.score(synthetic, sigs, method="zmean", progress=False)
    ax = oi.pl.signature_coverage(scores.attrs["coverage"])
    found = {round(p.get_width()) for p in ax.patches if p.get_gid() == "found"}
    assert found == {3, 2}


def test_coverage_rejects_wrong_table():
    with pytest.raises(ValueError, match=r"attrs\[\"coverage\"\]"):
        oi.pl.signature_coverage(pd.DataFrame({"x": [1]}))


# ------------------------------------------------------------------ saving
@pytest.mark.parametrize("ext", [".png", ".pdf", ".svg"])
def test_save_formats_valid_files(samples, tmp_path, ext):
    from PIL import Image

    _, _, results = samples
    path = tmp_path / "sub" / f"forest{ext}"
    oi.pl.forest(results, save=path)
    data = path.read_bytes()
    assert len(data) > 1000
    assert data.startswith(MAGIC[ext])
    if ext == ".png":
        with Image.open(path) as im:
            im.verify()


def test_save_is_deterministic(samples, tmp_path):
    _, _, results = samples
    oi.pl.association_heatmap(results, save=tmp_path / "a.pdf")
    plt.close("all")
    oi.pl.association_heatmap(results, save=tmp_path / "b.pdf")
    assert (tmp_path / "a.pdf").read_bytes() == (tmp_path / "b.pdf").read_bytes()


def test_save_bad_extension_fails_before_drawing(samples, tmp_path):
    _, _, results = samples
    n_before = len(plt.get_fignums())
    with pytest.raises(ValueError, match=r"\.png, \.pdf, \.svg"):
        oi.pl.forest(results, save=tmp_path / "forest.jpg")
    assert len(plt.get_fignums()) == n_before


def test_ax_is_used(samples):
    _, _, results = samples
    fig, (a1, a2) = plt.subplots(1, 2)
    out = oi.pl.forest(results, ax=a2)
    assert out is a2 and len(a1.collections) == 0


def test_palette_is_okabe_ito():
    pal = oi.pl.categorical_palette(["a", "b", "c"])
    assert pal == {"a": "#E69F00", "b": "#56B4E9", "c": "#009E73"}
    assert len(oi.pl.categorical_palette(range(10))) == 10
