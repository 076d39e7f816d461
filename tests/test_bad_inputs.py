"""A catalogue of bad inputs: each gives a clear message (the problem AND the fix) and leaves
the user's data exactly as it was.

Every case builds fresh inputs, snapshots them (deep copies), calls a public entry point and
checks:

- the exception type (or, for the inputs answered with a warning, the warning category and
  that the call still returns a result);
- that the message names the problem (regex ``problem``) and the fix (regex ``fix``);
- that every input AnnData / DataFrame / Series / dict / file is unchanged afterwards (deep
  comparison: X, obs, var, uns, layers, obsm, varm, obsp, raw; file bytes).

A few messy inputs are *accepted by design* (``expect=None``, e.g. donor ids as integers in
one table and strings in the other): for those the case asserts the documented behaviour.

The same table generates ``docs/errors.md``::

    python tests/test_bad_inputs.py --write-docs

and ``test_errors_md_is_current`` fails when the file and the messages drift apart.
"""

from __future__ import annotations

import copy
import re
import sys
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import yaml

import osteoimmune as oi
from osteoimmune._utils import OsteoimmuneWarning
from osteoimmune.datasets import DatasetFileError
from osteoimmune.pipeline import ConfigError, OutputExistsError, run_pipeline

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs" / "errors.md"


# ---------------------------------------------------------------------------- inputs
@cache
def _cohort_base() -> ad.AnnData:
    return oi.datasets.simulate_cohort(n_donors=8, cells_per_donor=30, random_state=0)


def cells() -> ad.AnnData:
    """240 simulated cells × 3000 genes (log-normalised X, counts layer, donors, BMD)."""
    return _cohort_base().copy()


SIG = {"trained": ["ACOD1", "CCL3", "CLEC7A", "CXCL10", "GBP1", "IL1A", "IL6", "TNF"]}


@cache
def _scores_base() -> pd.DataFrame:
    return oi.tl.score(_cohort_base(), SIG, method="zmean", progress=False)


def scores() -> pd.DataFrame:
    return _scores_base().copy()


def phenotypes() -> pd.DataFrame:
    return oi.datasets.donor_table(_cohort_base()).copy()


@cache
def _per_sample_base() -> pd.DataFrame:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", OsteoimmuneWarning)
        return oi.tl.aggregate(_cohort_base(), _scores_base(), "donor", "cell_type",
                               min_cells=3)


def per_sample() -> pd.DataFrame:
    return _per_sample_base().copy()


def wide() -> pd.DataFrame:
    """Samples × signatures (per-donor means over all cells)."""
    s = scores()
    return s.groupby(_cohort_base().obs["donor"].astype(str).to_numpy()).mean()


FAST_CONFIG: dict[str, Any] = {
    "dataset": {"source": "simulated", "simulate": {"n_donors": 8, "cells_per_donor": 40}},
    "signatures": {"names": ["trained_immunity_bcg_shared"]},
    "scoring": {"methods": ["zmean"]},
    "aggregation": {"min_cells": 3},
    "association": {"phenotypes": ["bmd"], "covariates": ["age"]},
    "figures": {"formats": ["png"], "embedding": "none", "max_scatter": 1},
    "progress": False,
}


def config_file(tmp: Path, text: str | None = None, **changes: Any) -> dict:
    """A YAML config in ``tmp`` (FAST_CONFIG with dotted-key ``changes``; ``...`` deletes)."""
    if text is None:
        cfg = copy.deepcopy(FAST_CONFIG)
        for key, value in changes.items():
            node = cfg
            *parents, last = key.split("__")
            for part in parents:
                node = node[part]
            if value is ...:
                del node[last]
            else:
                node[last] = value
        text = yaml.safe_dump(cfg, sort_keys=False)
    path = tmp / "config.yaml"
    path.write_text(text)
    return {"config": path, "out": tmp / "out"}


def run_config(x: dict):
    return run_pipeline(x["config"], x["out"], quiet=True)


def junk_cache(tmp: Path) -> dict:
    """A cache folder holding a corrupted copy of a registered file."""
    entry = oi.datasets.get_entry("kang2018_muscat_example")
    path = tmp / "cache" / entry["files"][0]["path"]
    path.parent.mkdir(parents=True)
    path.write_bytes(b"this is not an h5ad file\n")
    return {"cache": tmp / "cache", "file": path}


# ---------------------------------------------------------------------------- the table
@dataclass(frozen=True)
class Case:
    """One bad input.

    ``expect`` is an exception class, a warning class (the call must still return), or
    None (accepted by design; ``check`` asserts the documented behaviour).
    """

    id: str
    api: str
    bad: str
    build: Callable[[Path], dict]
    call: Callable[[dict], Any]
    expect: type | None
    problem: str = ""
    fix: str = ""
    why: str = ""
    check: Callable[[Any, dict], None] | None = None


def _with(obj, fn):
    fn(obj)
    return obj


def _ensembl(a: ad.AnnData) -> None:
    a.var["symbol"] = a.var_names.to_numpy()
    a.var_names = [f"ENSG{i:011d}" for i in range(a.n_vars)]


def _dup_var(a: ad.AnnData) -> None:
    names = a.var_names.to_numpy().copy()
    names[1] = "ACOD1"  # a signature gene now appears twice
    a.var_names = names


def _counts_in_x(a: ad.AnnData) -> None:
    a.layers["lognorm"] = a.X.copy()
    a.X = a.layers["counts"].copy()


def _nan_in_x(a: ad.AnnData) -> None:
    X = a.X.toarray()
    X[3, a.var_names.get_loc("TNF")] = np.nan
    a.X = sp.csr_matrix(X)


def _mouse_case(a: ad.AnnData) -> None:
    a.var_names = [g[:1] + g[1:].lower() for g in a.var_names]
    a.uns.pop("osteoimmune", None)
    a.uns.pop("dataset", None)


def _labels(a: ad.AnnData, col: str, mapping: dict) -> None:
    a.obs[col] = a.obs["cell_type"].astype(str).replace(mapping).to_numpy()


def _nan_labels(a: ad.AnnData) -> None:
    lab = a.obs["cell_type"].astype(object).to_numpy().copy()
    lab[:5] = np.nan
    a.obs["cell_type"] = lab


def _nan_donor(a: ad.AnnData) -> None:
    d = a.obs["donor"].astype(object).to_numpy().copy()
    d[:3] = np.nan
    a.obs["donor"] = d


def _int_ids(x: dict) -> dict:
    x = dict(x)
    ps = x["per_sample"]
    ps["sample"] = ps["sample"].str[1:].astype(int).astype(str)  # "1".."8" as strings
    ph = x["phenotypes"]
    ph.index = [int(i[1:]) for i in ph.index]  # 1..8 as integers
    return x


def _check_int_ids(result: pd.DataFrame, x: dict) -> None:
    ref = oi.tl.associate(per_sample(), phenotypes(), "bmd")
    np.testing.assert_allclose(result["effect"].to_numpy(), ref["effect"].to_numpy())
    np.testing.assert_allclose(result["pvalue"].to_numpy(), ref["pvalue"].to_numpy())


def _check_mouse(result: pd.DataFrame, x: dict) -> None:
    cov = oi.tl.coverage(result)
    assert cov.loc["trained", "species"] == "mouse"
    assert cov.loc["trained", "converted_from"] == "human"
    assert cov.loc["trained", "n_found"] >= len(SIG["trained"])  # one-to-many orthologs


def _ph(fn: Callable[[pd.DataFrame], None]) -> Callable[[Path], dict]:
    def build(tmp: Path) -> dict:
        ph = phenotypes()
        fn(ph)
        return {"per_sample": per_sample(), "phenotypes": ph}
    return build


def _ps_ph(tmp: Path) -> dict:
    return {"per_sample": per_sample(), "phenotypes": phenotypes()}


def _set(ph: pd.DataFrame, col: str, value) -> None:
    ph[col] = value


def _nan_bmd(ph: pd.DataFrame) -> None:
    ph.iloc[:2, ph.columns.get_loc("bmd")] = np.nan


def _float_index(ph: pd.DataFrame) -> None:
    ph.index = np.arange(1, len(ph) + 1, dtype=float)


def _foreign_index(ph: pd.DataFrame) -> None:
    ph.index = [f"P{i}" for i in range(len(ph))]


def _partial_index(ph: pd.DataFrame) -> None:
    ph.index = list(ph.index[:-2]) + ["X1", "X2"]


def _covariates(ph: pd.DataFrame) -> None:
    rng = np.random.default_rng(0)
    for k in range(4):
        ph[f"c{k}"] = rng.normal(size=len(ph))


def _three_levels(ph: pd.DataFrame) -> None:
    ph["site"] = ["a", "b", "c", "a", "b", "c", "a", "b"]


S, A = "oi.tl.score", "oi.tl.associate"
G, M = "oi.tl.aggregate", "oi.pp.select_myeloid"
D, C = "oi.datasets.load", "osteoimmune run CONFIG"


def _cells(fn=None):
    return lambda tmp: {"adata": cells() if fn is None else _with(cells(), fn)}


def _agg(**kw):
    return lambda x: oi.tl.aggregate(x["adata"], x["scores"], **kw)


def _adata_scores(fn=None, scores_fn=scores):
    return lambda tmp: {"adata": cells() if fn is None else _with(cells(), fn),
                        "scores": scores_fn()}


CASES: list[Case] = [
    # ------------------------------------------------------------------ oi.tl.score
    Case("score_not_anndata", S, "a DataFrame (or matrix) instead of an AnnData",
         lambda tmp: {"df": cells().to_df()}, lambda x: oi.tl.score(x["df"], SIG),
         TypeError, r"must be an AnnData object, got DataFrame", r"anndata\.AnnData\(X"),
    Case("score_unknown_method", S, "unknown method name",
         _cells(), lambda x: oi.tl.score(x["adata"], SIG, method="gsva"),
         ValueError, r"Unknown method 'gsva'", r"choose one of \['aucell'"),
    Case("score_unknown_option", S, "an option the method does not have (typo)",
         _cells(), lambda x: oi.tl.score(x["adata"], SIG, ctrl_siz=50),
         TypeError, r"Unknown option\(s\) for method='module': ctrl_siz",
         r"its options are: ctrl_size"),
    Case("score_bad_option_value", S, "an option value out of range (ctrl_size=0)",
         _cells(), lambda x: oi.tl.score(x["adata"], SIG, ctrl_size=0, progress=False),
         ValueError, r"ctrl_size", r"must be >= 1"),
    Case("score_chunk_size_zero", S, "chunk_size=0",
         _cells(), lambda x: oi.tl.score(x["adata"], SIG, chunk_size=0),
         ValueError, r"chunk_size .*got 0", r"positive integer .*e\.g\. 10_000"),
    Case("score_chunk_size_text", S, "chunk_size as text ('1000')",
         _cells(), lambda x: oi.tl.score(x["adata"], SIG, chunk_size="1000"),
         ValueError, r"chunk_size .*got '1000'", r"positive integer"),
    Case("score_random_state_text", S, "random_state not an integer",
         _cells(), lambda x: oi.tl.score(x["adata"], SIG, random_state="seed"),
         TypeError, r"random_state must be an integer seed or None, got str",
         r"e\.g\. random_state=0"),
    Case("score_min_coverage_percent", S, "min_coverage given in percent (50)",
         _cells(), lambda x: oi.tl.score(x["adata"], SIG, min_coverage=50),
         ValueError, r"min_coverage .*got 50", r"\[0, 1\].*min_coverage=0\.5"),
    Case("score_ensembl_ids", S,
         "var_names are Ensembl ids, symbols in a var column, gene_symbols not given",
         _cells(_ensembl), lambda x: oi.tl.score(x["adata"], SIG, progress=False),
         ValueError, r"none of its 8 genes is in the data", r"gene_symbols="),
    Case("score_unknown_gene_symbols_column", S, "gene_symbols names a missing var column",
         _cells(), lambda x: oi.tl.score(x["adata"], SIG, gene_symbols="symbol"),
         KeyError, r"gene_symbols='symbol' is not a column of adata\.var",
         r"pass the column holding gene symbols, or gene_symbols=None"),
    Case("score_duplicated_var_names", S, "duplicated var names hit by a signature gene",
         _cells(_dup_var), lambda x: oi.tl.score(x["adata"], SIG, progress=False),
         ValueError, r"Gene 'ACOD1' matches several data genes", r"var_names_make_unique"),
    Case("score_counts_in_x_log_in_layer", S,
         "raw counts in X, log-normalised data in a layer",
         _cells(_counts_in_x), lambda x: oi.tl.score(x["adata"], SIG, progress=False),
         ValueError, r"adata\.X looks like raw counts",
         r"adata\.layers holds \['counts', 'lognorm'\].*pass layer="),
    Case("score_nan_in_x", S, "NaN in X (module score)",
         _cells(_nan_in_x), lambda x: oi.tl.score(x["adata"], SIG, progress=False),
         ValueError, r"holds 1 NaN or infinite values", r"np\.nan_to_num"),
    Case("score_nan_in_x_rank_method", S, "NaN in X (UCell, a rank method)",
         _cells(_nan_in_x),
         lambda x: oi.tl.score(x["adata"], SIG, method="ucell", progress=False),
         ValueError, r"holds 1 NaN or infinite values", r"np\.nan_to_num"),
    Case("score_unknown_layer", S, "layer that does not exist",
         _cells(), lambda x: oi.tl.score(x["adata"], SIG, layer="lognorm"),
         KeyError, r"Layer 'lognorm' not found; available layers: \['counts'\]",
         r"layer=None to use adata\.X"),
    Case("score_use_raw_without_raw", S, "use_raw=True but adata.raw is empty",
         _cells(), lambda x: oi.tl.score(x["adata"], SIG, use_raw=True),
         ValueError, r"adata\.raw is empty", r"pass use_raw=False or a layer"),
    Case("score_unknown_species", S, "species other than human/mouse",
         _cells(), lambda x: oi.tl.score(x["adata"], SIG, species="rat"),
         ValueError, r"species must be", r"'human' or 'mouse' \(or None to detect it\)"),
    Case("score_empty_signature", S, "a signature with an empty gene list",
         _cells(), lambda x: oi.tl.score(x["adata"], {"empty": []}),
         ValueError, r"Signature 'empty' has no genes", r"give at least one gene"),
    Case("score_no_signature_gene_in_data", S, "no gene of a signature is in the data",
         _cells(), lambda x: oi.tl.score(x["adata"], {"absent": ["NOTAGENE1", "NOTAGENE2"]},
                                         progress=False),
         ValueError, r"Signature 'absent': none of its 2 genes is in the data",
         r"on_empty='drop'"),
    Case("score_library_name_as_string", S,
         "a library signature name where a GMT path is expected",
         _cells(), lambda x: oi.tl.score(x["adata"], "osteoclast_resorption"),
         FileNotFoundError, r"Signature file 'osteoclast_resorption' does not exist",
         r"oi\.signatures\.load\(\)\.select\(names=\['osteoclast_resorption'\]\)"),
    Case("score_bare_gene_list", S, "a bare list of genes instead of {name: genes}",
         _cells(), lambda x: oi.tl.score(x["adata"], ["TNF", "IL6"]),
         TypeError, r"bare list of 2 gene names", r"pass a dict \{name: \[genes\]\}"),
    Case("score_duplicated_signature_names", S, "two signatures with the same name",
         _cells(), lambda x: oi.tl.score(x["adata"], [
             oi.signatures.Signature("dup", ("TNF",)), oi.signatures.Signature("dup", ("IL6",))]),
         ValueError, r"Duplicated signature names: \['dup'\]", r"must be unique"),
    Case("signature_unknown_name", "oi.signatures.load()[name]",
         "unknown signature name (typo)",
         lambda tmp: {}, lambda x: oi.signatures.load()["osteoclast_resorptoin"],
         KeyError, r"No signature named 'osteoclast_resorptoin'",
         r"Did you mean 'osteoclast_resorption'"),
    Case("score_empty_anndata", S, "an AnnData with no cells (e.g. after a filter)",
         lambda tmp: {"adata": cells()[:0].copy()}, lambda x: oi.tl.score(x["adata"], SIG),
         ValueError, r"adata is empty \(0 × 3000\)", r"Check the filtering or subsetting"),
    Case("score_low_coverage", S, "a signature with most genes absent",
         _cells(), lambda x: oi.tl.score(x["adata"], {"low": ["TNF", "NOPE1", "NOPE2", "NOPE3"]},
                                         progress=False),
         OsteoimmuneWarning, r"Low gene coverage .* low \(1/4\)", r"see the coverage report",
         why="A partial signature still measures something and public gene panels are "
             "incomplete; the score is returned and the coverage report records the "
             "missing genes. No gene at all is an error."),
    Case("score_mouse_case_symbols", S,
         "mouse-case symbols (Il1b) with a human signature",
         _cells(_mouse_case), lambda x: oi.tl.score(x["adata"], SIG, method="zmean",
                                                    progress=False),
         None, check=_check_mouse,
         why="Accepted: the species is read off the symbol case and the signature is "
             "converted through the shipped ortholog table (coverage report: species, "
             "converted_from)."),
    # ------------------------------------------------------------------ select_myeloid
    Case("myeloid_not_anndata", M, "a matrix instead of an AnnData",
         lambda tmp: {"X": cells().X}, lambda x: oi.pp.select_myeloid(x["X"], "cell_type"),
         TypeError, r"must be an AnnData object, got csr_matrix", r"anndata\.AnnData\(X"),
    Case("myeloid_missing_annotation_key", M, "annotation_key not in obs",
         _cells(), lambda x: oi.pp.select_myeloid(x["adata"], "celltype"),
         KeyError, r"annotation_key='celltype' is not a column of adata\.obs",
         r"omit it to select by marker scoring"),
    Case("myeloid_unknown_keep", M, "keep= a type outside the vocabulary",
         _cells(), lambda x: oi.pp.select_myeloid(x["adata"], "cell_type", keep=["monocyte"]),
         ValueError, r"keep=\['monocyte'\] are not vocabulary entries",
         r"choose from \('classical monocyte'"),
    Case("myeloid_bad_mapping", M, "mapping= to a type outside the vocabulary",
         _cells(), lambda x: oi.pp.select_myeloid(x["adata"], "cell_type",
                                                   mapping={"macrophage-like": "mac"}),
         ValueError, r"mapping values \{'macrophage-like': 'mac'\} are not in the vocabulary",
         r"use None for labels that are not myeloid"),
    Case("myeloid_none_found", M, "annotation without any myeloid label",
         _cells(lambda a: a.obs.__setitem__("lineage", "T cell")),
         lambda x: oi.pp.select_myeloid(x["adata"], "lineage"),
         ValueError, r"no myeloid cell was found", r"check annotation_key, mapping or markers"),
    Case("myeloid_missing_cluster_key", M, "cluster_key not in obs (marker selection)",
         _cells(), lambda x: oi.pp.select_myeloid(x["adata"], cluster_key="leiden"),
         KeyError, r"cluster_key='leiden' is not a column of adata\.obs",
         r"omit it to run Leiden"),
    Case("myeloid_contrast_uses_vocabulary", M, "a contrast set named like a myeloid type",
         _cells(), lambda x: oi.pp.select_myeloid(x["adata"],
                                                   contrast_markers={"macrophage": ["CD3E"]}),
         ValueError, r"contrast_markers use vocabulary names \['macrophage'\]",
         r"rename them"),
    Case("myeloid_unrecognised_labels", M, "labels the vocabulary rules do not recognise",
         _cells(lambda a: _labels(a, "annot", {"classical monocyte": "cluster 7"})),
         lambda x: oi.pp.select_myeloid(x["adata"], "annot"),
         OsteoimmuneWarning, r"49 cells with labels not recognised .* 'cluster 7' \(49\)",
         r"Pass mapping=\{label: type\}",
         why="Real annotations use free-text labels; the recognised myeloid cells are still "
             "returned and the warning names each unrecognised label with its cell count, "
             "so nothing is dropped silently."),
    Case("myeloid_missing_labels", M, "NaN cell-type labels",
         _cells(_nan_labels), lambda x: oi.pp.select_myeloid(x["adata"], "cell_type"),
         OsteoimmuneWarning, r"5 cells with labels not recognised", r"Pass mapping=",
         why="Unlabelled cells cannot be called myeloid; they are excluded and counted in "
             "the warning, the labelled cells are kept."),
    # ------------------------------------------------------------------ aggregate
    Case("aggregate_not_anndata", G, "scores passed where the AnnData belongs",
         _adata_scores(), lambda x: oi.tl.aggregate(x["scores"], x["scores"], "donor"),
         TypeError, r"must be an AnnData object, got DataFrame",
         r"pass the AnnData the scores were computed on"),
    Case("aggregate_missing_sample_key", G, "sample_key not in obs",
         _adata_scores(), _agg(sample_key="patient"),
         KeyError, r"sample_key='patient' is not a column of adata\.obs",
         r"\(columns: \['donor'.*pass one of them"),
    Case("aggregate_missing_groupby", G, "groupby not in obs",
         _adata_scores(), _agg(sample_key="donor", groupby="celltype"),
         KeyError, r"groupby='celltype' is not a column of adata\.obs", r"pass one of them"),
    Case("aggregate_unknown_stat", G, "unknown stat",
         _adata_scores(), _agg(sample_key="donor", stat="max"),
         ValueError, r"stat='max' is not one of", r"\('mean', 'median', 'fraction_above'\)"),
    Case("aggregate_fraction_without_threshold", G, "stat='fraction_above' without threshold",
         _adata_scores(), _agg(sample_key="donor", stat="fraction_above"),
         ValueError, r"needs threshold=", r"a number, or a dict"),
    Case("aggregate_min_cells_zero", G, "min_cells=0",
         _adata_scores(), _agg(sample_key="donor", min_cells=0),
         ValueError, r"min_cells .*got 0", r"must be at least 1"),
    Case("aggregate_min_cells_text", G, "min_cells as text",
         _adata_scores(), _agg(sample_key="donor", min_cells="ten"),
         TypeError, r"min_cells must be an integer .*got str 'ten'", r"e\.g\. min_cells=10"),
    Case("aggregate_scores_not_a_table", G, "scores as a numpy array",
         _adata_scores(scores_fn=lambda: scores().to_numpy()), _agg(sample_key="donor"),
         TypeError, r"scores must be the DataFrame returned by oi\.tl\.score",
         r"or a key of adata\.obsm"),
    Case("aggregate_missing_obsm_key", G, "scores= an obsm key that does not exist",
         _cells(), lambda x: oi.tl.aggregate(x["adata"], "module_scores", "donor"),
         KeyError, r"scores='module_scores' is not a key of adata\.obsm",
         r"inplace=True\) first or pass the scores DataFrame"),
    Case("aggregate_scores_of_other_cells", G, "scores computed on another AnnData",
         _adata_scores(scores_fn=lambda: scores().set_axis(
             [f"x{i}" for i in range(240)])), _agg(sample_key="donor"),
         KeyError, r"240 score rows are not cells of adata",
         r"pass the AnnData the scores were computed on"),
    Case("aggregate_unknown_signature", G, "signatures= a column not in the scores",
         _adata_scores(), _agg(sample_key="donor", signatures=["osteoclast"]),
         KeyError, r"signatures \['osteoclast'\] are not score columns", r"\(\['trained'\]\)"),
    Case("aggregate_nothing_left", G, "min_cells larger than every sample",
         _adata_scores(), _agg(sample_key="donor", min_cells=1000),
         ValueError, r"no sample × group pair has at least min_cells=1000",
         r"lower min_cells or check sample_key/groupby"),
    Case("aggregate_cell_types_with_two_cells", G,
         "cell types with two cells in some samples (min_cells)",
         _adata_scores(), _agg(sample_key="donor", groupby="cell_type", min_cells=3),
         OsteoimmuneWarning, r"pair\(s\) have fewer than min_cells=3 cells and are dropped: "
         r"D01/B cell \(2\)", r"Lower min_cells to keep them",
         why="Sparse cell types are the norm in real cohorts; the other pairs are valid and "
             "the warning names every dropped sample/type with its count (also in "
             ".attrs['dropped']). Nothing left at all is an error."),
    Case("aggregate_missing_sample_ids", G, "NaN donor id for some cells",
         _adata_scores(_nan_donor), _agg(sample_key="donor"),
         OsteoimmuneWarning, r"3 cells have no 'donor' value and are left out",
         r"fill these obs values to keep them",
         why="Cells without a sample cannot be assigned to one; the rest are summarised and "
             "the warning counts the excluded cells."),
    # ------------------------------------------------------------------ associate
    Case("associate_unknown_model", A, "unknown model",
         _ps_ph, lambda x: oi.tl.associate(x["per_sample"], x["phenotypes"], "bmd", model="lm"),
         ValueError, r"model='lm' is not one of", r"\('ols', 'logit'"),
    Case("associate_per_sample_not_a_table", A, "per-sample scores as a numpy array",
         lambda tmp: {"phenotypes": phenotypes()},
         lambda x: oi.tl.associate(np.zeros((8, 2)), x["phenotypes"], "bmd"),
         TypeError, r"per_sample must be a pandas DataFrame", r"the output of oi\.tl\.aggregate"),
    Case("associate_phenotypes_not_a_table", A, "phenotypes as a dict",
         lambda tmp: {"per_sample": per_sample()},
         lambda x: oi.tl.associate(x["per_sample"], {"bmd": [1, 2]}, "bmd"),
         TypeError, r"phenotypes must be a pandas DataFrame indexed by sample id, got dict",
         r"pd\.read_csv\(path, index_col=0\)"),
    Case("associate_missing_phenotype_column", A, "phenotype column not in the table",
         _ps_ph, lambda x: oi.tl.associate(x["per_sample"], x["phenotypes"], "BMD"),
         KeyError, r"columns \['BMD'\] are not in the phenotype table",
         r"check the names or add the columns"),
    Case("associate_missing_covariate_column", A, "covariate column not in the table",
         _ps_ph, lambda x: oi.tl.associate(x["per_sample"], x["phenotypes"], "bmd",
                                           covariates=["height"]),
         KeyError, r"columns \['height'\] are not in the phenotype table",
         r"check the names or add the columns"),
    Case("associate_float_sample_ids", A,
         "phenotype index as floats (1.0) and sample ids as strings ('1')",
         lambda tmp: {**_int_ids(_ps_ph(tmp)),
                      "phenotypes": _with(phenotypes(), _float_index)},
         lambda x: oi.tl.associate(x["per_sample"], x["phenotypes"], "bmd"),
         ValueError, r"no sample id of the per-sample scores is in the phenotype table index",
         r"phenotypes\.index = phenotypes\.index\.astype\(int\)\.astype\(str\)"),
    Case("associate_unknown_sample_ids", A, "sample ids that match no phenotype row",
         _ph(_foreign_index), lambda x: oi.tl.associate(x["per_sample"], x["phenotypes"], "bmd"),
         ValueError, r"no sample id of the per-sample scores is in the phenotype table index",
         r"phenotypes\.set_index\('donor'\)"),
    Case("associate_constant_phenotype", A, "a constant phenotype",
         _ph(lambda ph: _set(ph, "bmd", 0.8)),
         lambda x: oi.tl.associate(x["per_sample"], x["phenotypes"], "bmd"),
         ValueError, r"phenotype 'bmd' is constant .* across the 8 samples",
         r"Check the column or the samples kept"),
    Case("associate_too_few_samples", A, "too few samples for the covariates",
         _ph(_covariates), lambda x: oi.tl.associate(
             x["per_sample"], x["phenotypes"], "bmd", covariates=["age", "c0", "c1", "c2", "c3"]),
         ValueError, r"too few samples: 8 samples for a model with 7 parameters",
         r"Drop covariates or add samples"),
    Case("associate_constant_covariate", A, "a covariate with one value",
         _ph(lambda ph: _set(ph, "batch", "b1")), lambda x: oi.tl.associate(
             x["per_sample"], x["phenotypes"], "bmd", covariates=["batch"]),
         ValueError, r"covariate 'batch' has a single value", r"remove it from covariates"),
    Case("associate_phenotype_as_covariate", A, "the phenotype also listed as a covariate",
         _ps_ph, lambda x: oi.tl.associate(x["per_sample"], x["phenotypes"], "bmd",
                                           covariates=["bmd"]),
         ValueError, r"'bmd' is both the phenotype and a covariate",
         r"remove it from covariates"),
    Case("associate_duplicated_phenotype_ids", A, "duplicated sample ids in the phenotypes",
         lambda tmp: {"per_sample": per_sample(),
                      "phenotypes": pd.concat([phenotypes(), phenotypes().iloc[:1]])},
         lambda x: oi.tl.associate(x["per_sample"], x["phenotypes"], "bmd"),
         ValueError, r"the phenotype table has duplicated sample ids \(D01\)",
         r"keep one row per sample"),
    Case("associate_cell_level_table", A, "cell-level scores given to a sample-level model",
         lambda tmp: {"phenotypes": phenotypes(),
                      "cells": scores().set_axis(_cohort_base().obs["donor"].astype(str))},
         lambda x: oi.tl.associate(x["cells"], x["phenotypes"], "bmd"),
         ValueError, r"duplicated index ids .* rows are not samples",
         r"Aggregate per sample first with oi\.tl\.aggregate"),
    Case("associate_logit_continuous", A, "model='logit' with a continuous phenotype",
         _ps_ph, lambda x: oi.tl.associate(x["per_sample"], x["phenotypes"], "bmd",
                                           model="logit"),
         ValueError, r"model='logit' needs a binary phenotype; 'bmd' has 8 distinct values",
         r"Use model='ols' or 'spearman'"),
    Case("associate_three_levels", A, "a categorical phenotype with three levels",
         _ph(_three_levels), lambda x: oi.tl.associate(x["per_sample"], x["phenotypes"], "site"),
         ValueError, r"categorical with 3 levels", r"Subset the table to two levels"),
    Case("associate_numbers_as_text", A, "a numeric phenotype stored as text",
         _ph(lambda ph: _set(ph, "bmd", ph["bmd"].astype(str))),
         lambda x: oi.tl.associate(x["per_sample"], x["phenotypes"], "bmd"),
         ValueError, r"phenotype 'bmd' holds numbers stored as text",
         r"pd\.to_numeric\(phenotypes\['bmd'\]\)"),
    Case("associate_bad_reference", A, "reference= not a level of the phenotype",
         _ps_ph, lambda x: oi.tl.associate(x["per_sample"], x["phenotypes"], "sex",
                                           reference="woman"),
         ValueError, r"reference='woman' is not a level of 'sex'",
         r"levels: \['female', 'male'\]"),
    Case("associate_alpha_out_of_range", A, "alpha given in percent (5)",
         _ps_ph, lambda x: oi.tl.associate(x["per_sample"], x["phenotypes"], "bmd", alpha=5),
         ValueError, r"alpha must lie in \(0, 1\).*got 5", r"e\.g\. alpha=0\.05"),
    Case("associate_mixedlm_without_sample_key", A, "model='mixedlm' without sample_key",
         _ps_ph, lambda x: oi.tl.associate(x["per_sample"], x["phenotypes"], "bmd",
                                           model="mixedlm"),
         ValueError, r"model='mixedlm' fits cell-level scores",
         r"sample_key='<that column>'"),
    Case("associate_text_values", A, "per-sample values stored as text",
         lambda tmp: {"per_sample": per_sample().astype({"value": str}),
                      "phenotypes": phenotypes()},
         lambda x: oi.tl.associate(x["per_sample"], x["phenotypes"], "bmd"),
         ValueError, r"'value' column of the per-sample table is not numeric",
         r"pd\.to_numeric\(per_sample\['value'\]\)"),
    Case("associate_nan_in_phenotype", A, "NaN in the phenotype for two donors",
         _ph(_nan_bmd), lambda x: oi.tl.associate(x["per_sample"], x["phenotypes"], "bmd"),
         OsteoimmuneWarning, r"2 sample\(s\) have missing values in \['bmd'\] and are left out",
         r"Impute or fill them",
         why="Complete-case analysis is the standard default; the samples left out are named "
             "and recorded, and imputing would invent data."),
    Case("associate_samples_without_phenotype_row", A,
         "scores for samples missing from the phenotype table",
         _ph(_partial_index), lambda x: oi.tl.associate(x["per_sample"], x["phenotypes"], "bmd"),
         OsteoimmuneWarning, r"2 sample\(s\) of the per-sample scores have no row",
         r"Add them to the table",
         why="Phenotype tables often cover a subset of the sequenced samples; the samples "
             "that can be tested are, the others are named. No overlap at all is an error."),
    Case("associate_int_and_str_ids", A,
         "donor ids as integers in the phenotypes and strings in the scores",
         lambda tmp: _int_ids(_ps_ph(tmp)),
         lambda x: oi.tl.associate(x["per_sample"], x["phenotypes"], "bmd"),
         None, check=_check_int_ids,
         why="Accepted: ids are matched as strings, so 1 and '1' are the same sample; the "
             "result equals the one with string ids."),
    # ------------------------------------------------------------------ datasets.load
    Case("dataset_unknown_name", D, "unknown data set name (typo)",
         lambda tmp: {}, lambda x: oi.datasets.load("kang2019"),
         KeyError, r"Unknown data set 'kang2019'", r"oi\.datasets\.list\(\)"),
    Case("dataset_corrupted_cache", D, "a corrupted (truncated, other version) cached file",
         junk_cache, lambda x: oi.datasets.load("kang2018_muscat_example", x["cache"],
                                                download=False),
         DatasetFileError, r"has sha256 [0-9a-f]{64}, but the registry records",
         r"Delete it and fetch again"),
    Case("dataset_missing_no_download", D, "file not in the cache and download=False",
         lambda tmp: {"cache": tmp}, lambda x: oi.datasets.load("tay_macrophage_memory",
                                                                 x["cache"], download=False),
         DatasetFileError, r"is not in the cache .* downloading is off",
         r"osteoimmune datasets fetch tay_macrophage_memory"),
    Case("dataset_registry_not_found", D, "registry= a path that does not exist",
         lambda tmp: {"registry": tmp / "registry.yaml"},
         lambda x: oi.datasets.load("x", registry=x["registry"]),
         FileNotFoundError, r"cannot read the registry", r"registry=None for the shipped one"),
    Case("dataset_registry_invalid", D, "registry= a YAML file of the wrong shape",
         lambda tmp: _with({"registry": tmp / "r.yaml"},
                           lambda x: x["registry"].write_text("datasets: [a, b]\n")),
         lambda x: oi.datasets.load("a", registry=x["registry"]),
         ValueError, r"is not a data-set registry",
         r"expected a mapping with a 'datasets' mapping of name -> entry"),
    # ------------------------------------------------------------------ CLI config
    Case("config_missing_source", C, "config without dataset.source",
         lambda tmp: config_file(tmp, dataset__source=...), run_config,
         ConfigError, r"required config key 'dataset\.source' is missing",
         r"give 'simulated', a registered data set name"),
    Case("config_missing_signatures", C, "config without signatures",
         lambda tmp: config_file(tmp, signatures=...), run_config,
         ConfigError, r"required config key 'signatures' is missing", r"give library names"),
    Case("config_missing_phenotypes", C, "config without association.phenotypes",
         lambda tmp: config_file(tmp, association__phenotypes=...), run_config,
         ConfigError, r"required config key 'association\.phenotypes' is missing",
         r"give sample-level phenotype columns"),
    Case("config_wrong_type", C, "aggregation.min_cells: ten",
         lambda tmp: config_file(tmp, aggregation__min_cells="ten"), run_config,
         ConfigError, r"'aggregation\.min_cells' .*got str 'ten'", r"must be an integer"),
    Case("config_section_not_mapping", C, "dataset: simulated (a string, not a section)",
         lambda tmp: config_file(tmp, dataset="simulated"), run_config,
         ConfigError, r"'dataset' must be a mapping", r"a YAML section"),
    Case("config_unknown_key", C, "a misspelt key (scoring.method)",
         lambda tmp: config_file(tmp, scoring={"method": ["zmean"]}), run_config,
         ConfigError, r"unknown config key 'scoring\.method'",
         r"Did you mean 'scoring\.methods'"),
    Case("config_unknown_signature", C, "a signature name not in the library",
         lambda tmp: config_file(tmp, signatures={"names": ["osteoclast_resorptoin"]}),
         run_config, ConfigError, r"'osteoclast_resorptoin' is not in the built-in library",
         r"Did you mean 'osteoclast_resorption'"),
    Case("config_unknown_method", C, "scoring.methods: [gsva]",
         lambda tmp: config_file(tmp, scoring={"methods": ["gsva"]}), run_config,
         ConfigError, r"unknown method 'gsva'", r"choose from \('module'"),
    Case("config_unknown_dataset", C, "dataset.source: an unregistered name",
         lambda tmp: config_file(tmp, dataset={"source": "kang2019"}), run_config,
         ConfigError, r"Unknown data set 'kang2019'", r"osteoimmune datasets list"),
    Case("config_missing_phenotype_column", C, "association.phenotypes: a column absent",
         lambda tmp: config_file(tmp, association__phenotypes=["height"]), run_config,
         ConfigError, r"\['height'\] not found among the sample-level columns",
         r"\['age', 'sex', 'bmd'"),
    Case("config_missing_sample_key", C, "dataset.sample_key: a column absent",
         lambda tmp: config_file(tmp, dataset__sample_key="patient"), run_config,
         ConfigError, r"'dataset\.sample_key': 'patient' is not a column of the data's obs",
         r"columns: \['donor'"),
    Case("config_invalid_yaml", C, "a config that is not valid YAML",
         lambda tmp: config_file(tmp, "dataset: {source: simulated\n  - x: [\n"), run_config,
         ConfigError, r"is not valid YAML", r"Fix the syntax at the line shown"),
    Case("config_empty", C, "an empty config file",
         lambda tmp: config_file(tmp, ""), run_config,
         ConfigError, r"the config is empty", r"needs at least the keys dataset"),
    Case("config_alpha", C, "association.alpha: 5",
         lambda tmp: config_file(tmp, association__alpha=5.0), run_config,
         ConfigError, r"'association\.alpha' .*got 5\.0", r"must lie in \(0, 1\)"),
    Case("config_existing_output", C, "--out an existing, non-empty folder without --force",
         lambda tmp: _with(config_file(tmp), lambda x: (x["out"].mkdir(),
                                                        (x["out"] / "keep.txt").write_text("x"))),
         run_config, OutputExistsError, r"exists", r"--force"),
]

CONFIG_CASES = [c for c in CASES if c.api == C]


def _is_error(expect: type | None) -> bool:
    return expect is not None and not issubclass(expect, Warning)


# ---------------------------------------------------------------------------- comparison
def snapshot(value: Any) -> Any:
    """A deep copy of an input (file contents for paths)."""
    if isinstance(value, Path):
        if value.is_file():
            return ("file", value.read_bytes())
        if value.is_dir():
            return ("dir", {str(p.relative_to(value)): (p.read_bytes() if p.is_file() else None)
                            for p in sorted(value.rglob("*"))})
        return ("absent", None)
    if isinstance(value, ad.AnnData):
        out = value.copy()
        out.uns = copy.deepcopy(dict(value.uns))
        return out
    return copy.deepcopy(value)


def _assert_matrix_equal(a, b, where: str) -> None:
    assert type(a) is type(b), f"{where}: type changed {type(a)} -> {type(b)}"
    if sp.issparse(a):
        assert a.format == b.format and a.shape == b.shape and a.dtype == b.dtype, where
        for attr in ("data", "indices", "indptr") if a.format in ("csr", "csc") else ():
            np.testing.assert_array_equal(getattr(a, attr), getattr(b, attr), err_msg=where)
        if a.format not in ("csr", "csc"):
            np.testing.assert_array_equal(a.toarray(), b.toarray(), err_msg=where)
    elif isinstance(a, pd.DataFrame):
        pd.testing.assert_frame_equal(a, b, check_exact=True, obj=where)
    else:
        a, b = np.asarray(a), np.asarray(b)
        assert a.dtype == b.dtype and a.shape == b.shape, where
        np.testing.assert_array_equal(a, b, err_msg=where)


def assert_same(before: Any, after: Any, where: str = "input") -> None:
    """Deep equality of an input before and after a call (NaN equal to NaN)."""
    if isinstance(before, tuple) and len(before) == 2 and before[0] in ("file", "dir", "absent"):
        assert before == snapshot(after), f"{where}: file contents changed"
        return
    if isinstance(before, ad.AnnData):
        assert isinstance(after, ad.AnnData)
        pd.testing.assert_index_equal(before.obs_names, after.obs_names, obj=f"{where}.obs_names")
        pd.testing.assert_index_equal(before.var_names, after.var_names, obj=f"{where}.var_names")
        _assert_matrix_equal(before.X, after.X, f"{where}.X")
        pd.testing.assert_frame_equal(before.obs, after.obs, check_exact=True,
                                      obj=f"{where}.obs")
        pd.testing.assert_frame_equal(before.var, after.var, check_exact=True,
                                      obj=f"{where}.var")
        for attr in ("layers", "obsm", "varm", "obsp", "varp"):
            mb, ma = getattr(before, attr), getattr(after, attr)
            assert sorted(mb.keys()) == sorted(ma.keys()), f"{where}.{attr} keys changed"
            for k in mb.keys():
                _assert_matrix_equal(mb[k], ma[k], f"{where}.{attr}[{k!r}]")
        assert_same(dict(before.uns), dict(after.uns), f"{where}.uns")
        assert (before.raw is None) == (after.raw is None), f"{where}.raw changed"
        if before.raw is not None:
            _assert_matrix_equal(before.raw.X, after.raw.X, f"{where}.raw.X")
        return
    if isinstance(before, pd.DataFrame):
        pd.testing.assert_frame_equal(before, after, check_exact=True, obj=where)
        assert before.attrs.keys() == after.attrs.keys(), f"{where}.attrs changed"
        return
    if isinstance(before, pd.Series):
        pd.testing.assert_series_equal(before, after, check_exact=True, obj=where)
        return
    if isinstance(before, dict):
        assert isinstance(after, dict) and list(before) == list(after), f"{where}: keys changed"
        for k in before:
            assert_same(before[k], after[k], f"{where}[{k!r}]")
        return
    if isinstance(before, list | tuple):
        assert type(before) is type(after) and len(before) == len(after), where
        for i, (b, a) in enumerate(zip(before, after)):
            assert_same(b, a, f"{where}[{i}]")
        return
    if sp.issparse(before) or isinstance(before, np.ndarray):
        _assert_matrix_equal(before, after, where)
        return
    if isinstance(before, float) and np.isnan(before):
        assert isinstance(after, float) and np.isnan(after), where
        return
    assert before == after, f"{where}: {before!r} -> {after!r}"


# ---------------------------------------------------------------------------- running
@dataclass
class Outcome:
    kind: str  # "error", "warning" or "accepted"
    type_name: str
    message: str


def execute(case: Case, tmp: Path) -> tuple[Outcome, Any, dict]:
    """Run a case on fresh inputs, check the inputs are unchanged; return what happened."""
    inputs = case.build(tmp)
    before = {k: snapshot(v) for k, v in inputs.items()}
    result: Any = None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if _is_error(case.expect):
            with pytest.raises(case.expect) as info:
                case.call(inputs)
            exc = info.value
            msg = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
            outcome = Outcome("error", type(exc).__name__, str(msg))
        else:
            result = case.call(inputs)
            outcome = Outcome("accepted", "", "")
            if case.expect is not None:
                hits = [w for w in caught if issubclass(w.category, case.expect)
                        and re.search(case.problem, str(w.message))]
                assert hits, (f"{case.id}: expected a {case.expect.__name__} matching "
                              f"{case.problem!r}; got {[str(w.message) for w in caught]}")
                outcome = Outcome("warning", case.expect.__name__, str(hits[0].message))
    for k, v in before.items():
        assert_same(v, inputs[k], f"{case.id}: {k}")
    return outcome, result, inputs


_SEEN: dict[str, Outcome] = {}


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input(case: Case, tmp_path: Path) -> None:
    outcome, result, inputs = execute(case, tmp_path)
    if case.expect is None:
        assert case.check is not None and case.why, case.id
        case.check(result, inputs)
    else:
        assert re.search(case.problem, outcome.message, flags=re.S), \
            f"{case.id}: the message does not name the problem ({case.problem!r}):\n" \
            f"{outcome.message}"
        assert re.search(case.fix, outcome.message, flags=re.S), \
            f"{case.id}: the message does not name the fix ({case.fix!r}):\n{outcome.message}"
        assert not outcome.message.startswith("Traceback")
    if outcome.kind == "warning":
        assert case.why, f"{case.id}: a warning rather than an error needs a reason (why=)"
    _SEEN[case.id] = Outcome(outcome.kind, outcome.type_name,
                             _sanitise(outcome.message, tmp_path))


def test_catalogue_size_and_coverage() -> None:
    ids = [c.id for c in CASES]
    assert len(ids) == len(set(ids))
    errors = [c for c in CASES if _is_error(c.expect)]
    assert len(errors) >= 30
    per_api = pd.Series([c.api for c in errors]).value_counts()
    for api in (S, M, G, A, D, C):
        assert per_api.get(api, 0) >= 3, api


@pytest.mark.parametrize("case", CONFIG_CASES, ids=[c.id for c in CONFIG_CASES])
def test_cli_config_errors_exit_2(case: Case, tmp_path: Path) -> None:
    """The command line answers the same message, exit code 2, and writes nothing."""
    from click.testing import CliRunner

    from osteoimmune.cli import main

    inputs = case.build(tmp_path)
    before = {k: snapshot(v) for k, v in inputs.items()}
    listing = sorted(p.name for p in tmp_path.iterdir())
    res = CliRunner().invoke(main, ["run", str(inputs["config"]), "--out", str(inputs["out"]),
                                    "--quiet"])
    assert res.exit_code == 2, res.output
    text = " ".join(res.output.split())
    assert re.search(case.problem, text), text
    assert re.search(case.fix, text), text
    assert "Traceback" not in res.output
    for k, v in before.items():
        assert_same(v, inputs[k], f"{case.id}: {k}")
    assert sorted(p.name for p in tmp_path.iterdir()) == listing  # no output, no temp folder


# ---------------------------------------------------------------------------- docs
def _sanitise(message: str, tmp: Path) -> str:
    message = message.replace(str(tmp), "<tmp>")
    message = re.sub(r"/tmp/[^\s'\"]*", "<tmp>", message)
    return message


def render_docs(outcomes: dict[str, Outcome]) -> str:
    """``docs/errors.md`` from the case table and the messages the cases produced."""
    def cell(text: str) -> str:
        text = " ".join(str(text).split())
        return text.replace("|", "\\|")

    lines = [
        "# Bad inputs and their messages",
        "",
        "<!-- generated by `python tests/test_bad_inputs.py --write-docs` from the case table "
        "of tests/test_bad_inputs.py; do not edit by hand -->",
        "",
        "Every row is a test case: the call raises (or warns) with exactly this message, the "
        "message names the problem and the fix, and the input AnnData / DataFrame / files are "
        "unchanged afterwards. Paths of temporary folders are shown as `<tmp>`.",
        "",
    ]
    sections = [(S, "Scoring (`oi.tl.score`, signatures)"),
                (M, "Myeloid selection (`oi.pp.select_myeloid`)"),
                (G, "Aggregation (`oi.tl.aggregate`)"),
                (A, "Association (`oi.tl.associate`)"),
                (D, "Data sets (`oi.datasets.load`)"),
                (C, "Pipeline configuration (`osteoimmune run CONFIG --out DIR`, exit code 2)")]
    for api, title in sections:
        rows = [c for c in CASES if (c.api == api or (api == S and c.api.startswith(
            "oi.signatures"))) and c.expect is not None
            and not issubclass(c.expect, Warning)]
        lines += [f"## {title}", "", "| bad input | error | message |", "| --- | --- | --- |"]
        for c in rows:
            o = outcomes[c.id]
            lines.append(f"| {cell(c.bad)} | `{o.type_name}` | {cell(o.message)} |")
        lines.append("")
    lines += ["## Answered with a warning (the call returns a result)", "",
              "| call | bad input | warning | why a warning, not an error |",
              "| --- | --- | --- | --- |"]
    for c in CASES:
        if c.expect is not None and issubclass(c.expect, Warning):
            o = outcomes[c.id]
            lines.append(f"| `{c.api}` | {cell(c.bad)} | {cell(o.message)} | {cell(c.why)} |")
    lines += ["", "## Accepted by design", "", "| call | input | behaviour |",
              "| --- | --- | --- |"]
    for c in CASES:
        if c.expect is None:
            lines.append(f"| `{c.api}` | {cell(c.bad)} | {cell(c.why)} |")
    return "\n".join(lines) + "\n"


def collect(outcomes: dict[str, Outcome] | None = None) -> dict[str, Outcome]:
    """Outcomes of every case (reusing those already seen in this session)."""
    import tempfile

    out = dict(outcomes or {})
    for c in CASES:
        if c.id in out:
            continue
        with tempfile.TemporaryDirectory() as d:
            outcome, _, _ = execute(c, Path(d))
            out[c.id] = Outcome(outcome.kind, outcome.type_name,
                                _sanitise(outcome.message, Path(d)))
    return out


def test_errors_md_is_current() -> None:
    """docs/errors.md is generated from this table; it must match the messages of today."""
    expected = render_docs(collect(_SEEN))
    assert DOCS.exists(), "docs/errors.md is missing: run python tests/test_bad_inputs.py " \
                          "--write-docs"
    assert DOCS.read_text() == expected, (
        "docs/errors.md is out of date with the messages: run "
        "`python tests/test_bad_inputs.py --write-docs` and commit it.")


if __name__ == "__main__":
    if "--write-docs" not in sys.argv[1:]:
        sys.exit("usage: python tests/test_bad_inputs.py --write-docs")
    warnings.simplefilter("ignore")
    DOCS.parent.mkdir(parents=True, exist_ok=True)
    DOCS.write_text(render_docs(collect()))
    print(f"wrote {DOCS}")
