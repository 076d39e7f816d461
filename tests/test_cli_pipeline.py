"""`osteoimmune demo` end to end, and `osteoimmune run` configuration errors (exit code 2)."""

from __future__ import annotations

import hashlib
import json
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest
import yaml
from click.testing import CliRunner

from osteoimmune.cli import main
from osteoimmune.pipeline import OUTPUT_FILES, REQUIRED_KEYS

DEMO_ARGS = ["--n-donors", "16", "--cells-per-donor", "150", "--quiet"]
MAGIC = {".png": b"\x89PNG\r\n\x1a\n", ".pdf": b"%PDF-"}


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "run"
    res = CliRunner().invoke(main, ["demo", "--out", str(out), *DEMO_ARGS])
    assert res.exit_code == 0, res.output
    return out


def test_demo_writes_every_output(demo_dir):
    for name in OUTPUT_FILES:
        assert (demo_dir / name).is_file(), name
        assert (demo_dir / name).stat().st_size > 0, name
    # no temporary sibling left behind
    assert [p.name for p in demo_dir.parent.iterdir()] == [demo_dir.name]


def test_demo_recovers_planted_signature(demo_dir):
    prov = json.loads((demo_dir / "provenance.json").read_text())
    truth = prov["truth"]
    assert prov["simulated_data"] is True
    res = pd.read_csv(demo_dir / "associations.csv")
    planted = res[(res.signature == truth["signature"]) & (res.group == truth["cell_type"])
                  & (res.phenotype == truth["phenotype"])]
    assert len(planted) == 1
    row = planted.iloc[0]
    assert row.qvalue < 0.05
    # the planted direction: higher signature, lower BMD
    assert truth["direction"] == "negative" and row.effect < 0 and row.ci_high < 0
    # the planted pair is the strongest association of the run
    top = res.sort_values("pvalue").iloc[0]
    assert (top.signature, top.group) == (truth["signature"], truth["cell_type"])


def test_demo_tables_consistent(demo_dir):
    scores = pd.read_parquet(demo_dir / "scores.parquet")
    per_sample = pd.read_csv(demo_dir / "per_sample.csv")
    res = pd.read_csv(demo_dir / "associations.csv")
    prov = json.loads((demo_dir / "provenance.json").read_text())
    assert len(scores) == prov["n_myeloid_cells"]
    assert per_sample["sample"].nunique() == prov["n_samples"] == 16
    # per-sample values are the mean of the cell scores of each sample × group
    sig = prov["truth"]["signature"]
    col = f"zmean:{sig}"
    means = scores.groupby(["sample", "group"])[col].mean()
    ps = per_sample[per_sample.signature == sig].set_index(["sample", "group"])["value"]
    assert ps.index.isin(means.index).all()
    assert (means.loc[ps.index] - ps).abs().max() < 1e-9
    # every signature x group tested appears in per_sample
    pairs = set(map(tuple, per_sample[["signature", "group"]].drop_duplicates().to_numpy()))
    assert set(map(tuple, res[["signature", "group"]].to_numpy())) <= pairs
    # q-values are BH of the p-values of the run (one family: one method, one model)
    from statsmodels.stats.multitest import multipletests

    ok = res.pvalue.notna()
    q = multipletests(res.pvalue[ok], method="fdr_bh")[1]
    assert abs(q - res.qvalue[ok]).max() < 1e-12
    cov = pd.read_csv(demo_dir / "coverage.csv", index_col=0)
    gmt_names = [ln.split("\t")[0] for ln in (demo_dir / "signatures.gmt").read_text()
                 .splitlines() if ln]
    assert sorted(cov.index) == sorted(gmt_names) == sorted(res.signature.unique())


def test_demo_figures_valid(demo_dir):
    from PIL import Image

    figs = sorted((demo_dir / "figures").iterdir())
    stems = {p.stem for p in figs}
    for expected in ("signature_coverage", "scores_embedding_zmean", "scores_by_group_zmean",
                     "forest_zmean_ols_bmd", "association_heatmap_zmean_ols_bmd",
                     "association_scatter_1"):
        assert expected in stems
    for p in figs:
        data = p.read_bytes()
        assert len(data) > 2000, p.name
        assert data.startswith(MAGIC[p.suffix]), p.name
        if p.suffix == ".png":
            with Image.open(p) as im:
                assert im.size[0] > 200 and im.size[1] > 200
                im.verify()
    # each figure in both configured formats
    assert {p.stem for p in figs if p.suffix == ".png"} == {p.stem for p in figs
                                                             if p.suffix == ".pdf"}


def test_demo_provenance(demo_dir):
    prov = json.loads((demo_dir / "provenance.json").read_text())
    roles = {r["role"]: r for r in prov["inputs"]}
    assert {"dataset", "signatures"} <= set(roles)
    assert len(roles["dataset"]["sha256"]) == 64
    assert roles["signatures"]["sha256"] == _sha(demo_dir / "signatures.gmt")
    # the recorded dataset digest is the content digest of the same simulation
    import osteoimmune as oi
    from osteoimmune.pipeline._provenance import adata_sha256

    cohort = oi.datasets.simulate_cohort(n_donors=16, cells_per_donor=150, random_state=0)
    assert roles["dataset"]["sha256"] == adata_sha256(cohort)
    for name, digest in prov["outputs_sha256"].items():
        assert _sha(demo_dir / name) == digest, name
    assert prov["random_seeds"]["random_state"] == 0
    assert prov["packages"]["osteoimmune"] != "not installed"
    assert set(prov["timings_seconds"]) >= {"load data", "score", "associate", "figures",
                                            "total"}
    assert prov["config"]["dataset"]["simulate"] == {"n_donors": 16, "cells_per_donor": 150}


class _Tags(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags: list[tuple[str, dict]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))


def test_demo_report_standalone_and_labelled(demo_dir):
    html = (demo_dir / "report.html").read_text(encoding="utf-8")
    assert html.startswith("<!DOCTYPE html>")
    assert "SIMULATED" in html
    parser = _Tags()
    parser.feed(html)
    imgs = [a for t, a in parser.tags if t == "img"]
    n_png = len(list((demo_dir / "figures").glob("*.png")))
    assert len(imgs) == n_png
    assert all(a["src"].startswith("data:image/png;base64,") for a in imgs)
    # no external resource of any kind
    for tag, attrs in parser.tags:
        for key in ("src", "href"):
            if key in attrs:
                assert attrs[key].startswith(("data:", "#")), (tag, attrs[key][:60])
    assert "<script" not in html and "http://" not in html.split("<pre>")[0]
    prov = json.loads((demo_dir / "provenance.json").read_text())
    assert prov["truth"]["signature"] in html


def test_demo_refuses_existing_output_then_force(demo_dir, tmp_path):
    out = tmp_path / "again"
    out.mkdir()
    (out / "keep.txt").write_text("user file")
    res = CliRunner().invoke(main, ["demo", "--out", str(out), *DEMO_ARGS])
    assert res.exit_code == 2
    assert "--force" in res.output
    assert (out / "keep.txt").read_text() == "user file"


def test_demo_print_config_is_a_valid_run_config(tmp_path):
    res = CliRunner().invoke(main, ["demo", "--print-config"])
    assert res.exit_code == 0
    cfg = yaml.safe_load(res.output)
    from osteoimmune.pipeline import validate_config

    assert validate_config(cfg)["dataset"]["source"] == "simulated"


def test_help_documents_exit_codes():
    for cmd in ("run", "demo"):
        res = CliRunner().invoke(main, [cmd, "--help"])
        assert res.exit_code == 0
        assert "Exit codes" in res.output and "130" in res.output


# ------------------------------------------------------------------ config errors
BASE = {
    "dataset": {"source": "simulated", "simulate": {"n_donors": 6, "cells_per_donor": 20}},
    "signatures": ["trained_immunity_bcg_shared"],
    "association": {"phenotypes": ["bmd"]},
}


def _without(cfg: dict, dotted: str) -> dict:
    import copy

    out = copy.deepcopy(cfg)
    node = out
    parts = dotted.split(".")
    for p in parts[:-1]:
        node = node[p]
    del node[parts[-1]]
    return out


@pytest.mark.parametrize("key", REQUIRED_KEYS)
def test_missing_required_key_exit_2(tmp_path, key):
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(_without(BASE, key)))
    out = tmp_path / "out"
    res = CliRunner().invoke(main, ["run", str(path), "--out", str(out)])
    assert res.exit_code == 2, res.output
    assert f"'{key}'" in res.output and "missing" in res.output
    assert not out.exists()


@pytest.mark.parametrize("patch, key", [
    ({"dataset": {"source": "simulated", "sampel_key": "donor"}}, "dataset.sampel_key"),
    ({"scoring": {"methods": ["gsva"]}}, "scoring.methods"),
    ({"association": {"phenotypes": ["bmd"], "models": ["anova"]}}, "association.models"),
    ({"association": {"phenotypes": "bmd", "alpha": 2.0}}, "association.alpha"),
    ({"figures": {"formats": ["jpg"]}}, "figures.formats"),
    ({"dataset": {"source": "missing_file.h5ad"}}, "dataset.source"),
    ({"random_state": "zero"}, "random_state"),
])
def test_bad_value_names_key_exit_2(tmp_path, patch, key):
    cfg = {**BASE, **patch}
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    res = CliRunner().invoke(main, ["run", str(path), "--out", str(tmp_path / "out")])
    assert res.exit_code == 2, res.output
    assert key in res.output


def test_unparseable_yaml_exit_2(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text("dataset: [unclosed\n")
    res = CliRunner().invoke(main, ["run", str(path), "--out", str(tmp_path / "out")])
    assert res.exit_code == 2
    assert "not valid YAML" in res.output
