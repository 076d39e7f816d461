"""Bulk expression helpers: feature id -> gene symbol collapsing and RNA-seq normalisation."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp
from anndata import AnnData

from .._paths import data_root
from .._utils import warn

COLLAPSE_RULES = ("max_mean", "mean", "sum")
NORMALIZE_METHODS = ("cpm_log1p", "log2cpm", "logcpm_edger")
_ID_TABLES = {
    "entrez_mouse": "entrez_symbol_mouse.tsv.gz",
    "entrez_human": "entrez_symbol_human.tsv.gz",
}


@cache
def _id_table(name: str) -> pd.Series:
    path = data_root() / "reference" / _ID_TABLES[name]
    df = pd.read_csv(path, sep="\t", comment="#", dtype=str)
    return pd.Series(df["symbol"].to_numpy(), index=df["entrez_id"].to_numpy(), name=name)


def id_table(name: str) -> pd.Series:
    """Return a shipped identifier -> symbol table.

    Parameters
    ----------
    name
        ``"entrez_mouse"`` (NCBI Gene ``Mus_musculus.gene_info``, May 2019) or
        ``"entrez_human"`` (HGNC complete set, June 2026, approved records with an Entrez id).

    Returns
    -------
    pandas.Series
        Index: Entrez Gene ids as strings; values: gene symbols.
    """
    if name not in _ID_TABLES:
        raise ValueError(f"Unknown id table {name!r}: choose one of {sorted(_ID_TABLES)}, or "
                         "pass your own mapping (dict, Series or two-column DataFrame).")
    return _id_table(name).copy()


def _as_mapping(mapping) -> pd.Series:
    if isinstance(mapping, str) and mapping in _ID_TABLES:
        return _id_table(mapping)
    if isinstance(mapping, (str, Path)):
        path = Path(mapping)
        if not path.exists():
            raise FileNotFoundError(
                f"mapping {str(mapping)!r} is neither a shipped id table ({sorted(_ID_TABLES)}) "
                "nor an existing file: pass a dict, a Series, a two-column DataFrame or the "
                "path of a two-column (id, symbol) CSV/TSV file.")
        sep = "\t" if path.name.endswith((".tsv", ".tsv.gz", ".txt", ".txt.gz")) else ","
        mapping = pd.read_csv(path, sep=sep, comment="#", dtype=str)
    if isinstance(mapping, pd.DataFrame):
        if mapping.shape[1] != 2:
            raise ValueError(
                f"A DataFrame mapping needs exactly two columns (id, symbol); got "
                f"{list(mapping.columns)}. Select them first, e.g. df[['ID', 'Gene symbol']].")
        mapping = pd.Series(mapping.iloc[:, 1].to_numpy(), index=mapping.iloc[:, 0].to_numpy())
    if isinstance(mapping, Mapping):
        mapping = pd.Series(dict(mapping), dtype=object)
    if not isinstance(mapping, pd.Series):
        raise TypeError(f"mapping must be a dict, Series, DataFrame, path or one of "
                        f"{sorted(_ID_TABLES)}; got {type(mapping).__name__}.")
    mapping = mapping.copy()
    mapping.index = mapping.index.astype(str).str.strip()
    if mapping.index.duplicated().any():
        dup = mapping.index[mapping.index.duplicated()].unique()
        raise ValueError(f"The mapping lists {len(dup)} id(s) more than once (e.g. "
                         f"{list(dup[:3])}): give one symbol per id.")
    return mapping


def collapse_ids(
    adata: AnnData,
    mapping,
    *,
    rule: str = "max_mean",
    id_key: str | None = None,
    layer: str | None = None,
    unmapped: str = "drop",
    multi_symbol_sep: str = "///",
) -> AnnData:
    """Map feature ids (probes, Entrez ids) to gene symbols and collapse ids of one gene.

    The input is never modified: a new AnnData is returned whose ``var_names`` are unique
    gene symbols.

    Parameters
    ----------
    adata
        Observations (samples or cells) × features; feature ids in ``var_names`` or in
        ``adata.var[id_key]``.
    mapping
        id -> symbol: a dict, a :class:`pandas.Series`, a two-column DataFrame (id, symbol),
        the path of such a CSV/TSV file, or a shipped table: ``"entrez_mouse"`` or
        ``"entrez_human"`` (see :func:`id_table`). Ids with an empty symbol, or one holding
        several symbols separated by ``multi_symbol_sep`` (e.g. Affymetrix ``"A///B"``),
        count as unmapped: a probe of several genes is not assigned to any of them.
    rule
        How several ids of one symbol are collapsed:

        - ``"max_mean"``: keep the single id with the highest mean over all observations
          (ties: the first in var order); the standard for microarray probes
          (WGCNA ``collapseRows`` "MaxMean").
        - ``"mean"``: the mean of the ids' values.
        - ``"sum"``: the sum of the ids' values (for counts, which are additive).
    id_key
        Column of ``adata.var`` holding the ids; default: ``var_names``.
    layer
        Layer whose means choose the id under ``"max_mean"``; default ``X``. Every layer is
        collapsed with the same rule (``max_mean`` keeps the same id in every layer).
    unmapped
        ``"drop"`` (default; warns with the number of ids and, for ``"sum"``, the fraction of
        the total signal dropped) or ``"keep"`` (unmapped ids keep their id as name).
    multi_symbol_sep
        Separator of several symbols in one mapping entry.

    Returns
    -------
    AnnData
        Observations unchanged; one variable per symbol with ``var["n_ids"]`` (how many ids
        were collapsed), ``var["ids"]`` (them, ``;``-separated) and, for ``"max_mean"``,
        ``var["selected_id"]``. ``uns["osteoimmune"]["id_mapping"]`` records the rule and counts.
    """
    if rule not in COLLAPSE_RULES:
        raise ValueError(f"Unknown rule {rule!r}: choose one of {COLLAPSE_RULES} "
                         "(max_mean for microarray probes, sum for counts).")
    if unmapped not in ("drop", "keep"):
        raise ValueError(f"unmapped must be 'drop' or 'keep', got {unmapped!r}.")
    if id_key is None:
        ids = pd.Index(adata.var_names.astype(str))
    else:
        if id_key not in adata.var.columns:
            raise KeyError(f"id_key {id_key!r} is not a column of adata.var (columns: "
                           f"{list(adata.var.columns)}); pass id_key=None to use var_names.")
        ids = pd.Index(adata.var[id_key].astype(str))
    ids = ids.str.strip()
    table = _as_mapping(mapping)
    sym = pd.Series(table.reindex(ids).to_numpy(), index=ids, dtype=object)
    sym = sym.where(sym.notna(), None)
    sym = sym.map(lambda s: None if s is None or str(s).strip() in ("", "nan", "---", "-")
                  else str(s).strip())
    multi = sym.map(lambda s: s is not None and multi_symbol_sep in s)
    n_multi = int(multi.sum())
    sym[multi.to_numpy()] = None
    is_unmapped = sym.isna().to_numpy()
    n_unmapped = int(is_unmapped.sum())

    X = adata.layers[layer] if layer is not None else adata.X
    if layer is not None and layer not in adata.layers:
        raise KeyError(f"Layer {layer!r} not found; available: {list(adata.layers)}.")
    means = np.asarray(X.mean(axis=0)).ravel()

    if unmapped == "keep":
        sym[is_unmapped] = ids[is_unmapped]
        keep = np.ones(len(ids), dtype=bool)
    else:
        keep = ~is_unmapped
        if not keep.any():
            raise ValueError("No id could be mapped to a gene symbol: check that the mapping's "
                             f"ids match the data's (data: {list(ids[:3])}; mapping: "
                             f"{list(table.index[:3])}) and the id_key.")
        if n_unmapped:
            msg = (f"collapse_ids: {n_unmapped} of {len(ids)} ids have no single gene symbol "
                   f"({n_multi} of them map to several genes) and were dropped")
            if rule == "sum":
                total = float(np.asarray(X.sum()))
                lost = float(np.asarray(X[:, np.flatnonzero(is_unmapped)].sum()))
                msg += f" ({100 * lost / total:.2f}% of the total signal)" if total else ""
            warn(msg + "; pass unmapped='keep' to keep them under their ids.")

    kept_pos = np.flatnonzero(keep)
    kept_sym = sym.to_numpy()[kept_pos].astype(str)
    codes, uniques = pd.factorize(kept_sym)  # first-appearance order
    n_sym = len(uniques)
    groups = pd.Series(kept_pos).groupby(codes)
    id_lists = [";".join(ids[g.to_numpy()]) for _, g in groups]
    n_ids = np.bincount(codes, minlength=n_sym)

    var = pd.DataFrame({"n_ids": n_ids, "ids": id_lists}, index=pd.Index(uniques, dtype=str))
    if rule == "max_mean":
        order = np.lexsort((kept_pos, -means[kept_pos], codes))  # by symbol, mean desc, position
        first = np.ones(len(order), dtype=bool)
        first[1:] = codes[order][1:] != codes[order][:-1]
        chosen = kept_pos[order[first]]  # one id per symbol, in symbol-code order
        var["selected_id"] = ids[chosen].to_numpy()

        def apply(M):
            return M[:, chosen]
    else:
        S = sp.csr_matrix((np.ones(len(kept_pos)), (kept_pos, codes)),
                          shape=(len(ids), n_sym))
        if rule == "mean":
            S = S @ sp.diags(1.0 / n_ids)

        def apply(M):
            out = M @ S
            return sp.csr_matrix(out) if sp.issparse(M) else np.asarray(out)

    new = AnnData(X=apply(adata.X), obs=adata.obs.copy(), var=var,
                  uns=copy.deepcopy(dict(adata.uns)))
    for key, M in adata.layers.items():
        new.layers[key] = apply(M)
    for key, M in adata.obsm.items():
        new.obsm[key] = M.copy()
    oi_uns = dict(new.uns.get("osteoimmune", {}))
    oi_uns["id_mapping"] = {
        "rule": rule,
        "n_ids": int(len(ids)),
        "n_unmapped": n_unmapped,
        "n_multi_symbol": n_multi,
        "unmapped": unmapped,
        "n_symbols": int(n_sym),
        "n_symbols_from_several_ids": int((n_ids > 1).sum()),
    }
    new.uns["osteoimmune"] = oi_uns
    return new


def _counts_matrix(adata: AnnData, layer: str | None):
    if layer is not None:
        if layer not in adata.layers:
            raise KeyError(f"Layer {layer!r} not found; available: {list(adata.layers)}.")
        return adata.layers[layer], f"adata.layers[{layer!r}]"
    return adata.X, "adata.X"


def normalize_bulk(
    adata: AnnData,
    method: str = "cpm_log1p",
    *,
    layer: str | None = None,
    prior_count: float = 2.0,
    allow_non_integer: bool = False,
    inplace: bool = False,
) -> AnnData | None:
    """Normalise bulk RNA-seq counts (samples × genes) for signature scoring.

    With library size :math:`L_s = \\sum_g c_{sg}` of sample :math:`s`:

    - ``"cpm_log1p"`` (default): :math:`\\ln(1 + 10^6 c_{sg} / L_s)`, the natural log of
      1 + counts per million: the bulk analogue of ``normalize_total`` + ``log1p``.
    - ``"log2cpm"``: :math:`\\log_2(1 + 10^6 c_{sg} / L_s)`.
    - ``"logcpm_edger"``: edgeR's ``cpm(y, log=TRUE, prior.count=prior_count)``, a
      moderated (variance-stabilising) log2 CPM: with :math:`p_s = \\text{prior\\_count}
      \\cdot L_s / \\bar L`, :math:`\\log_2((c_{sg} + p_s) / (L_s + 2 p_s) \\cdot 10^6)`.
      Norm factors are 1 (no TMM).

    Parameters
    ----------
    adata
        Samples × genes with raw counts in ``X`` (or ``layer``).
    method
        One of ``"cpm_log1p"``, ``"log2cpm"``, ``"logcpm_edger"``.
    layer
        Take the counts from this layer instead of ``X``.
    prior_count
        Prior count of ``"logcpm_edger"`` (edgeR's default 2).
    allow_non_integer
        Accept non-integer values (e.g. RSEM or salmon expected counts). By default
        non-integer values are an error, since they usually mean the data are already
        normalised.
    inplace
        If True, write the result into ``adata`` and return None; by default a new AnnData
        is returned and ``adata`` is left unchanged.

    Returns
    -------
    AnnData or None
        ``X`` holds the normalised values (float64, dense), ``layers["counts"]`` the counts
        (unless a ``counts`` layer already exists), ``obs["library_size"]`` the library sizes,
        and ``uns["osteoimmune"]["normalization"]`` the method and its parameters.
    """
    if method not in NORMALIZE_METHODS:
        raise ValueError(f"Unknown method {method!r}: choose one of {NORMALIZE_METHODS}.")
    C, where = _counts_matrix(adata, layer)
    counts = C.toarray() if sp.issparse(C) else np.asarray(C)
    counts = counts.astype(np.float64, copy=True)
    if not np.isfinite(counts).all():
        raise ValueError(f"{where} holds NaN or infinite values; normalize_bulk needs raw counts.")
    if (counts < 0).any():
        raise ValueError(f"{where} holds negative values, so it is not raw counts (it may "
                         "already be log-transformed or scaled); normalize_bulk needs counts.")
    if not allow_non_integer and not np.array_equal(counts, np.round(counts)):
        raise ValueError(
            f"{where} holds non-integer values, so it does not look like raw counts (already "
            "normalised?). Pass the raw counts (layer='counts' if you kept them), or "
            "allow_non_integer=True for expected counts from RSEM/salmon.")
    lib = counts.sum(axis=1)
    if (lib <= 0).any():
        bad = list(adata.obs_names[lib <= 0][:5])
        raise ValueError(f"{int((lib <= 0).sum())} sample(s) have no counts at all (e.g. {bad}): "
                         "remove them before normalising, e.g. adata[adata.X.sum(1) > 0].")
    if method == "cpm_log1p":
        out = np.log1p(counts / lib[:, None] * 1e6)
    elif method == "log2cpm":
        out = np.log2(1.0 + counts / lib[:, None] * 1e6)
    else:
        if prior_count < 0:
            raise ValueError(f"prior_count must be >= 0, got {prior_count}.")
        prior = prior_count * lib / lib.mean()
        out = np.log2((counts + prior[:, None]) / (lib + 2 * prior)[:, None] * 1e6)

    target = adata if inplace else adata.copy()
    if "counts" not in target.layers:
        target.layers["counts"] = C.copy()
    target.X = out
    target.obs["library_size"] = lib
    oi_uns = dict(target.uns.get("osteoimmune", {}))
    oi_uns.setdefault("data_type", "rnaseq")
    oi_uns["normalization"] = {
        "method": method,
        "source": where,
        "prior_count": float(prior_count) if method == "logcpm_edger" else None,
        "scale": "natural log" if method == "cpm_log1p" else "log2",
    }
    oi_uns["normalization"] = {k: v for k, v in oi_uns["normalization"].items() if v is not None}
    target.uns["osteoimmune"] = oi_uns
    return None if inplace else target
