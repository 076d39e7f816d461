"""``oi.datasets.load``: fetch (checksum verified), read and harmonise a registered data set."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
from anndata import AnnData

from ._readers import READERS
from ._registry import _resolve_cache, fetch_file, get_entry, read_registry

STANDARD_COLUMNS = ("sample", "condition", "time", "donor", "phenotype")


def _h5ad_safe(value):
    """Make registry values writable to h5ad (no None, lists of scalars as strings)."""
    if value is None:
        return ""
    if isinstance(value, dict):
        return {str(k): _h5ad_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [str(v) for v in value]
    return value


def harmonize(adata: AnnData, entry: dict) -> AnnData:
    """Add the harmonised observation columns of a registry entry (in place).

    Columns named in ``harmonize.columns`` (target <- source, ``"@index"`` for the
    observation names) are copied, through ``harmonize.values`` label maps when given; the
    source columns are kept. ``sample``, ``condition``, ``time``, ``donor`` and ``phenotype``
    always exist afterwards (empty when the data set has no such information).
    """
    spec = entry.get("harmonize") or {}
    obs = adata.obs
    for col, value in (spec.get("constants") or {}).items():
        if col not in obs.columns:
            obs[col] = value
    value_maps = spec.get("values") or {}
    for target, source in (spec.get("columns") or {}).items():
        if source == "@index":
            values = pd.Series(adata.obs_names.astype(str), index=obs.index)
        elif source in obs.columns:
            values = obs[source]
        else:
            raise KeyError(f"data set {entry['name']!r}: harmonisation needs column {source!r}, "
                           f"which the data do not have (columns: {list(obs.columns)}).")
        if target in value_maps:
            labels = value_maps[target]
            raw = values.astype(object)
            mapped = raw.map(lambda v, labels=labels: labels.get(v, _MISSING))
            bad = sorted({str(v) for v, m in zip(raw, mapped) if m is _MISSING and pd.notna(v)})
            if bad:
                raise ValueError(f"data set {entry['name']!r}: column {source!r} holds labels "
                                 f"{bad} that the registry's label map for {target!r} does not "
                                 f"know ({sorted(labels)}).")
            values = mapped.map(lambda m: np.nan if m is _MISSING else m)
            if all(isinstance(v, (bool, np.bool_)) for v in values.dropna()) and \
                    values.notna().all():
                values = values.astype(bool)
        elif target == source:
            continue
        obs[target] = values.to_numpy()
    for col in STANDARD_COLUMNS:
        if col not in obs.columns:
            obs[col] = np.nan if col == "time" else pd.Series(pd.NA, index=obs.index,
                                                              dtype="string")
    if obs["time"].dtype == object:
        obs["time"] = pd.to_numeric(obs["time"], errors="coerce")
    return adata


_MISSING = object()


def load(
    name: str,
    cache_dir: str | os.PathLike | None = None,
    *,
    download: bool = True,
    registry: str | os.PathLike | dict | None = None,
    progressbar: bool = True,
    allow_unverified: bool = False,
) -> AnnData:
    """Load a registered public data set as AnnData.

    The data set's files are looked up in the cache folder under their registry paths
    (e.g. ``kang2018_muscat_example/kang2018_muscat_example.h5ad``) and their sha256 is
    checked; a file with a different checksum is an error and is never used. Missing files
    are downloaded with pooch (checksum verified, progress bar) when they have a public URL.

    Parameters
    ----------
    name
        Registered name (see :func:`osteoimmune.datasets.list`).
    cache_dir
        Cache folder; default ``$OSTEOIMMUNE_DATA_DIR`` or the platform user cache.
        Pointing it at a folder that already holds the files (e.g. ``../shared/data``) makes
        every load a verified cache hit.
    download
        Allow downloading missing files (False: a missing file is an error naming the fix).
    registry
        A registry YAML path or a dict from :func:`osteoimmune.datasets.read_registry`;
        default: the shipped registry.
    progressbar
        Show the download progress bar.
    allow_unverified
        Allow downloading files of ``verified: false`` entries, which have no recorded
        sha256 (off by default: only verifiable downloads).

    Returns
    -------
    AnnData
        Observations are cells (single-cell sets) or samples (bulk and sample-sheet sets).
        ``obs`` keeps the original columns and adds the harmonised ``sample``, ``condition``,
        ``time``, ``donor`` and ``phenotype`` (empty when not applicable) plus the
        set-specific ones the registry names. ``uns["dataset"]`` holds title, species,
        citation, licence, files and checksums, notes and ``simulated = False``;
        ``uns["osteoimmune"]`` holds ``data_type`` (``"single_cell"``, ``"microarray"``,
        ``"rnaseq"`` or ``"sample_sheet"``) and ``species``.

    Examples
    --------
    >>> import osteoimmune as oi
    >>> kang = oi.datasets.load("kang2018_muscat_example")  # doctest: +SKIP
    >>> kang.obs[["sample", "donor", "condition", "cell_type"]].drop_duplicates()  # doctest: +SKIP
    """
    if isinstance(registry, (str, os.PathLike)):
        registry = read_registry(registry)
    entry = get_entry(name, registry)
    reader = READERS.get(entry["reader"])
    if reader is None:
        raise ValueError(f"data set {name!r} names reader {entry['reader']!r}; known readers: "
                         f"{sorted(READERS)}.")
    root = _resolve_cache(cache_dir)

    def fetch(role: str) -> Path | None:
        return fetch_file(entry, role, root, download=download, progressbar=progressbar,
                          allow_unverified=allow_unverified)

    fetch.cache_dir = root  # type: ignore[attr-defined]
    fetch.download = download  # type: ignore[attr-defined]
    adata = reader(entry, fetch)
    adata = harmonize(adata, entry)
    files = {}
    for f in entry["files"]:
        present = (root / f["path"]).exists()
        files[f["role"]] = {"path": f["path"], "url": f.get("url"), "sha256": f.get("sha256"),
                            "format": f["format"], "present": present}
    info = {
        "name": name,
        "title": entry["title"],
        "organism": entry["organism"],
        "species": entry["species"],
        "tissue": entry.get("tissue"),
        "assay": entry.get("assay"),
        "data_type": entry["data_type"],
        "observation": entry["observation"],
        "cells": entry.get("cells"),
        "phenotype_columns": list(entry.get("phenotype_columns") or []),
        "citation": entry["citation"],
        "licence": entry["licence"],
        "verified": bool(entry["verified"]),
        "files": files,
        "notes": entry.get("notes"),
        "options_note": (entry.get("options") or {}).get("layers_note"),
        "harmonized": dict((entry.get("harmonize") or {}).get("columns") or {}),
        "simulated": False,
    }
    adata.uns["dataset"] = _h5ad_safe(info)
    oi_uns = dict(adata.uns.get("osteoimmune", {}))
    oi_uns["data_type"] = entry["data_type"]
    oi_uns["species"] = entry["species"]
    adata.uns["osteoimmune"] = oi_uns
    return adata
