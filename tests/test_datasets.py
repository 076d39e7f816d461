"""Registry, checksum-verified cache, readers and harmonisation of the real data sets."""

from __future__ import annotations

import functools
import gzip
import shutil
import warnings

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.io
import scipy.sparse as sp
import yaml
from click.testing import CliRunner
from conftest import SHARED_DATA, require_file

import osteoimmune as oi
from osteoimmune.cli import main
from osteoimmune.datasets import DatasetFileError, get_entry, read_registry, sha256sum

REAL = ["kang2018_muscat_example", "gse176265_rankl_timecourse", "tay_macrophage_memory",
        "ucell_sample_matrix", "gse56815_pheno", "gse7429_pheno"]


def _required_paths(name):
    return [SHARED_DATA / f["path"] for f in get_entry(name)["files"] if not f.get("optional")]


@functools.cache
def _load(name):
    """Load once per session (tests only read the result)."""
    for p in _required_paths(name):
        require_file(p)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return oi.datasets.load(name, cache_dir=SHARED_DATA, download=False)


# ------------------------------------------------------------------ registry
def test_registry_covers_every_shared_file_with_its_provenance_checksum():
    reg = read_registry()
    registered = {f["path"]: f["sha256"] for e in reg.values() for f in e["files"]}
    # every data file in the shared folder is registered (README/PROVENANCE are notes)
    on_disk = [p for p in SHARED_DATA.rglob("*") if p.is_file() and p.parent != SHARED_DATA]
    if not on_disk:
        pytest.skip(f"no shared data under {SHARED_DATA}")
    for p in on_disk:
        rel = p.relative_to(SHARED_DATA).as_posix()
        assert rel in registered, f"{rel} is not registered"
        assert registered[rel] == sha256sum(p), f"{rel}: registry sha256 differs from the file"


def test_registry_entries_are_complete_and_unverified_ones_marked():
    reg = read_registry()
    assert set(REAL) <= set(reg)
    for name, e in reg.items():
        assert e["citation"].get("text") and e["licence"], name
        for f in e["files"]:
            if f.get("sha256") is None and not f.get("optional"):
                assert e["verified"] is False, f"{name}: {f['path']} has no checksum"
    for geo in ("gse56815", "gse7429"):
        assert reg[geo]["verified"] is False
        assert reg[geo]["files"][0]["url"].startswith("https://ftp.ncbi.nlm.nih.gov/geo/series/")


def test_list_is_a_table_with_cache_state(tmp_path):
    table = oi.datasets.list(cache_dir=tmp_path)
    assert isinstance(table, pd.DataFrame)
    assert set(REAL) <= set(table.index)
    assert not table["cached"].any()  # empty cache
    assert {"species", "data_type", "verified", "citation", "licence"} <= set(table.columns)


def test_unknown_name_lists_the_registered_ones():
    with pytest.raises(KeyError, match="Registered: .*kang2018_muscat_example"):
        oi.datasets.load("no_such_set")


def test_bad_registry_is_refused(tmp_path):
    path = tmp_path / "reg.yaml"
    path.write_text(yaml.safe_dump({"datasets": {"x": {"title": "x"}}}))
    with pytest.raises(ValueError, match="lacks the field"):
        read_registry(path)


# ------------------------------------------------------------------ cache and checksums
def test_corrupted_cached_copy_is_refused_and_left_untouched(tmp_path):
    src = require_file(SHARED_DATA / "gse56815_gse7429_pheno" / "datMeta_GSE7429_GPL96.csv")
    dest = tmp_path / "gse56815_gse7429_pheno" / src.name
    dest.parent.mkdir(parents=True)
    data = bytearray(src.read_bytes())
    data[200] = ord("9") if data[200] != ord("9") else ord("8")  # one byte changed
    dest.write_bytes(bytes(data))
    with pytest.raises(DatasetFileError, match="sha256.*will not be used"):
        oi.datasets.load("gse7429_pheno", cache_dir=tmp_path, download=False)
    assert dest.read_bytes() == bytes(data)  # not overwritten or deleted
    # the intact copy is a cache hit
    shutil.copy(src, dest)
    assert oi.datasets.load("gse7429_pheno", cache_dir=tmp_path, download=False).n_obs == 20


def test_missing_file_without_download_names_the_fix(tmp_path):
    with pytest.raises(DatasetFileError, match="downloading is off.*datasets fetch"):
        oi.datasets.load("gse7429_pheno", cache_dir=tmp_path, download=False)
    # a derived file has no URL: the error says so and how to provide it
    with pytest.raises(DatasetFileError, match="no public download URL"):
        oi.datasets.load("kang2018_muscat_example", cache_dir=tmp_path)


def test_env_var_sets_the_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("OSTEOIMMUNE_DATA_DIR", str(tmp_path))
    assert oi.datasets.default_cache_dir() == tmp_path
    monkeypatch.delenv("OSTEOIMMUNE_DATA_DIR")
    assert "osteoimmune" in str(oi.datasets.default_cache_dir())


# ------------------------------------------------------------------ real data sets
@pytest.mark.realdata
@pytest.mark.parametrize("name", REAL)
def test_every_real_set_loads_with_harmonised_columns_and_citation(name, tmp_path):
    adata = _load(name)
    for col in oi.datasets.STANDARD_COLUMNS:
        assert col in adata.obs.columns, f"{name}: {col} missing"
    ds = adata.uns["dataset"]
    assert ds["name"] == name and ds["simulated"] is False
    assert ds["citation"]["text"] and ds["licence"]
    assert adata.uns["osteoimmune"]["species"] in ("human", "mouse")
    assert adata.uns["osteoimmune"]["data_type"] == get_entry(name)["data_type"]
    assert adata.obs_names.is_unique and adata.var_names.is_unique
    adata.write_h5ad(tmp_path / "x.h5ad")  # the registry metadata in .uns is h5ad-writable
    assert ad.read_h5ad(tmp_path / "x.h5ad").uns["dataset"]["name"] == name


@pytest.mark.realdata
def test_kang_counts_in_x_and_harmonised_design():
    adata = _load("kang2018_muscat_example")
    assert adata.shape == (1556, 1267)
    assert "logcounts" in adata.layers
    x = adata.X.data
    assert np.array_equal(x, np.round(x))  # raw counts
    design = adata.obs[["sample", "donor", "condition"]].drop_duplicates()
    assert len(design) == 4
    assert set(adata.obs["donor"]) == {"patient_101", "patient_107"}
    assert set(adata.obs["condition"]) == {"ctrl", "stim"}
    assert (adata.obs["sample"] == adata.obs["sample_id"]).all()
    # documented check: ISG15 much higher in stimulated CD14+ monocytes
    mono = adata[adata.obs["cell_type"] == "CD14+ Monocytes"]
    isg = np.asarray(mono[:, "ISG15"].layers["logcounts"].todense()).ravel()
    stim = mono.obs["condition"].to_numpy() == "stim"
    assert isg[stim].mean() > isg[~stim].mean() + 3


@pytest.mark.realdata
def test_gse176265_probes_collapse_to_symbols_by_highest_mean():
    adata = _load("gse176265_rankl_timecourse")
    assert adata.n_obs == 24
    assert sorted(adata.obs["time"].unique()) == [0, 24, 48, 72]
    assert (adata.obs.groupby("time").size() == 6).all()
    assert adata.obs["geo_sample"].iloc[0] == "GSM5361091"
    assert adata.obs["geo_sample"].iloc[-1] == "GSM5361114"
    mapping = adata.uns["osteoimmune"]["id_mapping"]
    assert mapping["rule"] == "max_mean"
    assert mapping["n_ids"] == 8785 and mapping["n_unmapped"] == 969  # 7,816 probes map
    # the kept probe of each multi-probe gene is the one with the highest mean
    raw = pd.read_csv(SHARED_DATA / "gse176265_rankl_timecourse" /
                      "GSE176265_ANOVA_significant_probes.csv").set_index("0").drop(
                          columns="probe")
    multi = adata.var[adata.var["n_ids"] > 1]
    assert len(multi) > 100
    for sym, row in multi.head(50).iterrows():
        probes = row["ids"].split(";")
        best = raw.loc[probes].mean(axis=1).idxmax()
        assert row["selected_id"] == best
        np.testing.assert_allclose(adata[:, sym].X.ravel(), raw.loc[best].to_numpy())
    # documented biology (PROVENANCE): Ctsk mean rises 0 h -> 48 h
    ctsk = pd.Series(adata[:, "Ctsk"].X.ravel(), index=adata.obs["time"].to_numpy())
    means = ctsk.groupby(level=0).mean()
    assert means[48] > means[0] + 2


@pytest.mark.realdata
def test_tay_entrez_ids_to_mouse_symbols_counts_summed():
    adata = _load("tay_macrophage_memory")
    assert adata.n_obs == 33
    assert adata.uns["osteoimmune"]["data_type"] == "rnaseq"
    assert np.array_equal(adata.X, adata.layers["counts"])
    assert np.array_equal(adata.X, np.round(adata.X))
    mapping = adata.uns["osteoimmune"]["id_mapping"]
    assert mapping["rule"] == "sum" and mapping["n_unmapped"] == 1037
    for gene in ("Il1b", "Cxcl10", "Adgre1", "Csf1r"):
        assert gene in adata.var_names
    # sample sheet agrees with the names and is merged; condition is readable
    assert set(adata.obs["group"]) == {"CF", "CL", "CT", "FC", "FF", "FL", "FP", "FT", "PF",
                                       "PL", "PT"}
    assert adata.obs.loc["CL_1", "condition"] == "CpG -> LPS"
    # documented biology: Il1b CPM FF ~1 vs FL ~2,318 (PROVENANCE)
    norm = oi.pp.normalize_bulk(adata, method="log2cpm")
    il1b = pd.Series(2 ** norm[:, "Il1b"].X.ravel() - 1, index=adata.obs["group"].to_numpy())
    g = il1b.groupby(level=0).mean()
    assert g["FF"] < 20 and 1500 < g["FL"] < 3500 and g["CL"] < g["FL"] / 2


@pytest.mark.realdata
def test_tay_sample_sheet_is_optional(tmp_path):
    src = require_file(SHARED_DATA / "tay_macrophage_memory" / "merged_FC.csv")
    (tmp_path / "tay_macrophage_memory").mkdir()
    (tmp_path / "tay_macrophage_memory" / "merged_FC.csv").symlink_to(src)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a = oi.datasets.load("tay_macrophage_memory", cache_dir=tmp_path, download=False)
        b = _load("tay_macrophage_memory")
    cols = ["group", "first_stimulus", "second_stimulus", "replicate", "condition"]
    assert a.obs[cols].astype(str).equals(b.obs[cols].astype(str))


@pytest.mark.realdata
def test_pheno_sheets_harmonise_bmd_groups():
    a = _load("gse56815_pheno")
    assert a.n_obs == 80 and a.n_vars == 0
    assert a.obs["low_bmd"].dtype == bool and a.obs["low_bmd"].sum() == 40
    assert pd.crosstab(a.obs["bmd_group"], a.obs["menopause"]).to_numpy().tolist() == \
        [[20, 20], [20, 20]]
    assert (a.obs["donor"] == a.obs_names).all()
    b = _load("gse7429_pheno")
    assert b.n_obs == 20 and b.obs["low_bmd"].sum() == 10
    assert set(b.obs["menopause"]) == {"post"}
    assert b.obs["age"].between(54, 60).all()


# ------------------------------------------------------------------ generic readers
def _custom_registry(entry_name, entry):
    reg = read_registry()
    base = dict(reg["gse7429_pheno"])
    base.update(entry)
    base["name"] = entry_name
    return {entry_name: base}


def test_10x_mtx_reader(tmp_path):
    folder = tmp_path / "toy10x"
    folder.mkdir()
    m = sp.random(5, 3, density=0.6, format="coo", random_state=0) * 10
    m.data = np.ceil(m.data)
    with gzip.open(folder / "matrix.mtx.gz", "wb") as fh:
        scipy.io.mmwrite(fh, m)  # genes x cells, as 10x writes it
    genes = "".join(f"ENSG{i}\tGENE{i}\tGene Expression\n" for i in range(5))
    cells = "".join(f"AAAC{i}-1\n" for i in range(3))
    for name, text in (("features.tsv.gz", genes), ("barcodes.tsv.gz", cells)):
        with gzip.open(folder / name, "wt") as fh:
            fh.write(text)
    files = [{"role": r, "path": f"toy10x/{n}", "url": None, "format": "10x_mtx",
              "sha256": sha256sum(folder / n)}
             for r, n in (("matrix", "matrix.mtx.gz"), ("features", "features.tsv.gz"),
                          ("barcodes", "barcodes.tsv.gz"))]
    reg = _custom_registry("toy10x", {"reader": "10x_mtx", "files": files, "data_type":
                                      "single_cell", "harmonize": {"columns": {}}})
    adata = oi.datasets.load("toy10x", cache_dir=tmp_path, registry=reg)
    assert adata.shape == (3, 5)
    assert list(adata.var_names) == [f"GENE{i}" for i in range(5)]
    np.testing.assert_array_equal(adata.X.toarray(), m.toarray().T)


def test_geo_series_matrix_and_annot_reader(tmp_path):
    sm = tmp_path / "GSE1_series_matrix.txt.gz"
    lines = [
        '!Series_title\t"toy"',
        '!Sample_title\t"s1"\t"s2"\t"s3"',
        '!Sample_geo_accession\t"GSM1"\t"GSM2"\t"GSM3"',
        '!Sample_characteristics_ch1\t"bmd: high"\t"bmd: low"\t"bmd: low"',
        '!Sample_characteristics_ch1\t"age: 50"\t"age: 61"\t"age: 70"',
        "!series_matrix_table_begin",
        '"ID_REF"\t"GSM1"\t"GSM2"\t"GSM3"',
        '"p1"\t1.0\t2.0\t3.0',
        '"p2"\t5.0\t5.0\t5.0',
        '"p3"\t7.0\t8.0\t9.0',
        '"p4"\t0.5\tnull\t0.5',
        "!series_matrix_table_end",
    ]
    with gzip.open(sm, "wt") as fh:
        fh.write("\n".join(lines) + "\n")
    annot = tmp_path / "GPL1.annot.gz"
    with gzip.open(annot, "wt") as fh:
        fh.write("^Annotation\n!platform_table_begin\nID\tGene title\tGene symbol\n"
                 "p1\tx\tGENEA\np2\tx\tGENEA\np3\tx\tGENEB///GENEC\np4\tx\t\n"
                 "!platform_table_end\n")
    files = [{"role": "matrix", "path": sm.name, "url": None, "format": "geo_series_matrix",
              "sha256": sha256sum(sm)},
             {"role": "platform_annot", "path": annot.name, "url": None, "format": "geo_annot",
              "sha256": sha256sum(annot)}]
    reg = _custom_registry("toygeo", {
        "reader": "geo_series_matrix", "files": files, "data_type": "microarray",
        "options": {"id_map": {"role": "platform_annot", "from": "ID", "to": "Gene symbol"},
                    "collapse": "max_mean"},
        "harmonize": {"columns": {"sample": "@index", "phenotype": "bmd"}}})
    with pytest.warns(UserWarning, match="2 of 4 ids have no single gene symbol"):
        adata = oi.datasets.load("toygeo", cache_dir=tmp_path, registry=reg)
    assert list(adata.obs_names) == ["GSM1", "GSM2", "GSM3"]
    assert list(adata.obs["phenotype"]) == ["high", "low", "low"]
    assert list(adata.obs["age"]) == ["50", "61", "70"]
    assert list(adata.var_names) == ["GENEA"]  # multi-gene p3 and empty p4 dropped
    assert adata.var.loc["GENEA", "selected_id"] == "p2"  # mean 5 > mean 2
    np.testing.assert_array_equal(adata.X.ravel(), [5.0, 5.0, 5.0])


# ------------------------------------------------------------------ CLI
def test_cli_list_info_fetch(tmp_path):
    runner = CliRunner()
    res = runner.invoke(main, ["datasets", "list", "--cache-dir", str(tmp_path)])
    assert res.exit_code == 0, res.output
    assert "kang2018_muscat_example" in res.output and "gse56815" in res.output
    res = runner.invoke(main, ["datasets", "info", "tay_macrophage_memory"])
    assert res.exit_code == 0
    info = yaml.safe_load(res.output)
    assert info["citation"]["doi"] == "10.5281/zenodo.14337874"
    res = runner.invoke(main, ["datasets", "info", "nope"])
    assert res.exit_code == 2 and "Registered" in res.output
    # fetch without download into an empty cache fails with exit code 1 and says why
    res = runner.invoke(main, ["datasets", "fetch", "gse7429_pheno", "--cache-dir",
                               str(tmp_path), "--no-download"])
    assert res.exit_code == 1 and "downloading is off" in res.output


@pytest.mark.realdata
def test_cli_fetch_verifies_cached_files():
    for p in _required_paths("gse176265_rankl_timecourse"):
        require_file(p)
    res = CliRunner().invoke(main, ["datasets", "fetch", "gse176265_rankl_timecourse",
                                    "--cache-dir", str(SHARED_DATA), "--no-download"])
    assert res.exit_code == 0, res.output
    assert res.output.count("verified matrix") == 1 and "verified probe_map" in res.output
    assert "absent series_matrix (optional)" in res.output
