"""run_pipeline: config validation, atomic outputs, determinism, file inputs with checksums."""

from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path

import pandas as pd
import pytest
import yaml

import osteoimmune as oi
from osteoimmune.pipeline import (
    ConfigError,
    OutputExistsError,
    run_pipeline,
    validate_config,
)

SIM = {"n_donors": 8, "cells_per_donor": 60}
FAST = {
    "dataset": {"source": "simulated", "simulate": SIM},
    "signatures": {"names": ["trained_immunity_bcg_shared", "osteoclast_resorption"]},
    "scoring": {"methods": ["zmean"]},
    "aggregation": {"min_cells": 3},
    "association": {"phenotypes": ["bmd"], "covariates": ["age"]},
    "figures": {"formats": ["png"], "embedding": "none", "max_scatter": 1},
    "progress": False,
}


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# ------------------------------------------------------------------ validation
def test_defaults_filled_and_normalised():
    cfg = validate_config({"dataset": {"source": "simulated"}, "signatures": "osteoclast_fusion",
                           "association": {"phenotypes": "bmd"}})
    assert cfg["signatures"] == {"names": ["osteoclast_fusion"], "tags": [], "gmt": None}
    assert cfg["association"]["phenotypes"] == ["bmd"]
    assert cfg["association"]["models"] == ["ols"]
    assert cfg["scoring"]["methods"] == ["module"]
    assert cfg["figures"]["formats"][0] == "png"  # the report embeds PNG
    assert cfg["random_state"] == 0


def test_validation_does_not_mutate_input():
    raw = copy.deepcopy(FAST)
    validate_config(raw)
    assert raw == FAST


@pytest.mark.parametrize("raw, match", [
    (None, "empty"),
    ([1, 2], "mapping"),
    ({**FAST, "dataset": "simulated"}, "'dataset' must be a mapping"),
    ({**FAST, "scoring": {"method": ["zmean"]}}, "Did you mean 'scoring.methods'"),
    ({**FAST, "aggregation": {"stat": "fraction_above"}}, "aggregation.threshold"),
    ({**FAST, "aggregation": {"min_cells": 0}}, "aggregation.min_cells"),
    ({**FAST, "association": {"phenotypes": ["bmd"], "covariates": ["bmd"]}}, "share"),
    ({**FAST, "association": {"phenotypes": []}}, "association.phenotypes"),
    ({**FAST, "signatures": {"names": [], "tags": []}}, "selects nothing"),
    ({**FAST, "signatures": {"gmt": "nope.gmt"}}, "signatures.gmt"),
    ({**FAST, "scoring": {"methods": ["zmean"], "options": {"module": {}}}},
     "scoring.options.module"),
    ({**FAST, "progress": "yes"}, "'progress' must be true/false"),
])
def test_validation_errors_name_the_key(raw, match):
    with pytest.raises(ConfigError, match=match):
        validate_config(raw)


def test_unknown_library_names_and_columns_are_config_errors(tmp_path):
    bad = copy.deepcopy(FAST)
    bad["signatures"] = {"names": ["trained_immunity_bcg_shard"]}
    with pytest.raises(ConfigError, match="Did you mean 'trained_immunity_bcg_shared'"):
        run_pipeline(bad, tmp_path / "a", quiet=True)
    bad = copy.deepcopy(FAST)
    bad["association"]["phenotypes"] = ["height"]
    with pytest.raises(ConfigError, match=r"association.phenotypes.*\['height'\]"):
        run_pipeline(bad, tmp_path / "b", quiet=True)
    bad = copy.deepcopy(FAST)
    bad["dataset"]["sample_key"] = "patient"
    with pytest.raises(ConfigError, match="dataset.sample_key"):
        run_pipeline(bad, tmp_path / "c", quiet=True)
    assert list(tmp_path.iterdir()) == []  # nothing written by a refused run


# ------------------------------------------------------------------ runs
@pytest.fixture(scope="module")
def fast_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("fast") / "run"
    return run_pipeline(FAST, out, quiet=True)


def test_run_result_matches_files(fast_run):
    out = fast_run.out
    res = pd.read_csv(out / "associations.csv")
    assert len(res) == len(fast_run.associations)
    assert set(res.columns) >= {"score_method", "signature", "group", "phenotype", "model", "n",
                                "effect", "ci_low", "ci_high", "pvalue", "qvalue"}
    assert (res.score_method == "zmean").all()
    # covariate used: n equals the samples with the cell type
    assert set(fast_run.figures) == {str(p.relative_to(out))
                                     for p in (out / "figures").iterdir()}


def test_run_is_deterministic(fast_run, tmp_path):
    again = run_pipeline(FAST, tmp_path / "again", quiet=True)
    for name in ("associations.csv", "per_sample.csv", "coverage.csv", "signatures.gmt"):
        assert _sha(fast_run.out / name) == _sha(again.out / name), name
    a = pd.read_parquet(fast_run.out / "scores.parquet")
    b = pd.read_parquet(again.out / "scores.parquet")
    pd.testing.assert_frame_equal(a, b)


def test_failed_run_leaves_nothing(tmp_path, monkeypatch):
    def boom(*args, **kwargs):
        raise RuntimeError("simulated failure in the association step")

    monkeypatch.setattr(oi.tl, "associate", boom)
    with pytest.raises(RuntimeError, match="simulated failure"):
        run_pipeline(FAST, tmp_path / "out", quiet=True)
    assert list(tmp_path.iterdir()) == []  # no output folder, no temporary folder


def test_interrupted_run_leaves_previous_output_intact(fast_run, tmp_path, monkeypatch):
    import shutil

    out = tmp_path / "out"
    shutil.copytree(fast_run.out, out)
    before = {p.name: _sha(p) for p in out.iterdir() if p.is_file()}

    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(oi.tl, "aggregate", interrupt)
    with pytest.raises(KeyboardInterrupt):
        run_pipeline(FAST, out, quiet=True, force=True)
    after = {p.name: _sha(p) for p in out.iterdir() if p.is_file()}
    assert before == after
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_existing_output_needs_force(fast_run, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "old.txt").write_text("old")
    with pytest.raises(OutputExistsError, match="--force"):
        run_pipeline(FAST, out, quiet=True)
    assert (out / "old.txt").exists()
    run_pipeline(FAST, out, quiet=True, force=True)
    assert not (out / "old.txt").exists()
    assert (out / "provenance.json").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_file_inputs_h5ad_gmt_phenotypes_with_checksums(tmp_path):
    cohort = oi.datasets.simulate_cohort(**SIM, random_state=1).copy()
    donors = oi.datasets.donor_table(cohort)
    cohort.obs = cohort.obs[["donor", "cell_type"]].rename(columns={"donor": "patient"})
    cohort.uns = {}
    h5ad = tmp_path / "cohort.h5ad"
    cohort.write_h5ad(h5ad)
    pheno = tmp_path / "donors.csv"
    donors[["bmd", "age", "sex"]].to_csv(pheno)
    gmt = tmp_path / "sets.gmt"
    lib = oi.signatures.load()
    gmt.write_text("my_set\tdesc\t" + "\t".join(lib["trained_immunity_bcg_shared"].genes[:20])
                   + "\n")
    cfg = {
        "dataset": {"source": "cohort.h5ad", "sample_key": "patient", "phenotypes": "donors.csv"},
        "signatures": {"gmt": "sets.gmt", "names": ["osteoclast_resorption"]},
        "scoring": {"methods": ["zmean", "module"]},
        "aggregation": {"min_cells": 3},
        "association": {"phenotypes": ["bmd"], "covariates": ["sex"],
                        "models": ["ols", "spearman"]},
        "figures": {"formats": ["png", "svg"], "embedding": "pca", "max_scatter": 1},
        "random_state": 3,
    }
    cfg_path = tmp_path / "config.yaml"
    cfg_path.write_text(yaml.safe_dump(cfg))
    result = run_pipeline(cfg_path, tmp_path / "out", quiet=True)
    prov = json.loads((result.out / "provenance.json").read_text())
    digests = {r["role"]: r["sha256"] for r in prov["inputs"]}
    assert digests["config"] == _sha(cfg_path)
    assert digests["dataset"] == _sha(h5ad)
    assert digests["phenotypes"] == _sha(pheno)
    assert digests["signatures_gmt"] == _sha(gmt)
    assert prov["simulated_data"] is False
    assert prov["random_seeds"]["random_state"] == 3
    assert prov["keys"]["sample_key"] == "patient"
    res = result.associations
    assert set(res.score_method) == {"zmean", "module"}
    assert set(res.model) == {"ols", "spearman"}
    assert set(res.signature) == {"my_set", "osteoclast_resorption"}
    # one BH family per scoring method x model
    from statsmodels.stats.multitest import multipletests

    for _, fam in res.dropna(subset=["pvalue"]).groupby(["score_method", "model"]):
        assert abs(multipletests(fam.pvalue, method="fdr_bh")[1] - fam.qvalue).max() < 1e-12
    svgs = list((result.out / "figures").glob("*.svg"))
    assert svgs and all(p.read_bytes().startswith(b"<?xml") for p in svgs)
    assert (result.out / "figures" / "scores_embedding_zmean.png").exists()
    html = (result.out / "report.html").read_text()
    assert "SIMULATED DATA" not in html  # a file input is not labelled simulated


def test_phenotypes_from_sample_level_obs_columns():
    import anndata as ad
    import numpy as np

    from osteoimmune.pipeline._config import validate_config as _v
    from osteoimmune.pipeline._run import _phenotype_table

    obs = pd.DataFrame({"patient": ["p1", "p1", "p2", "p2", "p3"],
                        "bmd": [0.7, 0.7, 0.9, 0.9, 0.8],
                        "cell_type": ["a", "b", "a", "b", "a"]},
                       index=[f"c{i}" for i in range(5)])
    adata = ad.AnnData(X=np.zeros((5, 1), dtype=np.float32), obs=obs)
    adata.uns["donor_table"] = pd.DataFrame({"bmd": [1.0]}, index=["other"])  # not these ids
    table, recs = _phenotype_table(_v(FAST), adata, "patient")
    assert recs == []
    assert list(table.index) == ["p1", "p2", "p3"]
    assert "cell_type" not in table.columns  # varies within a sample
    assert table["bmd"].tolist() == [0.7, 0.9, 0.8]
