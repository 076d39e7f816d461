"""Determinism: every public function run twice gives identical output.

Each call is made twice with a *different* global numpy random state in between (so a
hidden use of ``np.random`` shows up), and outputs are compared exactly (frames, AnnData in
depth, figure SVG bytes). The pipeline runs twice in fresh interpreters with different
``PYTHONHASHSEED`` values (so set/dict-order dependence shows up) and every table, GMT,
figure and the provenance record are compared, excluding only timestamps and durations.
"""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
import warnings
from pathlib import Path

import anndata as ad
import matplotlib
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import yaml
from conftest import SHARED_DATA, require_file
from test_bad_inputs import assert_same

import osteoimmune as oi

matplotlib.use("Agg")


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def twice(fn, *args, **kwargs):
    """Run ``fn`` twice under different global numpy random states; return both outputs."""
    np.random.seed(1)  # noqa: NPY002 - perturb the legacy global state on purpose
    a = fn(*args, **kwargs)
    np.random.seed(2)  # noqa: NPY002
    _ = np.random.random(17)  # noqa: NPY002
    b = fn(*args, **kwargs)
    return a, b


def _attrs(df: pd.DataFrame) -> str:
    """``.attrs`` as JSON, without the wall time of the call (the one volatile field)."""
    attrs = json.loads(json.dumps(df.attrs, default=str))
    if isinstance(attrs.get("params"), dict):
        attrs["params"].pop("seconds", None)
    return json.dumps(attrs, sort_keys=True)


def assert_identical(a, b) -> None:
    if isinstance(a, pd.DataFrame):
        pd.testing.assert_frame_equal(a, b, check_exact=True)
        assert _attrs(a) == _attrs(b)
    else:
        assert_same(a, b)


@pytest.fixture(scope="module")
def cohort():
    return oi.datasets.simulate_cohort(n_donors=8, cells_per_donor=40, random_state=3)


@pytest.fixture(scope="module")
def lib():
    return oi.signatures.load().select(names=["trained_immunity_bcg_shared",
                                              "osteoclast_resorption",
                                              "HALLMARK_TNFA_SIGNALING_VIA_NFKB"])


@pytest.fixture(scope="module")
def scores(cohort, lib):
    return oi.tl.score(cohort, lib, method="zmean", progress=False)


@pytest.fixture(scope="module")
def per_sample(cohort, scores):
    return oi.tl.aggregate(cohort, scores, "donor", "cell_type", min_cells=3)


@pytest.fixture(scope="module")
def donors(cohort):
    return oi.datasets.donor_table(cohort)


# ---------------------------------------------------------------------- data and signatures
def test_simulate_cohort():
    a, b = twice(oi.datasets.simulate_cohort, n_donors=6, cells_per_donor=30, random_state=5)
    assert_same(a, b)


def test_signature_library_and_conversions(tmp_path):
    a, b = twice(lambda: oi.signatures.load().to_frame())
    assert_identical(a, b)
    sig = oi.signatures.load()["osteoclast_resorption"]
    a, b = twice(lambda: sig.to_species("mouse", warn_unmapped=False))
    assert a == b
    lib = oi.signatures.load()
    a, b = twice(lambda: lib.to_gmt(tmp_path / "lib.gmt").read_bytes())
    assert a == b
    a, b = twice(lambda: oi.signatures.read_gmt(tmp_path / "lib.gmt").to_dict())
    assert a == b


def test_datasets_load_real_file():
    require_file(SHARED_DATA / "ucell_sample_matrix" / "ucell_sample_matrix.h5ad")
    a, b = twice(oi.datasets.load, "ucell_sample_matrix", download=False, progressbar=False)
    assert_same(a, b)


def test_bulk_preprocessing():
    rng = np.random.default_rng(0)
    counts = rng.poisson(20, size=(6, 12)).astype(np.float64)
    bulk = ad.AnnData(counts, obs=pd.DataFrame(index=[f"s{i}" for i in range(6)]),
                      var=pd.DataFrame(index=[f"P{j}" for j in range(12)]))
    a, b = twice(oi.pp.normalize_bulk, bulk)
    assert_same(a, b)
    mapping = {f"P{j}": f"GENE{j // 3}" for j in range(12)}  # four probes per... three
    a, b = twice(oi.pp.collapse_ids, a, mapping)
    assert_same(a, b)


# ---------------------------------------------------------------------- analysis verbs
@pytest.mark.parametrize("method", ["module", "zmean", "aucell", "ucell", "scdrs"])
def test_score(cohort, lib, method):
    kw = {"n_ctrl": 50} if method == "scdrs" else {}
    a, b = twice(oi.tl.score, cohort, lib, method=method, progress=False, **kw)
    assert_identical(a, b)
    assert_identical(oi.tl.coverage(a), oi.tl.coverage(b))


@pytest.mark.parametrize("method", ["module", "zmean", "aucell", "scdrs"])
def test_score_independent_of_thread_count(cohort, lib, method):
    """The gene statistics kernels split the genes into one range per numba thread; a
    gene's sums keep the row order, so scores are bit-identical on 1 thread and on all."""
    import numba

    kw = {"n_ctrl": 50} if method == "scdrs" else {}
    n = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = oi.tl.score(cohort, lib, method=method, progress=False, **kw)
    finally:
        numba.set_num_threads(n)
    every = oi.tl.score(cohort, lib, method=method, progress=False, **kw)
    assert_identical(one, every)


def test_score_inplace(cohort, lib):
    x, y = cohort.copy(), cohort.copy()
    np.random.seed(1)  # noqa: NPY002 - perturb the legacy global state on purpose
    oi.tl.score(x, lib, method="module", inplace=True, progress=False)
    np.random.seed(2)  # noqa: NPY002
    oi.tl.score(y, lib, method="module", inplace=True, progress=False)
    for key in ("seconds",):  # wall time is the one field allowed to differ
        x.uns["osteoimmune"]["module_scores"]["params"].pop(key)
        y.uns["osteoimmune"]["module_scores"]["params"].pop(key)
    assert_identical(x.obsm["module_scores"], y.obsm["module_scores"])
    assert_same(x, y)


def test_select_myeloid_by_annotation(cohort):
    a, b = twice(oi.pp.select_myeloid, cohort, "cell_type")
    assert_same(a, b)
    a, b = twice(oi.pp.map_myeloid_labels, cohort.obs["cell_type"])
    assert_identical(a, b)


def test_select_myeloid_by_markers():
    """PCA, neighbours, Leiden and marker scores all take random_state."""
    small = oi.datasets.simulate_cohort(n_donors=4, cells_per_donor=40, random_state=4)
    a, b = twice(oi.pp.select_myeloid, small, random_state=0)
    assert_same(a, b)


@pytest.mark.parametrize("stat", ["mean", "median", "fraction_above"])
def test_aggregate(cohort, scores, stat):
    kw = {"threshold": 0.0} if stat == "fraction_above" else {}
    a, b = twice(oi.tl.aggregate, cohort, scores, "donor", "cell_type", stat=stat,
                 min_cells=3, **kw)
    assert_identical(a, b)


@pytest.mark.parametrize("model, phenotype", [("ols", "bmd"), ("logit", "osteoporosis"),
                                              ("spearman", "bmd"), ("permutation", "bmd")])
def test_associate(per_sample, donors, model, phenotype):
    kw = {"n_perm": 99} if model == "permutation" else {}
    covs = [] if model == "logit" else ["age"]
    a, b = twice(oi.tl.associate, per_sample, donors, phenotype, covariates=covs,
                 model=model, **kw)
    assert_identical(a, b)


def test_associate_permutation_depends_only_on_random_state(per_sample, donors):
    a = oi.tl.associate(per_sample, donors, "bmd", model="permutation", n_perm=99,
                        random_state=1)
    b = oi.tl.associate(per_sample, donors, "bmd", model="permutation", n_perm=99,
                        random_state=2)
    assert not np.array_equal(a["pvalue"].to_numpy(), b["pvalue"].to_numpy())  # it is used


def test_associate_mixedlm(cohort, scores, donors):
    cells = scores.copy()
    cells["donor"] = cohort.obs["donor"].astype(str).to_numpy()
    cells["cell_type"] = cohort.obs["cell_type"].astype(str).to_numpy()
    cells = cells[cells["cell_type"] == "classical monocyte"]
    a, b = twice(oi.tl.associate, cells.drop(columns="cell_type"), donors, "bmd",
                 model="mixedlm", sample_key="donor")
    assert_identical(a, b)


def test_meta_analyze(per_sample, donors):
    r1 = oi.tl.associate(per_sample, donors, "bmd")
    r2 = oi.tl.associate(per_sample, donors, "bmd", covariates=["age"])
    a, b = twice(oi.tl.meta_analyze, [r1, r2])
    assert_identical(a, b)


# ---------------------------------------------------------------------- figures
def _svg(fig_or_ax) -> bytes:
    import matplotlib.pyplot as plt

    fig = fig_or_ax if hasattr(fig_or_ax, "savefig") else getattr(fig_or_ax, "figure", None)
    if fig is None:  # a grid or a seaborn object
        fig = plt.gcf()
    buf = io.BytesIO()
    with matplotlib.rc_context({"svg.hashsalt": "osteoimmune"}):
        fig.savefig(buf, format="svg", metadata={"Date": None})
    plt.close("all")
    return buf.getvalue()


def test_figures(cohort, scores, per_sample, donors):
    res = oi.tl.associate(per_sample, donors, "bmd", covariates=["age"])
    for draw in (lambda: oi.pl.forest(res),
                 lambda: oi.pl.association_heatmap(res),
                 lambda: oi.pl.signature_coverage(oi.tl.coverage(scores)),
                 lambda: oi.pl.scores_by_group(cohort, scores, "cell_type")):
        a, b = twice(lambda draw=draw: _svg(draw()))
        assert a == b


# ---------------------------------------------------------------------- the pipeline
CONFIG = {
    "dataset": {"source": "simulated", "simulate": {"n_donors": 8, "cells_per_donor": 30}},
    "signatures": {"names": ["trained_immunity_bcg_shared", "osteoclast_resorption"]},
    "scoring": {"methods": ["module"]},
    "aggregation": {"min_cells": 3},
    "association": {"phenotypes": ["bmd"], "covariates": ["age"],
                    "models": ["ols", "permutation"], "n_perm": 49},
    "figures": {"formats": ["png", "svg"], "embedding": "pca", "max_scatter": 1},
    "progress": False,
}
#: provenance fields that record when and how long, not what
VOLATILE = {"started", "finished", "timings_seconds", "command"}


def _run_cli(config: Path, out: Path, hashseed: str) -> None:
    env = {**os.environ, "PYTHONHASHSEED": hashseed, "MPLBACKEND": "Agg"}
    proc = subprocess.run([sys.executable, "-m", "osteoimmune.cli", "run", str(config),
                           "--out", str(out), "--quiet"], env=env, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr


def _strip_report(html: str, steps) -> str:
    """The report without its timestamps and step durations."""
    html = re.sub(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}[+\-]\d{2}:\d{2}", "<time>", html)
    html = re.sub(r"(wall time \(s\)</t[dh]>\s*<td>)[^<]*", r"\1<s>", html)
    for step in steps:
        html = re.sub(rf"(<th>{re.escape(step)}</th><td>)[0-9.]+(</td>)", r"\1<s>\2", html)
    return html


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("determinism")
    config = tmp / "config.yaml"
    config.write_text(yaml.safe_dump(CONFIG))
    outs = [tmp / "run_a", tmp / "run_b"]
    _run_cli(config, outs[0], "1")
    _run_cli(config, outs[1], "2")
    return outs


def test_pipeline_twice_gives_identical_outputs(two_runs):
    a, b = two_runs
    files_a = sorted(str(p.relative_to(a)) for p in a.rglob("*") if p.is_file())
    files_b = sorted(str(p.relative_to(b)) for p in b.rglob("*") if p.is_file())
    assert files_a == files_b
    assert {"associations.csv", "per_sample.csv", "coverage.csv", "scores.parquet",
            "signatures.gmt", "provenance.json", "report.html"} <= set(files_a)
    for name in files_a:
        pa, pb = a / name, b / name
        if name == "provenance.json":
            ja, jb = json.loads(pa.read_text()), json.loads(pb.read_text())
            for k in VOLATILE:
                ja.pop(k, None)
                jb.pop(k, None)
            # the report embeds the run time, so its checksum is volatile too
            ja["outputs_sha256"].pop("report.html")
            jb["outputs_sha256"].pop("report.html")
            assert ja == jb
        elif name == "report.html":
            steps = json.loads((a / "provenance.json").read_text())["timings_seconds"]
            assert _strip_report(pa.read_text(), steps) == _strip_report(pb.read_text(), steps)
        elif name.endswith(".parquet"):
            pd.testing.assert_frame_equal(pd.read_parquet(pa), pd.read_parquet(pb),
                                          check_exact=True)
        else:
            assert pa.read_bytes() == pb.read_bytes(), name


def test_pipeline_tables_are_not_trivial(two_runs):
    res = pd.read_csv(two_runs[0] / "associations.csv")
    assert set(res["model"]) == {"ols", "permutation"}
    assert res["pvalue"].notna().sum() > 0
    assert sp is not None  # (scipy imported for AnnData comparison helpers)
