"""The built-in signature library (``data/signatures/*.yaml``) and table/YAML readers."""

from __future__ import annotations

import os
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from .._paths import data_root
from ._signature import Signature, SignatureLibrary

__all__ = ["load", "read_table", "read_yaml", "signature_from_record", "write_yaml"]

SCHEMA_VERSION = 1
REQUIRED_KEYS = ("name", "title", "description", "tags", "species", "genes", "source")
SOURCE_KINDS = ("database", "paper_table", "derived_from_data", "curated_intersection")
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


def library_dir() -> Path:
    """Folder holding the built-in library (``data/signatures`` or ``osteoimmune/_data``)."""
    return data_root() / "signatures"


def _fail(where: str, problem: str, fix: str) -> ValueError:
    return ValueError(f"{where}: {problem} {fix}")


def signature_from_record(rec: Mapping[str, Any], where: str = "signature record") -> Signature:
    """Build a :class:`Signature` from one parsed library record (the YAML mapping).

    Parameters
    ----------
    rec
        Mapping with the keys of the library schema: ``name``, ``title``, ``description``,
        ``tags``, ``species``, ``genes`` (list of ``{symbol, weight?, direction?, mouse?,
        evidence?}`` mappings or plain symbols), ``source`` (provenance mapping).
    where
        Label used in error messages (e.g. the file name).

    Returns
    -------
    Signature
        Genes and signed weights from ``genes``; mouse orthologs, per-gene evidence, the
        excluded genes and the schema version in ``metadata``.

    Raises
    ------
    ValueError
        When a required key is missing, a gene is duplicated, a weight contradicts its
        direction, or the provenance is empty.
    """
    if not isinstance(rec, Mapping):
        raise _fail(where, f"expected a mapping, got {type(rec).__name__}.",
                    "Write the signature as a YAML mapping with keys " + ", ".join(REQUIRED_KEYS)
                    + ".")
    missing = [k for k in REQUIRED_KEYS if k not in rec]
    if missing:
        raise _fail(where, f"missing key(s) {', '.join(missing)}.",
                    "Add them; see data/signatures/README.md for the schema.")
    if not isinstance(rec["source"], Mapping) or not rec["source"]:
        raise _fail(where, "the 'source' (provenance) mapping is empty.",
                    "Give a citation (doi/pmid + table) or database + version + licence.")
    genes: list[str] = []
    weights: list[float] = []
    mouse: dict[str, list[str]] = {}
    evidence: dict[str, Any] = {}
    seen: set[str] = set()
    for i, g in enumerate(rec["genes"] or []):
        if isinstance(g, str):
            g = {"symbol": g}
        if not isinstance(g, Mapping) or not g.get("symbol"):
            raise _fail(where, f"gene entry {i} has no 'symbol'.",
                        "Write each gene as a symbol or a mapping {symbol: ..., weight: ...}.")
        sym = str(g["symbol"])
        if sym in seen:
            raise _fail(where, f"gene {sym!r} is listed twice.",
                        "Keep one entry per gene (merge their evidence).")
        seen.add(sym)
        direction = g.get("direction")
        if direction not in (None, "up", "down"):
            raise _fail(where, f"gene {sym!r} has direction {direction!r}.",
                        "Use 'up' or 'down'.")
        w = g.get("weight")
        if w is None:
            w = -1.0 if direction == "down" else 1.0
        w = float(w)
        if direction is not None and (w < 0) != (direction == "down"):
            raise _fail(where, f"gene {sym!r}: weight {w} contradicts direction {direction!r}.",
                        "Give down genes a negative weight and up genes a positive one.")
        genes.append(sym)
        weights.append(w)
        if "mouse" in g:
            m = g["mouse"]
            mouse[sym] = [m] if isinstance(m, str) else list(m or [])
        if g.get("evidence"):
            evidence[sym] = g["evidence"]
    if not genes:
        raise _fail(where, "the signature has no genes.", "List at least one gene under 'genes'.")
    tags = rec["tags"]
    tags = [tags] if isinstance(tags, str) else list(tags or [])
    meta: dict[str, Any] = {"schema_version": rec.get("schema_version", SCHEMA_VERSION)}
    if mouse:
        meta["mouse_genes"] = mouse
    if evidence:
        meta["evidence"] = evidence
    if rec.get("excluded"):
        meta["excluded"] = list(rec["excluded"])
    species = str(rec["species"]).lower()
    if species not in ("human", "mouse"):
        raise _fail(where, f"species {rec['species']!r} is not supported.",
                    "Use 'human' or 'mouse'.")
    plain = all(w == 1.0 for w in weights)
    return Signature(name=str(rec["name"]), genes=tuple(genes),
                     weights=None if plain else tuple(weights), species=species,
                     title=str(rec["title"] or ""), description=str(rec["description"] or ""),
                     tags=tuple(str(t) for t in tags), source=dict(rec["source"]),
                     metadata=meta)


def read_yaml(path: str | os.PathLike) -> SignatureLibrary:
    """Read signatures from a library YAML file or a folder of them.

    Parameters
    ----------
    path
        One ``.yaml`` file (a single signature mapping, or a list of them) or a folder whose
        ``*.yaml`` files (except ``library.yaml``) are signatures.

    Returns
    -------
    SignatureLibrary
        The signatures in file-name order; ``version`` from the folder's ``library.yaml``
        when present.
    """
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"{p} does not exist; pass a signature YAML file or a folder.")
    version = None
    meta: dict[str, Any] = {}
    if p.is_dir():
        files = sorted(f for f in p.glob("*.yaml") if f.name != "library.yaml")
        lib_file = p / "library.yaml"
        if lib_file.exists():
            meta = yaml.load(lib_file.read_text(encoding="utf-8"), Loader=_LOADER) or {}
            version = str(meta.get("version")) if meta.get("version") is not None else None
    else:
        files = [p]
    sigs: list[Signature] = []
    for f in files:
        data = yaml.load(f.read_text(encoding="utf-8"), Loader=_LOADER)
        recs = data if isinstance(data, list) else [data]
        sigs.extend(signature_from_record(r, where=str(f.name)) for r in recs)
    if not sigs:
        raise ValueError(f"No signature files (*.yaml) found in {p}.")
    return SignatureLibrary(sigs, version=version, metadata=meta)


def write_yaml(signature: Signature, path: str | os.PathLike) -> Path:
    """Write one signature in the library's YAML schema.

    Parameters
    ----------
    signature
        The signature; per-gene ``mouse`` and ``evidence`` are taken from its metadata
        (``mouse_genes``, ``evidence``) when present.
    path
        Output file.

    Returns
    -------
    pathlib.Path
        The written file.
    """
    s = signature
    mouse = s.metadata.get("mouse_genes", {})
    ev = s.metadata.get("evidence", {})
    genes = []
    for g, w in zip(s.genes, s.signed_weights):
        rec: dict[str, Any] = {"symbol": g}
        if s.is_signed:
            rec["direction"] = "down" if w < 0 else "up"
        if s.is_weighted:
            rec["weight"] = float(w)
        if g in mouse:
            rec["mouse"] = list(mouse[g])
        if g in ev:
            rec["evidence"] = ev[g]
        genes.append(rec)
    doc: dict[str, Any] = {"schema_version": SCHEMA_VERSION, "name": s.name, "title": s.title,
                           "description": s.description, "tags": list(s.tags),
                           "species": s.species, "source": dict(s.source), "genes": genes}
    if s.metadata.get("excluded"):
        doc["excluded"] = list(s.metadata["excluded"])
    p = Path(path)
    p.write_text(yaml.dump(doc, Dumper=_DUMPER, sort_keys=False, allow_unicode=True,
                           width=100, default_flow_style=None), encoding="utf-8")
    return p


@cache
def _load_cached(folder: str) -> SignatureLibrary:
    return read_yaml(folder)


def load(version: str | None = None) -> SignatureLibrary:
    """Load the built-in osteoimmunology signature library.

    Parameters
    ----------
    version
        Library version to require (e.g. ``"1.0.0"``). ``None`` loads the shipped one.
        Only the shipped version is available; its history is in
        ``data/signatures/CHANGELOG.md``.

    Returns
    -------
    SignatureLibrary
        All built-in signatures with ``.version`` set; select with
        ``lib.select(tags=["trained_immunity"])``.

    Raises
    ------
    ValueError
        When ``version`` differs from the shipped version.
    """
    lib = _load_cached(str(library_dir()))
    if version is not None and str(version) != lib.version:
        raise ValueError(
            f"Signature library version {version!r} is not available; this osteoimmune ships "
            f"version {lib.version!r}. Install the osteoimmune release that ships {version!r} "
            "or call load() without version= (changes are listed in CHANGELOG.md)."
        )
    return SignatureLibrary(lib.values(), version=lib.version, metadata=lib.metadata)


def read_table(path: str | os.PathLike, *, signature_col: str = "signature",
               gene_col: str = "gene", weight_col: str | None = "weight",
               species: str = "human", sep: str | None = None) -> SignatureLibrary:
    """Read signatures from a long table (one row per signature × gene).

    The inverse of :meth:`SignatureLibrary.to_frame`: a CSV/TSV (optionally gzipped) with a
    signature column, a gene column and an optional signed weight column.

    Parameters
    ----------
    path
        The table; the separator is guessed from the extension (``.csv`` → comma, else tab)
        unless ``sep`` is given.
    signature_col, gene_col
        Column names of the signature name and the gene.
    weight_col
        Column of signed weights; ``None`` (or absent column) gives every gene weight 1.
    species
        Species of the genes (used when the table has no ``species`` column).
    sep
        Column separator.

    Returns
    -------
    SignatureLibrary
        One signature per distinct name, in order of first appearance.

    Raises
    ------
    ValueError
        When a column is missing, a gene is repeated within a signature, or a weight is not
        a finite number.
    """
    p = Path(path)
    if sep is None:
        sep = "," if ".csv" in p.suffixes else "\t"
    df = pd.read_csv(p, sep=sep, dtype={signature_col: str, gene_col: str})
    need = [signature_col, gene_col]
    if weight_col is not None and weight_col in df.columns:
        need.append(weight_col)
    else:
        weight_col = None
    absent = [c for c in need if c not in df.columns]
    if absent:
        raise ValueError(f"{p.name}: column(s) {absent} not found (columns: "
                         f"{list(df.columns)}). Pass signature_col=/gene_col= to name them.")
    sigs: list[Signature] = []
    for name, sub in df.groupby(signature_col, sort=False):
        genes = sub[gene_col].astype(str).str.strip().tolist()
        dup = sorted({g for g in genes if genes.count(g) > 1})
        if dup:
            raise ValueError(f"{p.name}: signature {name!r} lists {dup[:5]} more than once; "
                             "keep one row per signature and gene.")
        w = None
        if weight_col is not None:
            w = pd.to_numeric(sub[weight_col], errors="coerce").to_numpy()
            if not pd.notna(w).all():
                raise ValueError(f"{p.name}: signature {name!r} has non-numeric weights in "
                                 f"{weight_col!r}; give a number per row or weight_col=None.")
            w = None if (w == 1.0).all() else tuple(float(x) for x in w)
        sp = species
        if "species" in sub.columns and sub["species"].nunique() == 1:
            sp = str(sub["species"].iloc[0])
        tags: tuple[str, ...] = ()
        if "tags" in sub.columns and isinstance(sub["tags"].iloc[0], str):
            tags = tuple(t for t in sub["tags"].iloc[0].split(";") if t)
        sigs.append(Signature(name=str(name), genes=tuple(genes), weights=w, species=sp,
                              tags=tags, source={"file": p.name}))
    if not sigs:
        raise ValueError(f"{p.name}: the table has no rows.")
    return SignatureLibrary(sigs)
