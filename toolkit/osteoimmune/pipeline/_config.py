"""Run configuration: schema, defaults and validation with errors that name the bad key."""

from __future__ import annotations

import copy
import difflib
import os
from pathlib import Path
from typing import Any

import yaml

__all__ = ["DEMO_CONFIG", "REQUIRED_KEYS", "ConfigError", "load_config", "validate_config"]

SCORE_METHODS = ("module", "aucell", "ucell", "zmean", "scdrs")
ASSOC_MODELS = ("ols", "logit", "spearman", "permutation")
AGG_STATS = ("mean", "median", "fraction_above")
FIGURE_FORMATS = ("png", "pdf", "svg")
EMBEDDINGS = ("auto", "umap", "pca", "none")

#: Keys a configuration must give (dotted paths).
REQUIRED_KEYS: tuple[str, ...] = (
    "dataset",
    "dataset.source",
    "signatures",
    "association",
    "association.phenotypes",
)

# Schema: key -> (type(s), default, description). A nested dict is a section.
_SCHEMA: dict[str, Any] = {
    "dataset": {
        "source": ((str,), None, "'simulated', a registered data set name, or a path to .h5ad"),
        "simulate": ((dict,), {}, "arguments of oi.datasets.simulate_cohort (source: simulated)"),
        "sample_key": ((str,), None, "obs column with the sample (donor) id"),
        "cell_type_key": ((str,), None, "obs column with the cell type"),
        "condition_key": ((str,), None, "obs column split in the score distributions"),
        "phenotypes": ((str,), None, "CSV/TSV of sample phenotypes (first column = sample id)"),
        "layer": ((str,), None, "layer to score instead of X"),
        "use_raw": ((bool,), None, "score adata.raw"),
        "gene_symbols": ((str,), None, "var column with gene symbols"),
        "species": ((str,), None, "'human' or 'mouse'"),
    },
    "myeloid": {
        "select": ((bool,), True, "keep myeloid cells only (oi.pp.select_myeloid)"),
        "annotation_key": ((str,), None, "obs column mapped to the myeloid vocabulary"),
    },
    "signatures": ((str, list, dict), None, "library names/tags, a GMT path, or "
                   "{names: [...], tags: [...], gmt: path}"),
    "scoring": {
        "methods": ((list, str), ["module"], f"scoring methods among {SCORE_METHODS}"),
        "options": ((dict,), {}, "per-method options, e.g. {module: {ctrl_size: 50}}"),
        "min_coverage": ((float, int), 0.5, "warn below this fraction of genes found"),
    },
    "aggregation": {
        "stat": ((str,), "mean", f"one of {AGG_STATS}"),
        "min_cells": ((int,), 10, "minimum cells per sample × cell type"),
        "threshold": ((float, int), None, "threshold of stat: fraction_above"),
    },
    "association": {
        "phenotypes": ((list, str), None, "sample-level phenotype columns to test"),
        "covariates": ((list, str), [], "adjustment columns"),
        "models": ((list, str), ["ols"], f"models among {ASSOC_MODELS}"),
        "reference": ((dict,), {}, "reference level per binary phenotype"),
        "robust": ((str, bool), None, "robust standard errors for ols (e.g. HC3)"),
        "n_perm": ((int,), 999, "permutations of model: permutation"),
        "alpha": ((float,), 0.05, "significance level (q-values) and 1 - CI level"),
    },
    "figures": {
        "formats": ((list, str), ["png", "pdf"], f"figure files among {FIGURE_FORMATS}"),
        "embedding": ((str,), "auto", f"one of {EMBEDDINGS}"),
        "max_scatter": ((int,), 4, "scatter plots of the strongest associations"),
    },
    "random_state": ((int,), 0, "seed of every random choice"),
    "progress": ((bool,), True, "progress bars"),
}

#: The configuration of ``osteoimmune demo``: the simulated cohort, labelled as such.
DEMO_CONFIG: dict[str, Any] = {
    "dataset": {"source": "simulated",
                "simulate": {"n_donors": 24, "cells_per_donor": 300}},
    "signatures": {"tags": ["trained_immunity", "osteoclastogenesis"],
                   "names": ["HALLMARK_TNFA_SIGNALING_VIA_NFKB", "HALLMARK_IL6_JAK_STAT3_SIGNALING",
                             "REACTOME_INTERLEUKIN_1_SIGNALING"]},
    "scoring": {"methods": ["zmean"]},
    "aggregation": {"stat": "mean", "min_cells": 10},
    "association": {"phenotypes": ["bmd"], "covariates": ["age", "sex"], "models": ["ols"]},
    "figures": {"formats": ["png", "pdf"], "embedding": "auto"},
    "random_state": 0,
}


class ConfigError(ValueError):
    """A configuration problem; the message names the key and the fix."""


def _type_names(types: tuple[type, ...]) -> str:
    names = {str: "a string", list: "a list", dict: "a mapping", bool: "true/false",
             int: "an integer", float: "a number"}
    return " or ".join(names.get(t, t.__name__) for t in types)


def _check_type(key: str, value: Any, types: tuple[type, ...]) -> None:
    if value is None:
        return
    if isinstance(value, bool) and bool not in types:
        raise ConfigError(f"config key {key!r} must be {_type_names(types)}, got {value!r}.")
    if not isinstance(value, types):
        raise ConfigError(f"config key {key!r} must be {_type_names(types)}, got "
                          f"{type(value).__name__} {value!r}.")


def _unknown(key: str, allowed: list[str], prefix: str) -> ConfigError:
    close = difflib.get_close_matches(key, allowed, n=1)
    hint = f" Did you mean {prefix + close[0]!r}?" if close else ""
    return ConfigError(f"unknown config key {prefix + key!r}.{hint} Allowed keys here: "
                       f"{', '.join(allowed)}.")


def _as_list(key: str, value: Any) -> list:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if not all(isinstance(v, str) for v in value):
        raise ConfigError(f"config key {key!r} must list strings, got {value!r}.")
    return list(value)


def _merge(schema: dict, given: dict, prefix: str) -> dict:
    out: dict[str, Any] = {}
    for k in given:
        if k not in schema:
            raise _unknown(str(k), list(schema), prefix)
    for k, spec in schema.items():
        key = f"{prefix}{k}"
        if isinstance(spec, dict):
            sub = given.get(k, {})
            if sub is None:
                sub = {}
            if not isinstance(sub, dict):
                raise ConfigError(f"config key {key!r} must be a mapping (a YAML section), got "
                                  f"{type(sub).__name__} {sub!r}.")
            out[k] = _merge(spec, sub, f"{key}.")
        else:
            types, default, _ = spec
            value = given.get(k, copy.deepcopy(default))
            _check_type(key, value, types)
            out[k] = value
    return out


def validate_config(raw: Any, base_dir: str | os.PathLike | None = None) -> dict[str, Any]:
    """Check a configuration and return it complete, with defaults filled in.

    Parameters
    ----------
    raw
        The parsed YAML (a mapping).
    base_dir
        Folder that relative paths (data set, GMT, phenotype table) are resolved against;
        default the working directory.

    Returns
    -------
    dict
        The normalised configuration: every key present, lists for list-valued keys,
        paths made absolute.

    Raises
    ------
    ConfigError
        Naming the missing, unknown or ill-typed key and what to write instead.
    """
    if raw is None:
        raise ConfigError("the config is empty; it needs at least the keys "
                          f"{', '.join(REQUIRED_KEYS)} (see `osteoimmune run --help`).")
    if not isinstance(raw, dict):
        raise ConfigError(f"the config must be a YAML mapping of keys, got {type(raw).__name__}.")
    for req in REQUIRED_KEYS:
        node: Any = raw
        spec: Any = _SCHEMA
        for part in req.split("."):
            if not isinstance(node, dict):
                break  # the parent has the wrong type: reported by _merge below
            spec = spec[part]
            if node.get(part) is None:
                desc = spec[2] if isinstance(spec, tuple) else "a section (mapping)"
                raise ConfigError(f"required config key {req!r} is missing: give {desc}.")
            node = node[part]
    cfg = _merge(_SCHEMA, raw, "")
    base = Path(base_dir) if base_dir is not None else Path.cwd()

    ds = cfg["dataset"]
    src = ds["source"]
    if not src.strip():
        raise ConfigError("config key 'dataset.source' is empty: give 'simulated', a "
                          "registered data set name (osteoimmune datasets list) or an .h5ad path.")
    if src != "simulated" and (src.endswith(".h5ad") or os.sep in src or "/" in src):
        p = (base / src).resolve() if not Path(src).is_absolute() else Path(src)
        if not p.is_file():
            raise ConfigError(f"config key 'dataset.source': file {str(p)!r} does not exist; "
                              "give an existing .h5ad path or a registered data set name.")
        ds["source"] = str(p)
    if ds["simulate"] and src != "simulated":
        raise ConfigError("config key 'dataset.simulate' is only used with dataset.source: "
                          "simulated; remove it or set the source to 'simulated'.")
    if ds["phenotypes"] is not None:
        p = (base / ds["phenotypes"]).resolve()
        if not p.is_file():
            raise ConfigError(f"config key 'dataset.phenotypes': file {str(p)!r} does not "
                              "exist; give a CSV/TSV with one row per sample.")
        ds["phenotypes"] = str(p)
    if ds["species"] is not None and ds["species"] not in ("human", "mouse"):
        raise ConfigError(f"config key 'dataset.species' must be 'human' or 'mouse', got "
                          f"{ds['species']!r}.")

    sigs = cfg["signatures"]
    if isinstance(sigs, str):
        sigs = {"gmt": sigs} if sigs.lower().endswith(".gmt") else {"names": [sigs]}
    elif isinstance(sigs, list):
        sigs = {"names": _as_list("signatures", sigs)}
    allowed = ["names", "tags", "gmt"]
    for k in sigs:
        if k not in allowed:
            raise _unknown(str(k), allowed, "signatures.")
    sigs = {"names": _as_list("signatures.names", sigs.get("names")),
            "tags": _as_list("signatures.tags", sigs.get("tags")),
            "gmt": sigs.get("gmt")}
    if sigs["gmt"] is not None:
        if not isinstance(sigs["gmt"], str):
            raise ConfigError("config key 'signatures.gmt' must be a path to a GMT file.")
        p = (base / sigs["gmt"]).resolve()
        if not p.is_file():
            raise ConfigError(f"config key 'signatures.gmt': file {str(p)!r} does not exist.")
        sigs["gmt"] = str(p)
    if not (sigs["names"] or sigs["tags"] or sigs["gmt"]):
        raise ConfigError("config key 'signatures' selects nothing: list library names or "
                          "tags (osteoimmune signatures list) or give a GMT path.")
    cfg["signatures"] = sigs

    sc = cfg["scoring"]
    sc["methods"] = _as_list("scoring.methods", sc["methods"])
    if not sc["methods"]:
        raise ConfigError(f"config key 'scoring.methods' is empty; choose from {SCORE_METHODS}.")
    for m in sc["methods"]:
        if m not in SCORE_METHODS:
            raise ConfigError(f"config key 'scoring.methods': unknown method {m!r}; choose from "
                              f"{SCORE_METHODS}.")
    if len(set(sc["methods"])) != len(sc["methods"]):
        raise ConfigError(f"config key 'scoring.methods' repeats a method: {sc['methods']}.")
    for m, opts in sc["options"].items():
        if m not in sc["methods"]:
            raise ConfigError(f"config key 'scoring.options.{m}': {m!r} is not among "
                              f"scoring.methods {sc['methods']}.")
        if not isinstance(opts, dict):
            raise ConfigError(f"config key 'scoring.options.{m}' must be a mapping of options.")

    ag = cfg["aggregation"]
    if ag["stat"] not in AGG_STATS:
        raise ConfigError(f"config key 'aggregation.stat' must be one of {AGG_STATS}, got "
                          f"{ag['stat']!r}.")
    if ag["stat"] == "fraction_above" and ag["threshold"] is None:
        raise ConfigError("config key 'aggregation.threshold' is required with "
                          "aggregation.stat: fraction_above.")
    if ag["min_cells"] < 1:
        raise ConfigError(f"config key 'aggregation.min_cells' must be >= 1, got "
                          f"{ag['min_cells']}.")

    asc = cfg["association"]
    asc["phenotypes"] = _as_list("association.phenotypes", asc["phenotypes"])
    if not asc["phenotypes"]:
        raise ConfigError("required config key 'association.phenotypes' is empty: list the "
                          "sample-level phenotype columns to test (e.g. [bmd]).")
    asc["covariates"] = _as_list("association.covariates", asc["covariates"])
    overlap = set(asc["covariates"]) & set(asc["phenotypes"])
    if overlap:
        raise ConfigError(f"config keys 'association.covariates' and 'association.phenotypes' "
                          f"share {sorted(overlap)}; a column is either tested or adjusted for.")
    asc["models"] = _as_list("association.models", asc["models"])
    if not asc["models"]:
        raise ConfigError(f"config key 'association.models' is empty; choose from {ASSOC_MODELS}.")
    for m in asc["models"]:
        if m not in ASSOC_MODELS:
            raise ConfigError(f"config key 'association.models': unknown model {m!r}; choose "
                              f"from {ASSOC_MODELS} (sample-level models only).")
    for ph in asc["reference"]:
        if ph not in asc["phenotypes"]:
            raise ConfigError(f"config key 'association.reference.{ph}': {ph!r} is not among "
                              f"association.phenotypes {asc['phenotypes']}.")
    if not 0 < asc["alpha"] < 1:
        raise ConfigError(f"config key 'association.alpha' must lie in (0, 1), got "
                          f"{asc['alpha']}.")

    fg = cfg["figures"]
    fg["formats"] = _as_list("figures.formats", fg["formats"])
    for f in fg["formats"]:
        if f not in FIGURE_FORMATS:
            raise ConfigError(f"config key 'figures.formats': unknown format {f!r}; choose from "
                              f"{FIGURE_FORMATS}.")
    if "png" not in fg["formats"]:
        fg["formats"] = ["png", *fg["formats"]]  # the report embeds PNG
    if fg["embedding"] not in EMBEDDINGS:
        raise ConfigError(f"config key 'figures.embedding' must be one of {EMBEDDINGS}, got "
                          f"{fg['embedding']!r}.")
    return cfg


def load_config(path: str | os.PathLike) -> dict[str, Any]:
    """Read a YAML configuration (``yaml.safe_load``) and validate it.

    Parameters
    ----------
    path
        The YAML file. Relative paths inside it are resolved against its folder.

    Returns
    -------
    dict
        The validated configuration (see :func:`validate_config`).

    Raises
    ------
    ConfigError
        On unreadable YAML or an invalid configuration.
    """
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {exc}\nFix the syntax at the line "
                          "shown (indentation, unclosed brackets or quotes).") from None
    except OSError as exc:
        raise ConfigError(f"cannot read config {path}: {exc.strerror}") from None
    return validate_config(raw, base_dir=path.parent)
