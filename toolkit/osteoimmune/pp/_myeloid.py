"""``oi.pp.select_myeloid``: keep the myeloid cells, by annotation or by marker scoring."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from anndata import AnnData

from .._utils import warn

__all__ = ["MYELOID_TYPES", "NON_MYELOID_MARKERS", "map_myeloid_labels", "select_myeloid"]

#: Controlled vocabulary of myeloid cell types.
MYELOID_TYPES: tuple[str, ...] = (
    "classical monocyte", "non-classical monocyte", "macrophage", "cDC", "pDC",
    "neutrophil", "osteoclast", "myeloid progenitor",
)

#: Marker signature of the built-in library for each vocabulary entry.
LIBRARY_MARKERS: dict[str, str] = {
    "classical monocyte": "marker_classical_monocyte",
    "non-classical monocyte": "marker_nonclassical_monocyte",
    "macrophage": "marker_macrophage",
    "cDC": "marker_cdc",
    "pDC": "marker_pdc",
    "neutrophil": "marker_neutrophil",
    "osteoclast": "marker_osteoclast",
    "myeloid progenitor": "marker_myeloid_progenitor",
}

#: Contrast sets for the non-myeloid decision of marker-based selection: canonical lineage
#: markers (human symbols; matched case-insensitively, so mouse symbols match too) of
#: T cells (CD3 complex), B cells (CD20/CD79/CD19), NK cells, erythroid cells (haemoglobins)
#: and platelets/megakaryocytes (PPBP, PF4).
NON_MYELOID_MARKERS: dict[str, list[str]] = {
    "T cell": ["CD3D", "CD3E", "CD3G", "CD2", "CD247", "TRAC"],
    "B cell": ["MS4A1", "CD79A", "CD79B", "CD19", "BANK1", "CD22"],
    "NK cell": ["NKG7", "GNLY", "KLRD1", "KLRF1", "NCAM1"],
    "erythroid": ["HBB", "HBA1", "HBA2", "ALAS2", "CA1"],
    "platelet": ["PPBP", "PF4", "GP9", "ITGA2B"],
}

# Ordered rules on the normalised label (lower case, "_" and "." as spaces): the first
# match wins, so specific patterns come before generic ones ("non-classical" before
# "classical", "plasmacytoid dendritic" before "dendritic", "monocyte-derived macrophage"
# before "monocyte").
_RULES: list[tuple[str, str]] = [
    ("osteoclast", r"osteoclast|\bp?re-?ocs?\b|\bocs?\b|\btrap\+"),
    ("pDC", r"\bp-?dcs?\b|plasmacytoid"),
    ("macrophage", r"macrophage|\bmacs?\b|\bm[φΦф]|kupffer|microglia|\bbmdms?\b|\bbmms?\b|"
                   r"\btams?\b|histiocyte|\bmo-?macs?\b|\bmdms?\b"),
    ("cDC", r"\bc-?dc\s?\d?s?\b|\bm-?dcs?\b|\bdc\s?\d?s?\b|dendritic|langerhans|\bmo-?dcs?\b|"
            r"\bmodcs?\b"),
    ("myeloid progenitor", r"\bgmps?\b|\bcmps?\b|\bmdps?\b|\bcdps?\b|\bcmops?\b|"
                           r"myeloid progenitor|myeloid precursor|granulocyte[- ]monocyte "
                           r"progenitor|common myeloid|monoblast|promonocyte|myeloblast|"
                           r"monocyte progenitor"),
    ("neutrophil", r"neutrophil|\bneuts?\b|\bpmns?\b|granulocyte|myelocyte|\bband cells?\b"),
    ("non-classical monocyte", r"non-?\s?classical|(cd16|fcgr3a).*mono|mono.*(cd16|fcgr3a)|"
                               r"cd14\s?-?\s?(lo|low|dim|neg)\b|cd14-(?!\s?(hi|high))|"
                               r"ly-?6c\s?-?\s?(lo|low|neg)\b|ly-?6c-(?!\s?(hi|high))|patrolling|"
                               r"\bncms?\b|intermediate mono"),
    ("classical monocyte", r"classical|cd14.*mono|mono.*cd14|ly-?6c\s?[-+]?\s?(hi|high)|ly-?6c\+|"
                           r"inflammatory mono|\bcms?\b|\bmonos?\b|monocyte"),
]
_OTHER_MYELOID = r"\bmast|basophil|eosinophil|megakaryo|platelet|\bmks?\b"
_NON_MYELOID = (r"\bt\b|\bt[- ]?cells?|\btregs?\b|\bt ?reg|\bcd[48]\b|cd4\+|cd8\+|\bnk\b|nk[- ]?cells?|"
                r"natural killer|\bnkt\b|\bb\b|\bb[- ]?cells?|cd19|plasma|erythro|\brbcs?\b|"
                r"\bhscs?\b|\bhspcs?\b|stem|cd34|\bilcs?\b|mait|gamma ?delta|\bgd ?t|lymph|"
                r"fibroblast|endotheli|osteoblast|osteocyte|chondro|epitheli|stromal|"
                r"mesenchym|adipo|\bmscs?\b|keratino|\bmep\b|\bclp\b|pericyte|smooth muscle")


def _normalise(label: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"[_.]", " ", str(label).strip().lower()))


def map_myeloid_labels(labels: Sequence | pd.Series,
                       mapping: Mapping[str, str | None] | None = None) -> pd.DataFrame:
    """Map annotation labels to the controlled myeloid vocabulary.

    Parameters
    ----------
    labels : sequence or pandas.Series
        Cell-type labels (e.g. ``adata.obs["cell_type"]``).
    mapping : dict of str to str or None, optional
        Explicit ``{label: vocabulary entry}`` overrides (``None`` marks a label as not
        myeloid); checked before the built-in rules.

    Returns
    -------
    pandas.DataFrame
        One row per distinct label: ``label, n_cells, myeloid_type`` (vocabulary entry or
        NaN), ``status`` (``"myeloid"``, ``"non-myeloid"``, ``"other myeloid"`` for mast
        cells, basophils, eosinophils and megakaryocytes outside the vocabulary, or
        ``"not recognised"``) and ``rule`` (``"mapping"`` or the rule that matched).

    Examples
    --------
    >>> map_myeloid_labels(["CD14+ Monocyte", "FCGR3A+ Monocytes", "mDC", "T cell"])[
    ...     ["label", "myeloid_type"]]  # doctest: +NORMALIZE_WHITESPACE
                   label            myeloid_type
    0     CD14+ Monocyte      classical monocyte
    1  FCGR3A+ Monocytes  non-classical monocyte
    2                mDC                     cDC
    3             T cell                     NaN
    """
    mapping = dict(mapping or {})
    bad = {k: v for k, v in mapping.items() if v is not None and v not in MYELOID_TYPES}
    if bad:
        raise ValueError(f"mapping values {bad} are not in the vocabulary {MYELOID_TYPES} "
                         "(use None for labels that are not myeloid).")
    s = pd.Series(labels)
    counts = s.astype(object).where(s.notna(), None).value_counts(dropna=False, sort=False)
    rows = []
    for label, n in counts.items():
        if label is None or (isinstance(label, float) and np.isnan(label)):
            rows.append((label, int(n), np.nan, "not recognised", "missing label"))
            continue
        if label in mapping or str(label) in mapping:
            v = mapping.get(label, mapping.get(str(label)))
            rows.append((label, int(n), v if v is not None else np.nan,
                         "myeloid" if v is not None else "non-myeloid", "mapping"))
            continue
        norm = _normalise(label)
        hit = next(((t, p) for t, p in _RULES if re.search(p, norm)), None)
        if hit is not None:
            rows.append((label, int(n), hit[0], "myeloid", hit[0]))
        elif re.search(_OTHER_MYELOID, norm):
            rows.append((label, int(n), np.nan, "other myeloid", "outside vocabulary"))
        elif re.search(_NON_MYELOID, norm):
            rows.append((label, int(n), np.nan, "non-myeloid", "lineage label"))
        else:
            rows.append((label, int(n), np.nan, "not recognised", ""))
    return pd.DataFrame(rows, columns=["label", "n_cells", "myeloid_type", "status", "rule"])


def _marker_dict(markers, species: str | None) -> dict:
    if markers is not None:
        if isinstance(markers, Mapping):
            unknown = [k for k in markers if k not in MYELOID_TYPES]
            if unknown:
                raise ValueError(f"markers keys {unknown} are not vocabulary entries "
                                 f"{MYELOID_TYPES}.")
            return dict(markers)
        from ..signatures import as_signature_list

        sigs = {s.name: s for s in as_signature_list(markers)}
        inv = {v: k for k, v in LIBRARY_MARKERS.items()}
        out = {inv.get(n, n): s for n, s in sigs.items()}
        unknown = [k for k in out if k not in MYELOID_TYPES]
        if unknown:
            raise ValueError(f"marker signatures {unknown} are neither vocabulary entries nor "
                             f"library marker names {list(LIBRARY_MARKERS.values())}.")
        return out
    from ..signatures import load

    lib = load().select(tags="myeloid_identity")
    out = {}
    for t, name in LIBRARY_MARKERS.items():
        if name in lib:
            sig = lib[name]
            if species == "mouse" and getattr(sig, "species", "human") != "mouse":
                sig = sig.to_species("mouse", warn_unmapped=False)
            out[t] = sig
    if not out:
        raise ValueError("the signature library has no myeloid marker set; pass markers=.")
    return out


def _clusters(adata: AnnData, cluster_key, neighbors_key, resolution, random_state,
              X, n_pcs) -> np.ndarray:
    import scanpy as sc

    if cluster_key is not None:
        if cluster_key not in adata.obs.columns:
            raise KeyError(f"cluster_key={cluster_key!r} is not a column of adata.obs "
                           f"(columns: {list(adata.obs.columns)}); pass an existing "
                           "clustering column, or omit it to run Leiden.")
        return adata.obs[cluster_key].astype(str).to_numpy()
    tmp = AnnData(obs=pd.DataFrame(index=adata.obs_names.copy()))
    conn_key = (adata.uns.get(neighbors_key or "neighbors", {}) or {}).get(
        "connectivities_key", "connectivities")
    if neighbors_key is not None and conn_key not in adata.obsp:
        raise KeyError(f"neighbors_key={neighbors_key!r}: no graph "
                       f"adata.obsp[{conn_key!r}]; run sc.pp.neighbors or omit it.")
    if conn_key in adata.obsp:
        adjacency = adata.obsp[conn_key]
    else:
        import scipy.sparse as sp

        work = AnnData(X=X if not sp.issparse(X) else X.astype(np.float32),
                       obs=tmp.obs.copy())
        n_comps = int(max(2, min(n_pcs, work.n_obs - 1, work.n_vars - 1)))
        sc.pp.pca(work, n_comps=n_comps, random_state=random_state)
        sc.pp.neighbors(work, n_neighbors=min(15, work.n_obs - 1), random_state=random_state)
        adjacency = work.obsp["connectivities"]
    sc.tl.leiden(tmp, resolution=resolution, adjacency=adjacency, random_state=random_state,
                 key_added="cluster", flavor="igraph", n_iterations=2, directed=False)
    return tmp.obs["cluster"].astype(str).to_numpy()


def select_myeloid(
    adata: AnnData,
    annotation_key: str | None = None,
    *,
    keep: Sequence[str] | None = None,
    mapping: Mapping[str, str | None] | None = None,
    markers=None,
    contrast_markers: Mapping[str, Sequence[str]] | None = None,
    cluster_key: str | None = None,
    neighbors_key: str | None = None,
    resolution: float = 1.0,
    min_score: float = 0.0,
    min_confidence: float = 0.5,
    layer: str | None = None,
    use_raw: bool | None = None,
    species: str | None = None,
    n_pcs: int = 30,
    random_state: int = 0,
    key_added: str = "myeloid_type",
    return_mask: bool = False,
) -> AnnData | np.ndarray:
    """Select myeloid cells and label them with a controlled vocabulary.

    With ``annotation_key`` the labels are mapped to the vocabulary (classical monocyte,
    non-classical monocyte, macrophage, cDC, pDC, neutrophil, osteoclast, myeloid
    progenitor) by ordered name rules (see :func:`map_myeloid_labels`; e.g.
    ``"CD14+ Monocytes"``, ``"FCGR3A+ Mono"``, ``"mDC"``, ``"Neutrophils"``, ``"GMP"``);
    labels not recognised are excluded with a warning naming them. Without it, cells are
    clustered (``cluster_key``, else Leiden on the existing neighbour graph, else on a
    graph computed from a PCA of the expression) and every marker set is scored
    (:func:`osteoimmune.tl.score`, ``method="module"``) together with non-myeloid
    contrast sets (T, B, NK, erythroid, platelet). A cluster takes the type with the
    highest mean score; it is non-myeloid when that type is a contrast set or its score is
    below ``min_score``. Its confidence is the fraction of its cells whose own best type
    agrees with the cluster label; clusters under ``min_confidence`` are reported in a
    warning as ambiguous (and still labelled).

    Parameters
    ----------
    adata : anndata.AnnData
        Cells × genes (log-normalised for marker scoring). Never modified.
    annotation_key : str or None
        Column of ``adata.obs`` with cell-type labels.
    keep : sequence of str or None
        Vocabulary entries to keep (default: all).
    mapping : dict or None
        Extra ``{label: vocabulary entry or None}`` for the annotation path.
    markers : dict, SignatureLibrary or None
        Marker sets ``{vocabulary entry: genes}`` (or signatures named like the library's
        ``marker_*`` sets); default: ``oi.signatures.load().select(tags="myeloid_identity")``.
    contrast_markers : dict or None
        Non-myeloid contrast sets (default :data:`NON_MYELOID_MARKERS`; ``{}`` disables).
    cluster_key : str or None
        Existing clustering in ``adata.obs`` to label instead of running Leiden.
    neighbors_key : str or None
        Key of an existing neighbour graph (default: ``adata.obsp["connectivities"]``
        when present).
    resolution : float
        Leiden resolution.
    min_score : float
        Minimum cluster-mean marker score of a myeloid label.
    min_confidence : float
        Clusters with a lower confidence are reported as ambiguous.
    layer, use_raw, species : optional
        Passed to :func:`osteoimmune.tl.score` (and ``species="mouse"`` translates the
        library markers to mouse orthologs).
    n_pcs : int
        Principal components for a computed neighbour graph.
    random_state : int
        Seed of PCA, neighbours, Leiden and the module-score control genes.
    key_added : str
        Column of the returned ``obs`` holding the myeloid type.
    return_mask : bool
        Return a boolean mask over ``adata.obs_names`` instead of a new AnnData.

    Returns
    -------
    anndata.AnnData or numpy.ndarray
        A new AnnData with the myeloid cells (``obs[key_added]`` categorical; marker
        selection adds ``obs["myeloid_cluster"]`` and ``obs["myeloid_confidence"]``) and
        the report in ``uns["osteoimmune"]["select_myeloid"]`` (a DataFrame per label or
        cluster); or the boolean mask.

    Raises
    ------
    KeyError
        Unknown ``annotation_key``/``cluster_key``/``neighbors_key``.
    ValueError
        Unknown vocabulary entries in ``keep``/``mapping``/``markers``, or no myeloid cell.
    """
    if not isinstance(adata, AnnData):
        raise TypeError(f"adata must be an AnnData object, got {type(adata).__name__}; "
                        "wrap a matrix with anndata.AnnData(X, obs=..., var=...).")
    keep = list(MYELOID_TYPES) if keep is None else [keep] if isinstance(keep, str) \
        else list(keep)
    bad = [k for k in keep if k not in MYELOID_TYPES]
    if bad:
        raise ValueError(f"keep={bad} are not vocabulary entries; choose from {MYELOID_TYPES}.")
    if annotation_key is not None:
        if annotation_key not in adata.obs.columns:
            raise KeyError(f"annotation_key={annotation_key!r} is not a column of adata.obs "
                           f"(columns: {list(adata.obs.columns)}); omit it to select by "
                           "marker scoring.")
        labels = adata.obs[annotation_key]
        report = map_myeloid_labels(labels, mapping)
        unrec = report[report["status"] == "not recognised"]
        if len(unrec):
            listed = ", ".join(f"{lab!r} ({n})" for lab, n in zip(unrec["label"],
                                                                 unrec["n_cells"]))
            warn(f"{int(unrec['n_cells'].sum())} cells with labels not recognised as myeloid "
                 f"or non-myeloid are excluded: {listed}. Pass mapping={{label: type}} "
                 f"(type in {list(MYELOID_TYPES)}, or None) to decide them.")
        lut = dict(zip(report["label"].astype(str), report["myeloid_type"]))
        types = labels.astype(object).map(lambda v: lut.get(str(v), np.nan)
                                          if pd.notna(v) else np.nan)
        report["kept"] = report["myeloid_type"].isin(keep)
        extra = {}
    else:
        types, report, extra = _by_markers(adata, markers, contrast_markers, cluster_key,
                                           neighbors_key, resolution, min_score,
                                           min_confidence, layer, use_raw, species, n_pcs,
                                           random_state, keep)
    mask = types.isin(keep).to_numpy()
    if return_mask:
        return mask
    if not mask.any():
        raise ValueError("no myeloid cell was found (see the labels/clusters in the warning "
                         "or use return_mask=True); check annotation_key, mapping or markers.")
    sub = adata[mask]
    out = sub.to_memory() if adata.isbacked else sub.copy()
    out.obs[key_added] = pd.Categorical(types[mask].to_numpy(),
                                        categories=[t for t in MYELOID_TYPES if t in keep])
    for k, v in extra.items():
        out.obs[k] = v[mask]
    store = dict(out.uns.get("osteoimmune", {}))
    store["select_myeloid"] = {"how": "annotation" if annotation_key else "markers",
                               "annotation_key": annotation_key or "None",
                               "n_input": int(adata.n_obs), "n_kept": int(mask.sum()),
                               "report": report}
    out.uns["osteoimmune"] = store
    return out


def _by_markers(adata, markers, contrast_markers, cluster_key, neighbors_key, resolution,
                min_score, min_confidence, layer, use_raw, species, n_pcs, random_state,
                keep):
    from ..tl._score import _resolve_matrix, score

    mk = _marker_dict(markers, species)
    contrast = dict(NON_MYELOID_MARKERS if contrast_markers is None else contrast_markers)
    clash = set(contrast) & set(mk)
    if clash:
        raise ValueError(f"contrast_markers use vocabulary names {sorted(clash)}; contrast "
                         "sets are non-myeloid lineages: rename them (e.g. 'T cell').")
    sigs = {}
    for t, genes in {**mk, **contrast}.items():
        sigs[t] = list(genes.genes) if hasattr(genes, "genes") else list(genes)
    X, var_names, var, _ = _resolve_matrix(adata, layer, use_raw)
    present = set(pd.Index(var_names.astype(str)).str.upper())
    absent = [t for t, genes in sigs.items() if not any(g.upper() in present for g in genes)]
    if absent:
        sigs = {t: g for t, g in sigs.items() if t not in absent}
        warn(f"marker sets with no gene in the data are left out of the decision: {absent}.")
    mk = {t: v for t, v in mk.items() if t in sigs}
    if not mk:
        raise ValueError("no myeloid marker gene is in the data; check the gene identifiers "
                         "(symbols expected) or pass markers=.")
    S = score(adata, sigs, method="module", layer=layer, use_raw=use_raw, species=species,
              random_state=random_state, progress=False, min_coverage=0.0)
    clusters = _clusters(adata, cluster_key, neighbors_key, resolution, random_state, X,
                         n_pcs)
    my_types = [t for t in mk]
    # subtypes are told apart among the cells whose best raw score is a myeloid set, so
    # standardise against those cells (all cells when there are too few)
    raw_best = S.columns.to_numpy()[np.argmax(S.to_numpy(), axis=1)]
    ref = S[np.isin(raw_best, my_types)] if np.isin(raw_best, my_types).sum() >= 10 else S
    sd = ref.std(axis=0, ddof=0).replace(0, 1.0)
    Z = (S - ref.mean(axis=0)) / sd
    # myeloid or not: the raw scores (log-expression above control genes) of all sets;
    # which myeloid type: the scores standardised across cells, among the myeloid sets
    z_best = np.array(my_types)[np.argmax(Z[my_types].to_numpy(), axis=1)]
    cell_best = np.where(np.isin(raw_best, my_types), z_best, "non-myeloid")
    raw_means = S.groupby(clusters).mean()
    means = Z[my_types].groupby(clusters).mean()
    rows, label_of = [], {}
    for cl, m in means.iterrows():
        r = raw_means.loc[cl]
        if r.idxmax() not in my_types or r[my_types].max() <= min_score:
            label, best = "non-myeloid", r.idxmax()
            margin = float(r[best] - r.drop(best).max()) if len(r) > 1 else np.nan
        else:
            label = best = m.idxmax()
            margin = float(m[best] - m.drop(best).max()) if len(m) > 1 else np.nan
        in_cl = clusters == cl
        conf = float(np.mean(cell_best[in_cl] == label))
        rows.append({"cluster": cl, "n_cells": int(in_cl.sum()), "label": label,
                     "best_marker": best, "score": float(r[best]),
                     "margin": margin, "confidence": conf,
                     "ambiguous": conf < min_confidence, "kept": label in keep})
        label_of[cl] = label
    report = pd.DataFrame(rows)
    amb = report[report["ambiguous"]]
    if len(amb):
        listed = ", ".join(f"{c} ({lab}, confidence {cf:.2f})" for c, lab, cf in
                           zip(amb["cluster"], amb["label"], amb["confidence"]))
        warn(f"{len(amb)} cluster(s) have an ambiguous label (fewer than {min_confidence:.0%} "
             f"of their cells agree): {listed}. Check them, raise the clustering resolution, "
             "or annotate the cells and pass annotation_key=.")
    types = pd.Series([label_of[c] for c in clusters], index=adata.obs_names).where(
        lambda s: s != "non-myeloid", np.nan)
    conf_of = dict(zip(report["cluster"], report["confidence"]))
    extra = {"myeloid_cluster": np.asarray(clusters),
             "myeloid_confidence": np.array([conf_of[c] for c in clusters])}
    return types, report, extra
