"""``oi.tl.score``: score many signatures in one pass over the expression matrix."""

from __future__ import annotations

import inspect
import time
from typing import Any

import numpy as np
import pandas as pd
from anndata import AnnData

from .._version import __version__
from ..pp._checks import ScaleReport, detect_scale, scale_error
from ..scoring import METHODS, MatrixSource, ScoreContext, run_method
from ..scoring._runner import describe, expressed_genes
from ..signatures._matching import match_signatures
from ..signatures._signature import SignatureLibrary, as_signature_list

__all__ = ["coverage", "score"]


def _resolve_matrix(adata: AnnData, layer: str | None, use_raw: bool | None):
    if layer is not None and use_raw:
        raise ValueError("Pass either layer= or use_raw=True, not both.")
    if use_raw is None:
        use_raw = adata.raw is not None and layer is None
    if use_raw:
        if adata.raw is None:
            raise ValueError("use_raw=True but adata.raw is empty; pass use_raw=False or a layer.")
        return adata.raw.X, adata.raw.var_names, adata.raw.var, "adata.raw.X"
    if layer is not None:
        if layer not in adata.layers:
            raise KeyError(f"Layer {layer!r} not found; available layers: "
                           f"{list(adata.layers.keys()) or 'none'}. Pass one of them, or "
                           "layer=None to use adata.X.")
        return adata.layers[layer], adata.var_names, adata.var, f"adata.layers[{layer!r}]"
    return adata.X, adata.var_names, adata.var, "adata.X"


def _obs_word(adata: AnnData, report=None) -> str:
    """"samples" for bulk data (declared by a loader, or log intensities), else "cells"."""
    meta = adata.uns.get("osteoimmune", {}) if "osteoimmune" in adata.uns else {}
    kind = meta.get("data_type") if isinstance(meta, dict) else None
    if kind in ("bulk", "microarray", "rnaseq", "bulk_rnaseq"):
        return "samples"
    if kind in ("single_cell", "single-cell", "sc"):
        return "cells"
    if report is not None and report.kind == "log_intensity":
        return "samples"
    if report is not None and report.kind == "counts" and report.zero_fraction < 0.5 \
            and adata.n_obs <= 2000:
        return "samples"  # dense count matrices of few observations: bulk RNA-seq
    return "cells"


_SPECIES_ALIASES = {"human": "human", "homo sapiens": "human", "hs": "human", "hsa": "human",
                    "mouse": "mouse", "mus musculus": "mouse", "mm": "mouse", "mmu": "mouse"}


def detect_species(adata: AnnData, names: pd.Index | None = None) -> str | None:
    """Species of a data set: declared in ``.uns`` or read off its gene identifiers.

    Looks at ``adata.uns["species"]``, ``adata.uns["dataset"]["organism"]`` and
    ``adata.uns["osteoimmune"]["species"]``, then at the gene names: Ensembl ids
    (``ENSMUSG`` vs ``ENSG``) or symbol case (``Il1b`` mouse, ``IL1B`` human).

    Parameters
    ----------
    adata
        The data.
    names
        Gene identifiers to inspect (default ``adata.var_names``).

    Returns
    -------
    str or None
        ``"human"``, ``"mouse"`` or ``None`` when undecided.
    """
    cands = [adata.uns.get("species")]
    ds = adata.uns.get("dataset")
    if isinstance(ds, dict):
        cands += [ds.get("organism"), ds.get("species")]
    meta = adata.uns.get("osteoimmune")
    if isinstance(meta, dict):
        cands.append(meta.get("species"))
    for c in cands:
        if isinstance(c, str) and c.strip().lower() in _SPECIES_ALIASES:
            return _SPECIES_ALIASES[c.strip().lower()]
    names = pd.Index(adata.var_names if names is None else names).astype(str)
    sample = names[:: max(1, len(names) // 5000)]
    ens_m = sample.str.startswith("ENSMUSG").mean()
    ens_h = sample.str.match(r"^ENSG\d").mean()
    if max(ens_m, ens_h) > 0.5:
        return "mouse" if ens_m > ens_h else "human"
    alpha = sample[sample.str.match(r"^[A-Za-z][A-Za-z0-9-]+$")]
    if len(alpha) < 10:
        return None
    upper = (alpha == alpha.str.upper()).mean()
    title = alpha.str.match(r"^[A-Z][a-z0-9-]*[a-z][a-z0-9-]*$").mean()
    if upper > 0.7:
        return "human"
    if title > 0.6:
        return "mouse"
    return None


def _to_data_species(sigs, data_species: str | None):
    """Translate signatures of another species through the shipped ortholog table."""
    if data_species is None:
        return sigs, {}
    out, conv = [], {}
    for sig in sigs:
        sp_ = _SPECIES_ALIASES.get(str(sig.species).lower(), sig.species)
        if sp_ in ("human", "mouse") and sp_ != data_species:
            new = sig.to_species(data_species, warn_unmapped=False)
            rep = dict(new.metadata.get("conversion", {}))
            conv[sig.name] = rep
            out.append(new)
        else:
            out.append(sig)
    return out, conv


def _first_chunk_checks(indptr: np.ndarray, indices: np.ndarray, data: np.ndarray,
                        n_vars: int, lazy: bool) -> tuple[ScaleReport, np.ndarray | None]:
    """The scale report of the first rows and, for lazy data, the genes they express."""
    report = detect_scale(data, len(indptr) - 1, n_vars)
    return report, expressed_genes(indices, data, n_vars) if lazy else None


def score(
    adata: AnnData,
    signatures: Any,
    method: str = "module",
    *,
    layer: str | None = None,
    use_raw: bool | None = None,
    gene_symbols: str | None = None,
    species: str | None = None,
    random_state: int | None = 0,
    inplace: bool = False,
    key_added: str | None = None,
    chunk_size: int = 10_000,
    progress: bool = True,
    min_coverage: float = 0.5,
    allow_counts: bool = False,
    on_empty: str | None = None,
    compute: bool = True,
    **method_options: Any,
) -> pd.DataFrame:
    """Score observations for many gene signatures in one pass over the matrix.

    Parameters
    ----------
    adata
        Observations (cells, or samples of bulk data) × genes. ``X`` may be a scipy sparse
        matrix, a numpy array, a backed dataset (``read_h5ad(..., backed="r")``) or a dask
        array.
    signatures
        A :class:`~osteoimmune.signatures.SignatureLibrary`, a
        :class:`~osteoimmune.signatures.Signature`, a list of signatures, a dict
        ``{name: [genes]}`` (UCell-style ``-`` suffix for down genes) or a path to a GMT file.
    method
        ``"module"`` (scanpy/Seurat module score), ``"aucell"``, ``"ucell"``, ``"zmean"``
        (weighted mean of gene z-scores) or ``"scdrs"`` (matched control sets with per-cell
        p-values).
    layer
        Use ``adata.layers[layer]`` instead of ``X``.
    use_raw
        Use ``adata.raw``; ``None`` (default) uses it when present and no layer is given,
        as scanpy does.
    gene_symbols
        Column of ``adata.var`` holding gene symbols, when ``var_names`` are other ids.
    species
        Species of the data (``"human"``/``"mouse"``) for alias resolution.
    random_state
        Seed for every random choice (control genes of ``module`` and ``scdrs``).
    inplace
        Store the scores in ``adata.obsm[key_added]`` (default ``f"{method}_scores"``) and
        the coverage report and parameters in ``adata.uns["osteoimmune"]``.
    key_added
        Key in ``.obsm`` when ``inplace=True``.
    chunk_size
        Observations per chunk; bounds the memory of a pass (a backed file holds two
        chunks at a time: one being scored, the next being read). Results do not depend
        on it.
    progress
        Show tqdm progress bars.
    min_coverage
        Warn for signatures with a smaller fraction of their genes found.
    allow_counts
        Score data that look like raw counts with a method that expects log data.
    on_empty
        What to do with a signature none of whose genes is in the data: ``"raise"`` (the
        default for a dict, a Signature, a list or a GMT file) or ``"drop"`` it with a
        warning (the default for a :class:`~osteoimmune.signatures.SignatureLibrary`, which
        is by design broader than any one data set). Its column is then absent.
    compute
        Only used when the matrix is a dask array (scores are computed block by block with
        ``map_blocks`` on the active dask scheduler, e.g. a ``dask.distributed.Client``).
        ``True`` (default) returns a pandas DataFrame; ``False`` returns a lazy
        :class:`dask.dataframe.DataFrame` (gene statistics are computed at call time, the
        scoring pass on ``.compute()``), without ``.attrs``; not possible with
        ``inplace=True`` nor for methods normalised over all observations (scDRS).
    **method_options
        Options of the method: ``ctrl_size``, ``n_bins``, ``gene_pool`` (module); ``n_up``
        (aucell); ``max_rank``, ``w_neg``, ``missing_genes`` (ucell); ``n_ctrl``,
        ``n_mean_bin``, ``n_var_bin`` (scdrs).

    Returns
    -------
    pandas.DataFrame
        Index ``adata.obs_names``, one column per signature (scDRS adds ``<name>_pval``).
        ``.attrs`` holds ``"coverage"`` (DataFrame: requested/found/missing per signature)
        and ``"params"`` (method, reference, options, version).

    Raises
    ------
    ValueError
        Unknown method, a signature with no gene in the data, NaN values, or raw counts
        given to a method that expects log-normalised data.
    """
    if not isinstance(adata, AnnData):
        raise TypeError(f"adata must be an AnnData object, got {type(adata).__name__}; "
                        "wrap a matrix with anndata.AnnData(X, obs=..., var=...).")
    if method not in METHODS:
        raise ValueError(f"Unknown method {method!r}; choose one of {sorted(METHODS)}.")
    if not compute and inplace:
        raise ValueError("inplace=True stores computed scores; use compute=True, or "
                         "compute=False with inplace=False and store the result yourself.")
    if adata.n_obs == 0 or adata.n_vars == 0:
        raise ValueError(f"adata is empty ({adata.n_obs} × {adata.n_vars}); nothing to score. "
                         "Check the filtering or subsetting that produced it.")
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int | np.integer) \
            or chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive integer (observations per chunk, "
                         f"e.g. 10_000), got {chunk_size!r}.")
    if random_state is not None and (isinstance(random_state, bool)
                                     or not isinstance(random_state, int | np.integer)):
        raise TypeError(f"random_state must be an integer seed or None, got "
                        f"{type(random_state).__name__} {random_state!r}; e.g. random_state=0.")
    if not 0 <= float(min_coverage) <= 1:
        raise ValueError(f"min_coverage is a fraction of a signature's genes and must lie in "
                         f"[0, 1], got {min_coverage!r}; e.g. min_coverage=0.5.")
    t0 = time.perf_counter()
    cls = METHODS[method]
    allowed = [p for p in inspect.signature(cls.__init__).parameters if p != "self"]
    unknown = sorted(set(method_options) - set(allowed))
    if unknown:
        raise TypeError(f"Unknown option(s) for method={method!r}: {', '.join(unknown)}; "
                        f"its options are: {', '.join(allowed) or 'none'}.")
    meth = cls(**method_options)
    X, var_names, var, where = _resolve_matrix(adata, layer, use_raw)
    if gene_symbols is not None:
        if gene_symbols not in var.columns:
            raise KeyError(f"gene_symbols={gene_symbols!r} is not a column of adata.var "
                           f"(columns: {list(var.columns)}); pass the column holding gene "
                           "symbols, or gene_symbols=None when var_names are symbols.")
        match_names = pd.Index(var[gene_symbols].astype(str))
    else:
        match_names = pd.Index(var_names.astype(str))
    if on_empty is None:
        on_empty = "drop" if isinstance(signatures, SignatureLibrary) else "raise"
    sigs = as_signature_list(signatures)
    names = [s.name for s in sigs]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ValueError(f"Duplicated signature names: {dup}; names become column names and "
                         "must be unique.")
    if species is not None:
        species = _SPECIES_ALIASES.get(str(species).lower())
        if species is None:
            raise ValueError("species must be 'human' or 'mouse' (or None to detect it).")
    data_species = species or detect_species(adata, match_names)
    sigs, conversions = _to_data_species(sigs, data_species)
    source = MatrixSource(X)
    # the input checks read the first chunk of rows (on a dask cluster, where its block
    # is loaded: only the findings travel); for lazy data the genes it expresses also
    # decide one-pass scoring (run_method) and need not be looked for again
    report, first_expressed = source.first_rows_apply(
        chunk_size, _first_chunk_checks, source.shape[1], source.is_lazy)
    obs_word = _obs_word(adata, report)
    matched, coverage = match_signatures(sigs, match_names, species=data_species,
                                         min_coverage=min_coverage, obs_word=obs_word,
                                         on_empty=on_empty)
    coverage.insert(0, "species", data_species or "unknown")
    coverage["n_no_ortholog"] = [len(conversions.get(n, {}).get("unmapped", []))
                                 for n in coverage.index]
    coverage["converted_from"] = [conversions[n].get("from", "") if n in conversions else ""
                                  for n in coverage.index]
    if not meth.accepts_counts and not allow_counts:
        msg = scale_error(report, method, where, obs_word)
        if msg:
            if layer is None and len(adata.layers):
                msg += (f" adata.layers holds {list(adata.layers.keys())}: if one of them is "
                        "log-normalised, pass layer='<name>'.")
            raise ValueError(msg)
    if not meth.accepts_negative and report.kind == "scaled":
        raise ValueError(
            f"{where} holds negative values (scaled or centred data); method={method!r} needs "
            "log-normalised expression. Use the unscaled data (adata.raw or a layer)."
        )
    ctx = ScoreContext(matched=matched, n_obs=source.shape[0], n_vars=source.shape[1],
                       var_names=pd.Index(var_names.astype(str)), stats=None,
                       random_state=random_state, obs_word=obs_word)
    if first_expressed is not None:
        ctx.extra["first_chunk_expressed"] = first_expressed
    result = run_method(meth, source, ctx, obs_names=adata.obs_names, chunk_size=int(chunk_size),
                        progress=progress, compute=compute)
    if not isinstance(result, pd.DataFrame):  # lazy dask result (compute=False)
        return result
    params = {**describe(meth), "random_state": random_state, "matrix": where,
              "input_scale": report.kind, "n_obs": int(source.shape[0]),
              "n_vars": int(source.shape[1]), "passes_over_X": ctx.extra.get("passes_over_X"),
              "osteoimmune_version": __version__,
              "seconds": round(time.perf_counter() - t0, 3)}
    # attrs stay JSON-serialisable so that result.to_parquet() keeps them
    result.attrs["coverage"] = _jsonable_records(coverage.reset_index())
    result.attrs["params"] = _jsonable(params)
    if inplace:
        key = key_added or f"{method}_scores"
        adata.obsm[key] = result
        store = adata.uns.setdefault("osteoimmune", {})
        store[key] = {"params": _jsonable(params), "coverage": coverage.reset_index()}
    return result


def coverage(scores: pd.DataFrame) -> pd.DataFrame:
    """The gene coverage report of a score table as a DataFrame.

    Parameters
    ----------
    scores
        A result of :func:`score` (its ``.attrs["coverage"]``), or the report itself.

    Returns
    -------
    pandas.DataFrame
        Indexed by signature: ``n_requested``, ``n_found``, ``n_missing``, ``coverage``,
        ``missing`` (``;``-joined) and ``n_alias``.
    """
    rep = scores.attrs.get("coverage") if isinstance(scores, pd.DataFrame) and \
        "coverage" in scores.attrs else scores
    if rep is None:
        raise ValueError("No coverage report found: pass the DataFrame returned by "
                         "oi.tl.score (its .attrs['coverage']).")
    df = pd.DataFrame(rep)
    return df.set_index("signature") if "signature" in df.columns else df


def _jsonable_records(df: pd.DataFrame) -> dict[str, list]:
    return {c: [v.item() if isinstance(v, np.generic) else v for v in df[c].tolist()]
            for c in df.columns}


def _jsonable(d: dict) -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out[k] = _jsonable(v)
        elif isinstance(v, np.generic):
            out[k] = v.item()
        elif v is None:
            out[k] = "None"
        else:
            out[k] = v
    return out
