"""``simulate_cohort``: a labelled, count-based simulation of immune cells across donors.

Model (all random draws from one ``numpy.random.Generator`` seeded by ``random_state``):

- Donors: age ~ U(50, 85) years, sex female with probability ``female_fraction``;
  femoral-neck-like BMD (g/cm²) = 0.78 + age_on_bmd·(age − 50) + male_on_bmd·[male] + ε,
  ε ~ N(0, bmd_sd²), clipped at 0.35; T-score = (BMD − 0.858) / 0.120 (NHANES III young
  women's femoral neck, Looker et al. 1998); ``osteoporosis`` = T ≤ −2.5, ``low_bmd`` = T ≤ −1.
- Cell-type composition per donor ~ Dirichlet(concentration × proportions), cells ~
  multinomial(cells_per_donor).
- Expression: gene relative abundances are log-normal, with cell-type programmes (markers
  up 8–30×, myeloid genes shared by the myeloid types, N(0, 0.4²) per type and gene) and
  donor random effects N(0, donor_sd²) per donor and gene; library sizes are log-normal per
  cell type (neutrophils lowest); UMI counts ~ negative binomial (gamma–Poisson) with
  gene-wise dispersion (θ log-normal around 3), the mean–variance relation of 10x data.
- Planted signal: in ONE cell type only, the genes of ONE signature have their mean
  multiplied by exp(−effect · z_d), z_d the donor's BMD standardised over the cohort (higher
  signature, lower BMD). Optionally (``confounders["age_on_signature"]``) the same genes rise
  with age in every myeloid type. Nothing else depends on the phenotype.
- ``X`` = log1p(counts / library size × 10⁴) (float32 CSR), ``layers["counts"]`` the counts.
"""

from __future__ import annotations

from functools import cache

import numpy as np
import pandas as pd
import scipy.sparse as sp
from anndata import AnnData

from .._utils import check_random_state, warn

DEFAULT_CELL_TYPES: dict[str, float] = {
    "classical monocyte": 0.20,
    "non-classical monocyte": 0.06,
    "macrophage-like": 0.06,
    "cDC": 0.04,
    "neutrophil": 0.12,
    "T cell": 0.32,
    "B cell": 0.10,
    "NK cell": 0.10,
}
MYELOID_TYPES = ("classical monocyte", "non-classical monocyte", "macrophage-like", "cDC",
                 "neutrophil")
MARKERS: dict[str, tuple[str, ...]] = {
    "classical monocyte": ("CD14", "LYZ", "S100A8", "S100A9", "VCAN", "FCN1", "CSF1R"),
    "non-classical monocyte": ("FCGR3A", "MS4A7", "CDKN1C", "CX3CR1", "LILRB2"),
    "macrophage-like": ("CD68", "APOE", "C1QA", "C1QB", "C1QC", "MRC1", "CD163"),
    "cDC": ("FCER1A", "CD1C", "CLEC10A", "CLEC9A", "HLA-DQA1"),
    "neutrophil": ("CSF3R", "FCGR3B", "CXCR2", "S100P", "FPR1", "CMTM2"),
    "T cell": ("CD3E", "CD3D", "CD2", "IL7R", "TRAC", "CD8A", "CD4"),
    "B cell": ("MS4A1", "CD79A", "CD79B", "CD19", "IGHM"),
    "NK cell": ("NKG7", "GNLY", "KLRD1", "KLRF1", "PRF1"),
}
SHARED_MYELOID = ("TYROBP", "FCER1G", "AIF1", "LST1", "CST3", "SPI1", "CD33", "ITGAM")
LIBRARY_SIZE_MEDIAN: dict[str, float] = {
    "classical monocyte": 3200.0, "non-classical monocyte": 3000.0, "macrophage-like": 3800.0,
    "cDC": 2800.0, "neutrophil": 1100.0, "T cell": 1800.0, "B cell": 2000.0, "NK cell": 2000.0,
}
# Fallback planted set (real HGNC symbols): the TNF/IL-1/NF-kB inflammatory programme of
# trained monocytes that drives osteoclastogenesis. Used only when the built-in signature
# library cannot be loaded.
FALLBACK_SIGNATURE = (
    "inflammatory_trained_monocyte_fallback",
    ("IL1B", "TNF", "IL6", "CXCL8", "CCL3", "CCL4", "CCL2", "NFKBIA", "TNFAIP3", "PTGS2",
     "IER3", "SOD2", "NLRP3", "NFKB1", "RELB", "ICAM1", "CD83", "IRAK3", "SOCS3", "IL1RN",
     "CXCL2", "CXCL3", "G0S2", "EREG", "TRAF1"),
)
DEFAULT_SIGNATURE_CANDIDATES = ("trained_immunity_bcg_shared", "osteoclast_circulating_precursor")
DEFAULT_CONFOUNDERS: dict[str, float] = {
    "age_on_bmd": -0.006,  # g/cm² per year
    "male_on_bmd": 0.08,  # g/cm² for men
    "bmd_sd": 0.10,  # residual SD of BMD (g/cm²)
    "age_on_signature": 0.0,  # log-fold per 10 years of the planted genes in all myeloid types
}
T_SCORE_REF = (0.858, 0.120)  # NHANES III femoral neck, white women 20-29 y (Looker 1998)


@cache
def _filler_genes() -> tuple[str, ...]:
    from ..pp._bulk import _id_table

    try:
        table = _id_table("entrez_human")
    except (FileNotFoundError, OSError):  # pragma: no cover - broken install
        return ()
    return tuple(sorted(set(table.dropna().astype(str))))


def _library():
    try:
        from ..signatures import load as load_library

        return load_library()
    except Exception as err:  # the library is optional here: say so and fall back
        warn(f"simulate_cohort: the built-in signature library could not be loaded ({err}); "
             "using the fallback planted set.")
        return None


def _resolve_signature(signature, lib) -> tuple[str, list[str], str]:
    """Return (name, planted genes, source description)."""
    if signature is None:
        if lib is not None:
            for name in DEFAULT_SIGNATURE_CANDIDATES:
                if name in lib.names:
                    sig = lib[name]
                    return name, list(sig.up_genes or sig.genes), "osteoimmune signature library"
        name, genes = FALLBACK_SIGNATURE
        return name, list(genes), "osteoimmune fallback set (library unavailable)"
    if isinstance(signature, str):
        if lib is None or signature not in lib.names:
            raise KeyError(f"signature {signature!r} is not in the built-in library; pass a "
                           "Signature, a {name: genes} dict or a list of gene symbols instead.")
        sig = lib[signature]
        if sig.species != "human":
            raise ValueError(f"signature {signature!r} is {sig.species}; the simulation uses "
                             "human symbols: pass sig.to_species('human').")
        return signature, list(sig.up_genes or sig.genes), "osteoimmune signature library"
    if hasattr(signature, "genes") and hasattr(signature, "name"):
        genes = list(getattr(signature, "up_genes", None) or signature.genes)
        return signature.name, genes, "user Signature"
    if isinstance(signature, dict):
        if len(signature) != 1:
            raise ValueError("signature as a dict must hold exactly one {name: genes} item "
                             f"(got {len(signature)}): the simulation plants ONE signature.")
        name, genes = next(iter(signature.items()))
        return str(name), [str(g) for g in genes], "user gene list"
    if isinstance(signature, (list, tuple)) and all(isinstance(g, str) for g in signature):
        return "planted_set", list(signature), "user gene list"
    raise TypeError("signature must be None, a library name, a Signature, a {name: genes} "
                    f"dict or a list of gene symbols; got {type(signature).__name__}.")


def simulate_cohort(
    n_donors: int = 24,
    cells_per_donor: int = 300,
    cell_types: dict[str, float] | list[str] | None = None,
    effect: float = 0.5,
    confounders: dict[str, float] | None = None,
    random_state: int | np.random.Generator | None = 0,
    *,
    signature=None,
    planted_cell_type: str = "classical monocyte",
    n_genes: int = 3000,
    donor_sd: float = 0.15,
    composition_concentration: float = 60.0,
    female_fraction: float = 0.7,
) -> AnnData:
    """Simulate a SIMULATED single-cell cohort with a bone phenotype and one planted effect.

    Negative-binomial UMI counts of myeloid and other immune cells across donors, with donor
    random effects, a BMD-like phenotype, osteoporosis status, age and sex, and a planted
    association between ONE signature in ONE cell type and BMD. See the module docstring
    for the full model.

    Parameters
    ----------
    n_donors
        Number of donors (one sample each), at least 4.
    cells_per_donor
        Cells per donor.
    cell_types
        Cell types and their mean proportions (dict, normalised to 1), or a list of names
        from :data:`DEFAULT_CELL_TYPES`; default: classical and non-classical monocytes,
        macrophage-like cells, cDC, neutrophils, T, B and NK cells.
    effect
        Planted effect: natural-log fold change of the planted genes' mean in the planted
        cell type per standard deviation of BMD, negative direction (higher signature, lower
        BMD). 0 plants nothing.
    confounders
        Overrides of :data:`DEFAULT_CONFOUNDERS`: ``age_on_bmd`` (g/cm² per year),
        ``male_on_bmd`` (g/cm²), ``bmd_sd`` (residual SD) and ``age_on_signature``
        (log-fold per 10 years of the planted genes in every myeloid type; 0 by default, so
        age confounds only through BMD).
    random_state
        Seed or Generator; the same inputs and seed give identical outputs.
    signature
        The planted signature: None (the library's ``trained_immunity_bcg_shared`` up genes,
        or a fallback TNF/IL-1/NF-kB set of real symbols when the library is unavailable), a
        library name, a :class:`~osteoimmune.signatures.Signature` (its up genes), a
        ``{name: genes}`` dict or a list of human gene symbols.
    planted_cell_type
        The one cell type carrying the effect.
    n_genes
        Size of the gene space (at least the markers, the planted genes and the library's
        genes that fit; filled with other human protein-coding symbols).
    donor_sd
        SD of the donor random effect on each gene's log mean.
    composition_concentration
        Dirichlet concentration of the per-donor cell-type proportions (higher: less
        donor-to-donor variation).
    female_fraction
        Probability that a donor is female.

    Returns
    -------
    AnnData
        Cells × genes. ``X``: log1p(CP10k) float32 CSR; ``layers["counts"]``: UMI counts.
        ``obs``: ``donor``, ``sample`` (= donor), ``cell_type``, ``is_myeloid``,
        ``total_counts`` and the donor-level ``bmd``, ``t_score``, ``osteoporosis``,
        ``low_bmd``, ``age``, ``sex``. ``uns["donor_table"]``: one row per donor (also
        :func:`donor_table`). ``uns["truth"]``: what was planted. ``uns["simulated"] = True``
        and ``uns["dataset"]`` labels the data as simulated.
    """
    rng = check_random_state(random_state)
    if n_donors < 4:
        raise ValueError(f"n_donors must be at least 4 (got {n_donors}): association needs "
                         "several donors.")
    if cells_per_donor < 10:
        raise ValueError(f"cells_per_donor must be at least 10 (got {cells_per_donor}).")
    if not np.isfinite(effect):
        raise ValueError(f"effect must be a finite number, got {effect}.")
    conf = dict(DEFAULT_CONFOUNDERS)
    if confounders:
        unknown = set(confounders) - set(conf)
        if unknown:
            raise ValueError(f"unknown confounder setting(s) {sorted(unknown)}; known: "
                             f"{sorted(conf)}.")
        conf.update({k: float(v) for k, v in confounders.items()})

    if cell_types is None:
        props = dict(DEFAULT_CELL_TYPES)
    elif isinstance(cell_types, dict):
        props = {str(k): float(v) for k, v in cell_types.items()}
    else:
        unknown = [c for c in cell_types if c not in DEFAULT_CELL_TYPES]
        if unknown:
            raise ValueError(f"unknown cell type(s) {unknown}: pass a dict name -> proportion, "
                             f"or names from {list(DEFAULT_CELL_TYPES)}.")
        props = {c: DEFAULT_CELL_TYPES[c] for c in cell_types}
    if any(v <= 0 for v in props.values()):
        raise ValueError("cell-type proportions must be positive.")
    if planted_cell_type not in props:
        raise ValueError(f"planted_cell_type {planted_cell_type!r} is not among the cell types "
                         f"{list(props)}.")
    types = list(props)
    p = np.array([props[t] for t in types])
    p = p / p.sum()

    lib = _library()
    sig_name, planted, sig_source = _resolve_signature(signature, lib)
    planted = list(dict.fromkeys(planted))
    if len(planted) < 3:
        raise ValueError(f"the planted signature {sig_name!r} has {len(planted)} gene(s); "
                         "plant at least 3.")

    # ---- gene space: markers, shared myeloid genes, planted genes, library genes, filler
    genes: list[str] = []
    for t in types:
        genes += list(MARKERS.get(t, ()))
    genes += list(SHARED_MYELOID) + planted
    genes = list(dict.fromkeys(genes))
    if lib is not None:
        lib_genes = sorted({g for n in lib.names if lib[n].species == "human"
                            for g in lib[n].genes} - set(genes))
        room = max(n_genes - len(genes), 0)
        if len(lib_genes) > room:
            lib_genes = sorted(rng.choice(lib_genes, size=room, replace=False).tolist())
        genes += lib_genes
    if len(genes) < n_genes:
        taken = set(genes)
        pool = [g for g in _filler_genes() if g not in taken]
        k = n_genes - len(genes)
        if len(pool) >= k:
            genes += sorted(rng.choice(pool, size=k, replace=False).tolist())
        else:
            genes += pool + [f"SIMGENE{i}" for i in range(k - len(pool))]
    genes = sorted(set(genes))
    G = len(genes)
    gidx = {g: i for i, g in enumerate(genes)}
    planted_idx = np.array([gidx[g] for g in planted])

    # ---- cell-type expression programmes (log relative abundance)
    base = rng.normal(0.0, 2.2, size=G)
    myeloid_component = rng.normal(0.0, 0.4, size=G)
    log_prof = np.empty((len(types), G))
    for k, t in enumerate(types):
        log_prof[k] = base + rng.normal(0.0, 0.4, size=G)
        if t in MYELOID_TYPES:
            log_prof[k] += myeloid_component
            log_prof[k, [gidx[g] for g in SHARED_MYELOID if g in gidx]] += np.log(6.0)
            log_prof[k, planted_idx] += np.log(2.0)
    for k, t in enumerate(types):
        for g in MARKERS.get(t, ()):
            log_prof[:, gidx[g]] = np.minimum(log_prof[:, gidx[g]], base[gidx[g]] - 1.0)
            log_prof[k, gidx[g]] = base[gidx[g]] + 1.0 + np.log(rng.uniform(8.0, 30.0))
    # keep planted genes detectable: floor their baseline at the 60th percentile
    floor = np.quantile(base, 0.6)
    k_pl = types.index(planted_cell_type)
    low = log_prof[k_pl, planted_idx] < floor
    log_prof[k_pl, planted_idx[low]] = floor
    theta = np.exp(rng.normal(np.log(3.0), 0.5, size=G))

    # ---- donors
    donors = [f"D{i + 1:02d}" for i in range(n_donors)]
    age = np.round(rng.uniform(50.0, 85.0, size=n_donors), 1)
    male = rng.random(n_donors) >= female_fraction
    bmd = (0.78 + conf["age_on_bmd"] * (age - 50.0) + conf["male_on_bmd"] * male
           + rng.normal(0.0, conf["bmd_sd"], size=n_donors))
    bmd = np.round(np.maximum(bmd, 0.35), 4)
    t_score = np.round((bmd - T_SCORE_REF[0]) / T_SCORE_REF[1], 3)
    z_bmd = (bmd - bmd.mean()) / bmd.std(ddof=1)
    donor_effects = rng.normal(0.0, donor_sd, size=(n_donors, G))
    comp = rng.dirichlet(composition_concentration * p, size=n_donors)
    lib_scale = np.exp(rng.normal(0.0, 0.1, size=n_donors))

    counts_blocks, cell_type_codes, donor_codes, totals = [], [], [], []
    for d in range(n_donors):
        n_t = rng.multinomial(cells_per_donor, comp[d])
        for k, t in enumerate(types):
            n = int(n_t[k])
            if n == 0:
                continue
            logmu = log_prof[k] + donor_effects[d]
            if t == planted_cell_type and effect != 0:
                logmu = logmu.copy()
                logmu[planted_idx] += -effect * z_bmd[d]
            if t in MYELOID_TYPES and conf["age_on_signature"] != 0:
                logmu = logmu.copy()
                logmu[planted_idx] += conf["age_on_signature"] * (age[d] - 65.0) / 10.0
            frac = np.exp(logmu - logmu.max())
            frac /= frac.sum()
            libsize = np.exp(rng.normal(np.log(LIBRARY_SIZE_MEDIAN.get(t, 2000.0)), 0.35,
                                        size=n)) * lib_scale[d]
            mu = libsize[:, None] * frac[None, :]
            lam = rng.gamma(theta[None, :], mu / theta[None, :])
            c = rng.poisson(lam)
            counts_blocks.append(sp.csr_matrix(c.astype(np.float32)))
            cell_type_codes.append(np.full(n, k))
            donor_codes.append(np.full(n, d))
            totals.append(c.sum(axis=1))
    counts = sp.vstack(counts_blocks, format="csr")
    ct = np.concatenate(cell_type_codes)
    dn = np.concatenate(donor_codes)
    total = np.concatenate(totals).astype(np.float64)
    if (total == 0).any():  # vanishingly rare; keep every cell normalisable
        counts = counts.tolil()
        for i in np.flatnonzero(total == 0):
            counts[i, gidx[MARKERS.get(types[ct[i]], SHARED_MYELOID)[0]]] = 1
        counts = counts.tocsr()
        total = np.asarray(counts.sum(axis=1)).ravel()

    X = sp.diags(1e4 / total) @ counts
    X.data = np.log1p(X.data)
    X = sp.csr_matrix(X, dtype=np.float32)

    sex = np.where(male, "male", "female")
    dtab = pd.DataFrame({
        "age": age, "sex": pd.Categorical(sex, categories=["female", "male"]),
        "bmd": bmd, "t_score": t_score, "osteoporosis": t_score <= -2.5,
        "low_bmd": t_score <= -1.0,
        "n_cells": np.bincount(dn, minlength=n_donors),
    }, index=pd.Index(donors, name="donor"))
    obs = pd.DataFrame({
        "donor": pd.Categorical(np.array(donors)[dn], categories=donors),
        "cell_type": pd.Categorical(np.array(types)[ct], categories=types),
    }, index=[f"cell{i:06d}" for i in range(len(ct))])
    obs["sample"] = obs["donor"]
    obs["is_myeloid"] = obs["cell_type"].isin(MYELOID_TYPES).to_numpy()
    obs["total_counts"] = total
    for col in ("bmd", "t_score", "osteoporosis", "low_bmd", "age", "sex"):
        obs[col] = dtab[col].to_numpy()[dn]
    obs["sex"] = pd.Categorical(obs["sex"], categories=["female", "male"])
    var = pd.DataFrame({"planted": np.isin(np.arange(G), planted_idx)},
                       index=pd.Index(genes))
    adata = AnnData(X=X, obs=obs, var=var)
    adata.layers["counts"] = counts
    seed_repr = random_state if isinstance(random_state, (int, np.integer)) else str(random_state)
    adata.uns["simulated"] = True
    adata.uns["truth"] = {
        "signature": sig_name,
        "signature_source": sig_source,
        "genes": list(planted),
        "cell_type": planted_cell_type,
        "phenotype": "bmd",
        "effect": float(effect),
        "direction": "negative" if effect > 0 else ("positive" if effect < 0 else "none"),
        "model": ("log mean of the planted genes in the planted cell type += -effect * z_bmd "
                  "(z_bmd: donor BMD standardised over the cohort)"),
        "null_cell_types": [t for t in types if t != planted_cell_type],
        "confounders": conf,
        "random_state": seed_repr if seed_repr is not None else "None",
    }
    adata.uns["dataset"] = {
        "name": "simulated_cohort",
        "title": (f"SIMULATED cohort (not real data): {n_donors} donors x {cells_per_donor} "
                  f"cells, planted {sig_name} in {planted_cell_type} vs BMD"),
        "species": "human",
        "data_type": "single_cell",
        "simulated": True,
        "citation": {"text": "osteoimmune.datasets.simulate_cohort (simulated data)"},
        "licence": "CC0 (simulated)",
    }
    adata.uns["osteoimmune"] = {"data_type": "single_cell", "species": "human"}
    adata.uns["donor_table"] = dtab
    return adata


def donor_table(adata: AnnData, donor_key: str = "donor",
                columns: list[str] | None = None) -> pd.DataFrame:
    """One row per donor with the donor-level phenotype columns.

    Parameters
    ----------
    adata
        A cohort such as :func:`simulate_cohort`'s output, or any AnnData whose ``obs``
        holds donor-level columns.
    donor_key
        Column of ``obs`` with the donor id.
    columns
        Columns to collect; default: ``uns["donor_table"]`` when present, otherwise every
        ``obs`` column that is constant within each donor.

    Returns
    -------
    pandas.DataFrame
        Indexed by donor id (a copy).
    """
    if columns is None and isinstance(adata.uns.get("donor_table"), pd.DataFrame):
        return adata.uns["donor_table"].copy()
    if donor_key not in adata.obs.columns:
        raise KeyError(f"donor_key {donor_key!r} is not a column of adata.obs (columns: "
                       f"{list(adata.obs.columns)}).")
    obs = adata.obs
    grouped = obs.groupby(donor_key, observed=True)
    if columns is None:
        nunique = grouped.nunique(dropna=False)
        columns = [c for c in nunique.columns if (nunique[c] <= 1).all()]
    else:
        missing = [c for c in columns if c not in obs.columns]
        if missing:
            raise KeyError(f"columns {missing} are not in adata.obs.")
        nunique = grouped[columns].nunique(dropna=False)
        varying = [c for c in columns if (nunique[c] > 1).any()]
        if varying:
            raise ValueError(f"columns {varying} vary within donors, so they are not donor-level; "
                             "aggregate them first (oi.tl.aggregate) or drop them.")
    table = grouped[columns].first() if columns else pd.DataFrame(index=grouped.size().index)
    table.index = table.index.astype(str)
    table.index.name = donor_key
    return table
