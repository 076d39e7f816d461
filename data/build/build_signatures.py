"""Build the osteoimmunology signature library ``data/signatures/*.yaml``.

Every gene of every set is traced to a record a reviewer can open:

* database sets (MSigDB Hallmark 2023.2, Reactome 2023-03-06, GO annotations 2024-11
  propagated over the 2022-07-01 DAG, PROGENy 1.20.0 top-100 footprints) are copied as
  published, with symbols brought up to HGNC 2026-06 (renames recorded) and genes that no
  longer resolve listed under ``excluded``;
* Li et al. 2023 (Cell Rep 42:112487) BCG trained-immunity modules come from the authors'
  TIGENS table (gene, module, sign of avg_log2FC);
* curated sets are intersections: a candidate gene is kept only when a database record
  supports it for that set (a GO term's annotation or a PanglaoDB row of the cell type); the
  records are written per gene under ``evidence``; candidates without support are reported
  and left out;
* data-derived sets (LPS tolerance contrast from the Tay macrophage-memory counts; the
  classical / non-classical monocyte split from the Kang 2018 PBMC data) are computed here
  from ``../shared/data``, with the rule in ``source.derivation``. Such a set is never a
  positive control on the data set it came from.

Mouse orthologs come from the shipped ``data/reference/orthologs_human_mouse.tsv.gz`` (build
it first with build_reference.py). Writes the YAML files, ``library.yaml`` (version) and the
data card ``README.md``. Run from the repository root::

    python data/build/build_signatures.py
"""

from __future__ import annotations

import argparse
import gzip
import re
import sys
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
OUT = ROOT / "data" / "signatures"
SHARED = ROOT.parent / "shared"
sys.path.insert(0, str(ROOT / "toolkit"))

from osteoimmune.signatures import Signature, map_orthologs, write_yaml  # noqa: E402
from osteoimmune.signatures._aliases import resolve_symbols  # noqa: E402

LIBRARY_VERSION = "1.0.0"
LIBRARY_DATE = "2026-11-22"

HALLMARK = {"database": "MSigDB Hallmark", "version": "2023.2.Hs", "licence": "CC BY 4.0",
            "citation": "Liberzon A et al. The Molecular Signatures Database Hallmark Gene Set "
                        "Collection. Cell Syst 2015;1:417-425.",
            "doi": "10.1016/j.cels.2015.12.004",
            "url": "https://data.broadinstitute.org/gsea-msigdb/msigdb/release/2023.2.Hs/"
                   "h.all.v2023.2.Hs.symbols.gmt"}
REACTOME = {"database": "Reactome", "version": "2023-03-06 (ReactomePathways.gmt)",
            "licence": "CC0", "citation": "Milacic M et al. The Reactome Pathway Knowledgebase "
            "2024. Nucleic Acids Res 2024;52:D672-D678.", "doi": "10.1093/nar/gkad1025",
            "url": "https://reactome.org/download/current/ReactomePathways.gmt.zip"}
GO = {"database": "Gene Ontology (human annotations, propagated over is_a/part_of)",
      "version": "annotations 2024-11 / DAG 2022-07-01 (GO.db 3.16.0)", "licence": "CC BY 4.0",
      "citation": "Gene Ontology Consortium. The Gene Ontology knowledgebase in 2023. "
                  "Genetics 2023;224:iyad031.", "doi": "10.1093/genetics/iyad031",
      "url": "http://geneontology.org"}
PROGENY = {"database": "PROGENy human model", "version": "Bioconductor progeny 1.20.0",
           "licence": "Apache-2.0", "citation": "Schubert M et al. Perturbation-response genes "
           "reveal signaling footprints in cancer gene expression. Nat Commun 2018;9:20.",
           "doi": "10.1038/s41467-017-02391-6"}
LI2023 = {"citation": "Li W, Moorlag SJCFM, Koeken VACM, ..., Netea MG, Li Y. A single-cell "
          "view on host immune transcriptional response to in vivo BCG-induced trained "
          "immunity. Cell Rep 2023;42:112487.", "doi": "10.1016/j.celrep.2023.112487",
          "pmid": "37155329",
          "table": "trained-immunity genes (TIGs) of monocyte modules TM1-TM4, object ti_gene "
                   "of github CiiM-Bioinformatics-group/TIGENS test/TIGs.RData @ 2b30e919",
          "licence": "no licence stated by the repository; published research result, cite "
                     "the paper"}
PANGLAO = ("PanglaoDB markers 27 Mar 2020 (Franzen O, Gan LM, Bjorkegren JLM. Database "
           "2019;baz046, doi:10.1093/database/baz046); evidence only, table not shipped")


# ------------------------------------------------------------------------ sources
def read_gmt(path: Path) -> dict[str, tuple[str, list[str]]]:
    opener = gzip.open if path.suffix == ".gz" else open
    out = {}
    with opener(path, "rt", encoding="utf-8") as fh:
        for line in fh:
            parts = line.rstrip("\n").split("\t")
            out[parts[0]] = (parts[1], [g for g in parts[2:] if g])
    return out


class Sources:
    def __init__(self, ref: Path, data: Path):
        self.ref, self.data = ref, data
        self.hallmark = read_gmt(ref / "genesets/h.all.v2023.2.Hs.symbols.gmt")
        react = read_gmt(ref / "genesets/ReactomePathways_2023-03-06.gmt.gz")
        self.reactome = {v[0]: (k, v[1]) for k, v in react.items()}  # R-HSA id → (name, genes)
        self.go_prop = read_gmt(ref / "genesets/osteoimmune_GO_BP_propagated_2024-11.gmt")
        go_all = read_gmt(ref / "genesets/go_2024-11_ziemannlab.gmt.gz")
        self.go_direct = {k.split(" ", 1)[0]: (k.split(" ", 1)[1], v[1])
                          for k, v in go_all.items()}
        self.progeny = pd.read_csv(ref / "genesets/progeny_model_human_full_v1.20.0.tsv.gz",
                                   sep="\t")
        pg = pd.read_csv(ref / "markers/PanglaoDB_markers_27_Mar_2020.tsv.gz", sep="\t")
        self.panglao = pg[pg["species"].astype(str).str.contains("Hs")]
        self.li = pd.read_csv(ref / "signatures/Li2023_BCG_trained_immunity_TIGs.tsv", sep="\t",
                              dtype=str)

    def go_prop_term(self, go_id: str) -> tuple[str, str, list[str]]:
        key = "GO_" + go_id.split(":")[1]
        for k, (desc, genes) in self.go_prop.items():
            if k.startswith(key):
                return k, desc.split(";")[0], genes
        raise KeyError(go_id)

    def go_evidence(self, go_ids: Iterable[str]) -> dict[str, list[str]]:
        """gene → evidence strings for the given GO terms (propagated when available)."""
        ev: dict[str, list[str]] = {}
        for gid in go_ids:
            try:
                _, label, genes = self.go_prop_term(gid)
                how = "GO propagated"
            except KeyError:
                name, genes = self.go_direct[gid]
                label, how = f"{gid} {name}", "GO direct"
            for g in genes:
                ev.setdefault(g, []).append(f"{label} ({how}, ann. 2024-11)")
        return ev

    def panglao_evidence(self, cell_types: Iterable[str]) -> dict[str, list[str]]:
        ev: dict[str, list[str]] = {}
        for ct in cell_types:
            sub = self.panglao[self.panglao["cell type"] == ct]
            for g, can, sens, spec in zip(sub["official gene symbol"], sub["canonical marker"],
                                          sub["sensitivity_human"], sub["specificity_human"]):
                c = "canonical" if can == 1 else "non-canonical"
                ev.setdefault(g, []).append(
                    f"PanglaoDB 2020-03-27: {ct} ({c}; sensitivity_human={sens:.3g}, "
                    f"specificity_human={spec:.3g})")
        return ev


# ------------------------------------------------------------------------ helpers
def approve(genes: Iterable[str]) -> tuple[list[str], dict[str, str], list[dict]]:
    """Current HGNC symbols (renames recorded, unresolvable genes excluded with reason)."""
    genes = list(dict.fromkeys(genes))
    res = resolve_symbols(genes, species="human")
    out, renamed, excluded = [], {}, []
    for g, r in zip(genes, res):
        if r is None:
            excluded.append({"symbol": g, "reason": "not an approved, previous or unambiguous "
                                                    "alias symbol in HGNC 2026-06"})
            continue
        if r != g:
            renamed[g] = r
        if r in out:
            excluded.append({"symbol": g, "reason": f"duplicate of {r} after symbol update"})
            continue
        out.append(r)
    return out, renamed, excluded


def make(name, title, description, tags, genes, source, weights=None, evidence=None,
         excluded=None, renamed=None) -> Signature:
    genes = list(genes)
    mouse = map_orthologs(genes, "human", "mouse", use_aliases=False)
    src = dict(source)
    if renamed:
        src["symbols_updated"] = dict(sorted(renamed.items()))
    meta = {"mouse_genes": {g: mouse[g] for g in genes}}
    if evidence:
        meta["evidence"] = {g: evidence[g] for g in genes if g in evidence}
    if excluded:
        meta["excluded"] = excluded
    return Signature(name=name, genes=tuple(genes),
                     weights=None if weights is None else tuple(float(w) for w in weights),
                     species="human", title=title, description=description, tags=tuple(tags),
                     source=src, metadata=meta)


def database_set(name, title, description, tags, genes, source) -> Signature:
    g, renamed, excluded = approve(genes)
    return make(name, title, description, tags, g, source, excluded=excluded, renamed=renamed)


def curated(name, title, description, tags, candidates, evidence, source, weights=None,
            min_evidence: int = 1) -> Signature:
    kept, kept_w, dropped = [], [], []
    for i, g in enumerate(candidates):
        if len(evidence.get(g, [])) >= min_evidence:
            kept.append(g)
            if weights is not None:
                kept_w.append(weights[i])
        else:
            dropped.append({"symbol": g, "reason": "candidate without supporting database "
                                                   "record for this set"})
    if dropped:
        print(f"  {name}: left out {[d['symbol'] for d in dropped]} (no evidence)")
    ok, _, bad = approve(kept)
    assert not bad and ok == kept, (name, bad)
    return make(name, title, description, tags, kept, {"kind": "curated_intersection",
                                                       **source},
                weights=kept_w if weights is not None else None, evidence=evidence,
                excluded=dropped or None)


def reactome_name(name: str) -> str:
    return "REACTOME_" + re.sub(r"[^A-Z0-9]+", "_", name.upper()).strip("_")


# ------------------------------------------------------------------------ data-derived
def lps_tolerance(data: Path) -> tuple[list[str], list[float], dict, list[dict], dict]:
    """Tolerised (-1) vs non-tolerised/primed (+1) LPS-induced genes from Tay et al. counts."""
    counts = pd.read_csv(data / "tay_macrophage_memory/merged_FC.csv", index_col=0)
    counts = counts.set_index(counts["gene"].astype(str)).drop(columns="gene")
    cpm = counts / counts.sum(axis=0) * 1e6
    lg = np.log2(cpm + 1)

    def grp(code):
        return lg[[f"{code}_{r}" for r in (1, 2, 3)]]

    ff, fl, cl, pl = grp("FF"), grp("FL"), grp("CL"), grp("PL")
    cf, pf = grp("CF"), grp("PF")
    induced = ((fl.mean(1) - ff.mean(1)) >= 2) & (fl.min(1) > ff.max(1)) & (cpm[fl.columns]
                                                                             .mean(1) >= 10)
    d_c = cl.mean(1) - fl.mean(1)
    d_p = pl.mean(1) - fl.mean(1)
    # a pretreated cell's response to LPS relative to its own baseline
    r_c = cl.mean(1) - cf.mean(1)
    r_p = pl.mean(1) - pf.mean(1)
    r_f = fl.mean(1) - ff.mean(1)
    tol = induced & (d_c <= -1) & (d_p <= -1) & (r_c <= r_f - 1) & (r_p <= r_f - 1)
    primed = induced & (d_c >= 0) & (d_p >= 0)
    msym = pd.read_csv(ROOT / "data/reference/symbols_mouse.tsv.gz", sep="\t", dtype=str,
                       keep_default_na=False)
    e2s = {e: s for e, s in zip(msym["entrez_id"], msym["symbol"]) if e}
    genes, weights, ev, excluded = [], [], {}, []
    mouse_of: dict[str, list[str]] = {}
    for mask, w, label in ((primed, 1.0, "non-tolerised/primed"), (tol, -1.0, "tolerised")):
        for eid in lg.index[mask]:
            ms = e2s.get(eid)
            if ms is None:
                excluded.append({"symbol": f"Entrez:{eid}", "reason": "mouse Entrez id not in "
                                 "the shipped MGI table"})
                continue
            hs = map_orthologs([ms], "mouse", "human", use_aliases=False)[ms]
            if not hs:
                excluded.append({"symbol": ms, "reason": "mouse gene without human ortholog in "
                                 "the shipped table"})
                continue
            for h in hs:
                if h in genes:
                    continue
                genes.append(h)
                weights.append(w)
                mouse_of[h] = [ms]
                ev[h] = [f"Tay macrophage memory: {label}; mouse {ms} (Entrez {eid}); "
                         f"log2 naive LPS induction {r_f[eid]:.2f}; log2(CpG>LPS / LPS) "
                         f"{d_c[eid]:.2f}; log2(poly(I:C)>LPS / LPS) {d_p[eid]:.2f}"]
    stats = {"n_induced": int(induced.sum()), "n_tolerised": int(tol.sum()),
             "n_primed": int(primed.sum())}
    return genes, weights, ev, excluded, {"mouse_of": mouse_of, **stats}


def monocyte_split(data: Path, src: Sources, candidates: dict[str, list[str]]
                   ) -> dict[str, dict[str, list[str]]]:
    """Check monocyte-subset candidates against Kang 2018 CD14+ vs FCGR3A+ monocytes.

    A candidate needs a PanglaoDB human 'Monocytes' row; when the gene is measured in the
    Kang 2018 subset it must also be higher (mean logcounts difference >= 0.25) in the subset
    it marks, otherwise it is left out. Genes the subset does not measure keep the PanglaoDB
    evidence alone (recorded).
    """
    import anndata as ad

    a = ad.read_h5ad(data / "kang2018_muscat_example/kang2018_muscat_example.h5ad")
    a = a[a.obs["condition"].astype(str).str.lower().str.startswith("ctrl")]
    X = a.layers["logcounts"]
    sym = a.var["SYMBOL"].astype(str).to_numpy() if "SYMBOL" in a.var else a.var_names
    res = resolve_symbols(list(sym), species="human")
    col_of = {g: j for j, g in enumerate(res) if g is not None}
    ct = a.obs["cell_type"].astype(str).to_numpy()
    pan = src.panglao_evidence(["Monocytes"])
    out: dict[str, dict[str, list[str]]] = {}
    for which, cand in candidates.items():
        out[which] = {}
        for g in cand:
            if g not in pan:
                continue
            if g not in col_of:
                out[which][g] = [*pan[g], "Kang 2018 subset: gene not measured (no check)"]
                continue
            j = col_of[g]
            col = np.asarray(X[:, j].todense()).ravel() if hasattr(X, "todense") else X[:, j]
            m14 = col[ct == "CD14+ Monocytes"].mean()
            m16 = col[ct == "FCGR3A+ Monocytes"].mean()
            d = m14 - m16 if which == "classical" else m16 - m14
            line = (f"Kang 2018 PBMC (ctrl cells): mean logcounts CD14+ monocytes {m14:.2f}, "
                    f"FCGR3A+ monocytes {m16:.2f}")
            if d >= 0.25:
                out[which][g] = [*pan[g], line]
            else:
                print(f"  {which}: {g} contradicted by Kang 2018 ({line})")
    return out


# ------------------------------------------------------------------------ the library
def build_all(ref: Path, data: Path) -> list[Signature]:
    s = Sources(ref, data)
    sigs: list[Signature] = []
    H = lambda n: s.hallmark[n][1]  # noqa: E731

    # ---------------------------------------------------------------- trained immunity
    li = s.li.copy()
    li["lfc"] = li["avg_log2FC"].str.replace(",", ".").astype(float)
    for m in ("TM1", "TM2", "TM3", "TM4"):
        sub = li[li["TI_module"] == m].drop_duplicates("gene")
        up = sub[sub["lfc"] > 0]["gene"].tolist()
        down = sub[sub["lfc"] < 0]["gene"].tolist()
        g_up, ren_u, exc_u = approve(up)
        g_dn, ren_d, exc_d = approve(down)
        g_dn = [g for g in g_dn if g not in g_up]
        sigs.append(make(
            f"trained_immunity_bcg_{m.lower()}",
            f"BCG-trained monocyte module {m} (Li 2023), signed",
            f"Trained-immunity genes of BCG-trained circulating monocyte module {m} of Li et "
            "al. 2023 (single-cell RNA-seq of monocytes before vs after BCG vaccination): genes "
            "up-regulated in the trained module (direction up) and down-regulated "
            "(direction down), sign of avg_log2FC.",
            ["trained_immunity", "bcg", "monocyte", "signed"], g_up + g_dn,
            {"kind": "paper_table", **LI2023, "module": m,
             "derivation": "all genes of the module; direction = sign of avg_log2FC; "
                           "p-values not used (see ../shared/reference/README.md)"},
            weights=[1.0] * len(g_up) + [-1.0] * len(g_dn), excluded=exc_u + exc_d,
            renamed={**ren_u, **ren_d}))
    upc = li[li["lfc"] > 0].groupby("gene")["TI_module"].nunique()
    shared = sorted(upc.index[upc >= 2])
    g, ren, exc = approve(shared)
    mods = li[li["lfc"] > 0].groupby("gene")["TI_module"].apply(lambda x: sorted(set(x)))
    ev = {}
    for old in shared:
        new = ren.get(old, old)
        ev[new] = [f"Li 2023 TIGs: up in {', '.join(mods[old])}"]
    sigs.append(make(
        "trained_immunity_bcg_shared", "BCG trained immunity: genes up in at least two "
        "trained monocyte modules (Li 2023)",
        "Genes up-regulated (avg_log2FC > 0) in at least two of the four BCG-trained monocyte "
        "modules TM1-TM4 of Li et al. 2023: a module-independent core of BCG-induced training "
        "in human monocytes.", ["trained_immunity", "bcg", "monocyte"], g,
        {"kind": "paper_table", **LI2023, "derivation": "up in >= 2 of TM1-TM4"},
        evidence=ev, excluded=exc, renamed=ren))

    name, genes = s.reactome["R-HSA-5607764"]
    sigs.append(database_set(
        "trained_immunity_beta_glucan_dectin1", "Beta-glucan sensing: CLEC7A (Dectin-1) "
        "signalling (Reactome R-HSA-5607764)",
        "Dectin-1 (CLEC7A) signalling, the receptor pathway through which beta-glucan induces "
        "trained immunity in monocytes (Quintin 2012; Saeed 2014; Novakovic 2016). The "
        "published trained-transcriptome tables of those papers could not be read here, so "
        "the set is the Reactome pathway as published; the papers are motivation only. It "
        "measures expression of the sensing pathway, not the trained state itself.",
        ["trained_immunity", "beta_glucan", "signalling"], genes,
        {"kind": "database", **REACTOME, "record": f"{name} (R-HSA-5607764)",
         "motivation": ["Quintin J et al. Cell Host Microbe 2012;12:223, "
                        "doi:10.1016/j.chom.2012.06.006",
                        "Saeed S et al. Science 2014;345:1251086, doi:10.1126/science.1251086",
                        "Novakovic B et al. Cell 2016;167:1354, "
                        "doi:10.1016/j.cell.2016.09.034"]}))
    meta_tags = ["trained_immunity", "immunometabolism"]
    for hn, why in (("HALLMARK_GLYCOLYSIS", "aerobic glycolysis, the Akt-mTOR-HIF1A metabolic "
                     "switch of trained monocytes (Cheng 2014 Science; Arts 2016 Cell Metab)"),
                    ("HALLMARK_MTORC1_SIGNALING", "mTORC1 activity required for training "
                     "(Cheng 2014 Science)"),
                    ("HALLMARK_HYPOXIA", "HIF1A-driven program of trained monocytes "
                     "(Cheng 2014 Science)"),
                    ("HALLMARK_CHOLESTEROL_HOMEOSTASIS", "mevalonate/cholesterol synthesis "
                     "required for training (Bekkering 2018 Cell)")):
        sigs.append(database_set(
            hn, hn.replace("HALLMARK_", "Hallmark ").replace("_", " ").lower().capitalize(),
            f"MSigDB Hallmark set used as the immunometabolic axis of trained immunity: {why}.",
            meta_tags, H(hn), {"kind": "database", **HALLMARK, "record": hn,
                               "motivation": ["Cheng SC et al. Science 2014;345:1250684, "
                                              "doi:10.1126/science.1250684",
                                              "Arts RJW et al. Cell Metab 2016;24:807, "
                                              "doi:10.1016/j.cmet.2016.10.008",
                                              "Bekkering S et al. Cell 2018;172:135, "
                                              "doi:10.1016/j.cell.2017.11.025"]}))
    # central trained immunity: IL-1 and GM-CSF signalling in progenitors (Mitroulis 2018)
    r_name, r_genes = s.reactome["R-HSA-512988"]
    ev = {g: [f"Reactome {r_name} (R-HSA-512988), 2023-03-06"] for g in r_genes}
    for g, e in s.go_evidence(["GO:0070498"]).items():
        ev.setdefault(g, []).extend(e)
    cand = list(dict.fromkeys(r_genes + s.go_prop_term("GO:0070498")[2]))
    cand, _, _ = approve(cand)
    sigs.append(curated(
        "trained_immunity_central_progenitor",
        "Central trained immunity: IL-1 and GM-CSF signalling of myeloid progenitors",
        "Signalling axes that Mitroulis 2018 found necessary for beta-glucan-induced training "
        "of bone-marrow progenitors (IL-1 receptor signalling; GM-CSF/IL-3 receptor "
        "signalling): the union of Reactome 'Interleukin-3, Interleukin-5 and GM-CSF "
        "signaling' and GO 'interleukin-1-mediated signaling pathway'. Papers' tables not "
        "read here: cited as motivation only. Score on progenitor (HSPC) cells.",
        ["trained_immunity", "central_trained_immunity", "progenitor", "signalling"], cand, ev,
        {"database": "Reactome 2023-03-06 (CC0) + GO ann. 2024-11 (CC BY 4.0)",
         "record": "R-HSA-512988; GO:0070498", "licence": "CC0 / CC BY 4.0",
         "motivation": ["Mitroulis I et al. Cell 2018;172:147, doi:10.1016/j.cell.2017.11.034",
                        "Kaufmann E et al. Cell 2018;172:176, doi:10.1016/j.cell.2017.12.031"],
         "derivation": "union of the two database sets; evidence per gene"}))
    # LPS tolerance contrast (signed), from real data
    genes, weights, ev, excluded, info = lps_tolerance(data)
    sig = make(
        "lps_tolerance_contrast",
        "LPS tolerance contrast: non-tolerised/primed (up) vs tolerised (down) LPS-induced genes",
        "Signed set after the two gene classes of Foster, Hargreaves & Medzhitov 2007: genes "
        "whose LPS induction is lost in tolerant macrophages (tolerised, direction down: mostly "
        "pro-inflammatory mediators) vs genes induced as much or more (non-tolerised/primed, "
        "direction up: antimicrobial effectors). The paper's gene lists could not be read "
        "here, so the classes are derived from the Tay-lab macrophage-memory RNA-seq "
        "(mouse BMDM, cross-tolerance by CpG or poly(I:C) pretreatment before LPS). A high "
        "score means a tolerance-like pattern. Derived from that data set: not a positive "
        "control on it.",
        ["trained_immunity", "tolerance", "lps", "macrophage", "signed"], genes,
        {"kind": "derived_from_data", "native_species": "mouse",
         "data": "tay-lab/macrophage_memory figure6_RNAseq/FC/merged_FC.csv @ 6ca6c801 "
                 "(Zenodo 10.5281/zenodo.14337874); ../shared/data/tay_macrophage_memory",
         "licence": "derived gene list; cite the data set (Zenodo record) and Foster 2007",
         "derivation": "log2(CPM+1); LPS-induced = naive LPS (FL) - medium (FF) >= 2 with "
                       "min(FL) > max(FF) and mean CPM(FL) >= 10; tolerised = CpG>LPS and "
                       "poly(I:C)>LPS each >= 2-fold below naive LPS and their induction over "
                       "their own pretreated baseline >= 2-fold smaller; non-tolerised/primed "
                       "= CpG>LPS and poly(I:C)>LPS both >= naive LPS; Entrez -> MGI symbol "
                       "(NCBI gene_info 2019-05 via MGI id) -> human ortholog (shipped table). "
                       f"Counts: {info['n_induced']} induced, {info['n_tolerised']} "
                       f"tolerised, {info['n_primed']} primed (mouse genes). Script: "
                       "data/build/build_signatures.py",
         "motivation": ["Foster SL, Hargreaves DC, Medzhitov R. Gene-specific control of "
                        "inflammation by TLR-induced chromatin modifications. Nature "
                        "2007;447:972-978, doi:10.1038/nature05836, PMID 17538624"]},
        weights=weights, evidence=ev, excluded=excluded or None)
    sigs.append(sig)

    # ---------------------------------------------------------------- osteoclastogenesis
    oc_go = ["GO:0030316", "GO:0045672", "GO:0045670", "GO:0036035", "GO:0072674",
             "GO:0072675", "GO:0045453", "GO:0045124"]
    go_ev = s.go_evidence(oc_go)
    pan_oc = s.panglao_evidence(["Osteoclasts", "Osteoclast precursor cells"])
    oc_ev = {g: go_ev.get(g, []) + pan_oc.get(g, []) for g in set(go_ev) | set(pan_oc)}
    oc_src = {"evidence_sources": "GO BP ann. 2024-11 propagated (CC BY 4.0); " + PANGLAO,
              "licence": "CC BY 4.0 (GO); gene list CC BY 4.0",
              "motivation": ["Takayanagi H. Nat Rev Immunol 2007;7:292, doi:10.1038/nri2062",
                             "Boyle WJ, Simonet WS, Lacey DL. Nature 2003;423:337, "
                             "doi:10.1038/nature01658"],
              "derivation": "candidate genes kept when a GO osteoclast/bone-resorption term "
                            "or a PanglaoDB osteoclast(-precursor) row supports them; "
                            "evidence per gene"}
    sigs.append(curated(
        "osteoclast_precursor_commitment", "Osteoclast precursor and commitment "
        "(M-CSF/RANK competence, PU.1/MITF, c-Fos)",
        "Receptors and transcription factors that make myeloid precursors competent for "
        "RANKL and commit them to the osteoclast lineage (M-CSF receptor, RANK, PU.1, MITF, "
        "c-Fos, TRAF6, NF-kB2/RelB, the ITAM adaptors DAP12 and FcRgamma).",
        ["osteoclastogenesis", "osteoclast_stage", "commitment"],
        ["CSF1R", "TNFRSF11A", "SPI1", "MITF", "FOS", "TRAF6", "NFKB1", "NFKB2", "RELB",
         "TREM2", "TYROBP", "FCER1G", "CSF1", "JUN"], oc_ev, oc_src))
    nf_ev = {g: list(v) for g, v in oc_ev.items()}
    for g, e in s.go_evidence(["GO:0033173", "GO:0070886"]).items():
        nf_ev.setdefault(g, []).extend(e)
    sigs.append(curated(
        "osteoclast_nfatc1_program", "NFATc1 master program: calcium-calcineurin-NFATc1 "
        "axis and its ITAM co-stimulation",
        "NFATc1, the master transcription factor of osteoclastogenesis, with the "
        "calcineurin-NFAT cascade that activates it and the ITAM co-stimulatory receptors and "
        "kinases (OSCAR, TREM2, DAP12, FcRgamma, SYK, BTK/TEC, PLCgamma2) that trigger the "
        "calcium signal (Takayanagi 2002 Dev Cell; Koga 2004 Nature). Genes kept when GO "
        "annotates them to calcineurin-NFAT signalling or to an osteoclast term.",
        ["osteoclastogenesis", "osteoclast_stage", "nfatc1"],
        ["NFATC1", "NFATC2", "PPP3CA", "PPP3CB", "PPP3R1", "RCAN1", "OSCAR", "TREM2",
         "TYROBP", "FCER1G", "SYK", "BTK", "TEC", "PLCG2", "CAMK4", "CREB1"], nf_ev,
        {**oc_src, "motivation": oc_src["motivation"] + [
            "Takayanagi H et al. Dev Cell 2002;3:889, doi:10.1016/S1534-5807(02)00369-6",
            "Koga T et al. Nature 2004;428:758, doi:10.1038/nature02444"]}))
    sigs.append(curated(
        "osteoclast_fusion", "Osteoclast fusion (DC-STAMP, OC-STAMP, V-ATPase d2)",
        "Genes of mononuclear-osteoclast fusion into multinucleated cells.",
        ["osteoclastogenesis", "osteoclast_stage", "fusion"],
        ["DCSTAMP", "OCSTAMP", "ATP6V0D2", "CD47", "SIRPA", "CD44", "CD81", "CD109",
         "SH3PXD2A", "TCTA", "SBNO2", "ADAM12", "SIGLEC15"], oc_ev, oc_src))
    sigs.append(curated(
        "osteoclast_resorption", "Osteoclast resorption machinery (TRAP, cathepsin K, MMP9, "
        "acidification, integrin alphaVbeta3)",
        "Effector genes of the mature resorbing osteoclast: TRAP (ACP5), cathepsin K, MMP9, "
        "the acidification machinery (V-ATPase a3/d2, ClC-7/OSTM1, carbonic anhydrase II), "
        "calcitonin receptor, integrin alphaVbeta3 and OSCAR.",
        ["osteoclastogenesis", "osteoclast_stage", "resorption"],
        ["ACP5", "CTSK", "MMP9", "ATP6V0D2", "TCIRG1", "CLCN7", "OSTM1", "CA2", "CALCR",
         "ITGB3", "ITGAV", "OSCAR", "SNX10", "SRC"], oc_ev, oc_src))
    mono_ev = s.panglao_evidence(["Monocytes"])
    go_diff = s.go_evidence(["GO:0030316", "GO:0045672", "GO:0045670", "GO:0045453",
                             "GO:0045124"])
    ocp = s.panglao_evidence(["Osteoclast precursor cells"])
    cp_ev = {g: go_diff[g] + mono_ev[g] for g in set(go_diff) & set(mono_ev)}
    for g, e in ocp.items():
        cp_ev.setdefault(g, []).extend(e)
    cand, _, _ = approve(sorted(cp_ev))
    sigs.append(curated(
        "osteoclast_circulating_precursor", "Human circulating osteoclast precursors: "
        "monocyte-expressed osteoclast-differentiation genes",
        "Genes annotated to osteoclast differentiation, its regulation or bone resorption in GO "
        "that are also monocyte markers in PanglaoDB, plus PanglaoDB's osteoclast-precursor "
        "markers: the osteoclastogenic potential carried by "
        "circulating CD14+ monocytes, the main human osteoclast precursors (Fujikawa 1996; "
        "Komano 2006). Derived by intersection, no hand-picked genes.",
        ["osteoclastogenesis", "osteoclast_stage", "precursor", "monocyte"], cand, cp_ev,
        {**oc_src, "derivation": "(GO:0030316, GO:0045672, GO:0045670, GO:0045453 or "
                                 "GO:0045124, propagated, AND PanglaoDB 'Monocytes' human row) "
                                 "OR PanglaoDB 'Osteoclast precursor cells' human row",
         "motivation": ["Komano Y et al. Arthritis Res Ther 2006;8:R152, doi:10.1186/ar2046",
                        "Fujikawa Y et al. Ann Rheum Dis 1996;55:816, "
                        "doi:10.1136/ard.55.11.816"]}))
    for gid in ("GO:0030316", "GO:0045453"):
        key, label, genes = s.go_prop_term(gid)
        sigs.append(database_set(key, label.split(" ", 1)[1].capitalize() + f" ({gid})",
                                 f"GO biological process {label}, annotations propagated from "
                                 "descendant terms.", ["osteoclastogenesis", "go"], genes,
                                 {"kind": "database", **GO, "record": label}))

    # ---------------------------------------------------------------- inflammatory drivers
    for hn in ("HALLMARK_TNFA_SIGNALING_VIA_NFKB", "HALLMARK_IL6_JAK_STAT3_SIGNALING",
               "HALLMARK_INFLAMMATORY_RESPONSE", "HALLMARK_COMPLEMENT"):
        sigs.append(database_set(hn, hn.replace("HALLMARK_", "Hallmark ").replace("_", " ")
                                 .lower().capitalize(), f"MSigDB Hallmark {hn}.",
                                 ["inflammation", "hallmark"], H(hn),
                                 {"kind": "database", **HALLMARK, "record": hn}))
    for rid in ("R-HSA-75893", "R-HSA-1059683", "R-HSA-9020702", "R-HSA-5668541"):
        rn, genes = s.reactome[rid]
        sigs.append(database_set(reactome_name(rn), f"Reactome: {rn} ({rid})",
                                 f"Reactome pathway {rn} ({rid}).", ["inflammation", "reactome"],
                                 genes, {"kind": "database", **REACTOME, "record": f"{rn} ({rid})"}))
    for gid in ("GO:0070498", "GO:0070102", "GO:0007259", "GO:0007249", "GO:0038061",
                "GO:0006956"):
        key, label, genes = s.go_prop_term(gid)
        sigs.append(database_set(key, label.split(" ", 1)[1].capitalize() + f" ({gid})",
                                 f"GO biological process {label}, annotations propagated from "
                                 "descendant terms.", ["inflammation", "go"], genes,
                                 {"kind": "database", **GO, "record": label}))
    pg = s.progeny
    for path, nm, extra in (("TNFa", "PROGENY_TNFA", []), ("NFkB", "PROGENY_NFKB", []),
                            ("JAK-STAT", "PROGENY_JAK_STAT", []),
                            ("Hypoxia", "PROGENY_HYPOXIA", ["trained_immunity",
                                                           "immunometabolism"])):
        sub = pg[pg["pathway"] == path].sort_values(["p.value", "gene"]).head(100)
        g, ren, exc = approve(sub["gene"])
        wmap = {ren.get(a, a): float(w) for a, w in zip(sub["gene"], sub["weight"])}
        sigs.append(make(nm, f"PROGENy {path} footprint (top 100 genes, signed weights)",
                         f"PROGENy {path} pathway-responsive genes: the 100 genes with the "
                         "smallest p-value in the human model, with their signed weights "
                         "(PROGENy's default footprint).", ["inflammation", "progeny", "weighted",
                                                            *extra], g,
                         {"kind": "database", **PROGENY, "record": f"pathway {path}, top 100 "
                          "by p.value"}, weights=[wmap[x] for x in g], excluded=exc or None,
                         renamed=ren))
    rk_ev = s.go_evidence(["GO:0045672", "GO:0045671", "GO:0045670", "GO:0030316",
                           "GO:0045124"])
    sigs.append(curated(
        "rankl_opg_axis", "RANKL/OPG axis (signed: RANKL, RANK up; OPG down)",
        "The RANKL-RANK-OPG triad that sets osteoclastogenic drive: RANKL (TNFSF11) and its "
        "receptor RANK (TNFRSF11A) with weight +1, the decoy receptor OPG (TNFRSF11B) with "
        "weight -1, so the score follows the RANKL/OPG balance.",
        ["inflammation", "osteoclastogenesis", "rankl", "signed"],
        ["TNFSF11", "TNFRSF11A", "TNFRSF11B"], rk_ev,
        {"evidence_sources": "GO BP ann. 2024-11 propagated (CC BY 4.0)",
         "licence": "CC BY 4.0 (GO)", "motivation": oc_src["motivation"]},
        weights=[1.0, 1.0, -1.0]))

    # ---------------------------------------------------------------- interferon
    for hn in ("HALLMARK_INTERFERON_ALPHA_RESPONSE", "HALLMARK_INTERFERON_GAMMA_RESPONSE"):
        sigs.append(database_set(hn, hn.replace("HALLMARK_", "Hallmark ").replace("_", " ")
                                 .lower().capitalize(), f"MSigDB Hallmark {hn}; positive control "
                                 "for interferon stimulation.", ["interferon", "hallmark"],
                                 H(hn), {"kind": "database", **HALLMARK, "record": hn}))

    # ---------------------------------------------------------------- myeloid identity
    split = monocyte_split(data, s, {
        "classical": ["CD14", "LYZ", "S100A8", "S100A9", "S100A12", "FCN1", "VCAN", "CCR2",
                      "SELL", "CD36", "CSF3R", "MNDA", "CLEC12A"],
        "nonclassical": ["FCGR3A", "CX3CR1", "MS4A7", "CSF1R", "LST1", "PILRA", "ITGAL",
                         "SPN", "RHOC", "IFITM3"]})
    mk_src = {"evidence_sources": PANGLAO, "licence": "gene list CC BY 4.0 (this project); "
              "PanglaoDB rows cited as evidence only"}
    for which, nm, title in (("classical", "marker_classical_monocyte",
                              "Classical (CD14+) monocyte markers"),
                             ("nonclassical", "marker_nonclassical_monocyte",
                              "Non-classical (FCGR3A+/CD16+) monocyte markers")):
        ev = split[which]
        sigs.append(curated(
            nm, title, f"{title}: candidate genes kept when PanglaoDB lists them as human "
            "monocyte markers and, where the Kang 2018 PBMC subset measures them, they are "
            f"higher (mean logcounts difference >= 0.25) in {which} than in the other "
            "monocytes. Checked on Kang 2018: not an independent positive control there.",
            ["myeloid_identity", "monocyte"], list(ev), ev,
            {**mk_src, "kind": "curated_intersection",
             "data_check": "Kang HM et al. Nat Biotechnol 2018;36:89 (GSE96583), muscat "
                           "example subset, ../shared/data/kang2018_muscat_example",
             "derivation": "candidates AND PanglaoDB 'Monocytes' (Hs) row AND (when measured) "
                           "Kang 2018 CD14+ vs FCGR3A+ direction"}))
    marker_sets = [
        ("marker_macrophage", "Macrophage markers", ["Macrophages", "Kupffer cells",
                                                     "Alveolar macrophages",
                                                     "Red pulp macrophages"],
         ["CD68", "CD163", "MRC1", "C1QA", "C1QB", "C1QC", "MSR1", "MARCO", "APOE", "VSIG4",
          "F13A1", "LYVE1", "SIGLEC1", "MAF", "CD5L", "STAB1"]),
        ("marker_cdc", "Conventional dendritic cell (cDC1/cDC2) markers", ["Dendritic cells"],
         ["CD1C", "FCER1A", "CLEC10A", "CLEC9A", "XCR1", "FLT3", "ZBTB46", "BATF3", "CADM1",
          "HLA-DQA1", "HLA-DPB1", "CD1E", "IRF8", "LAMP3"]),
        ("marker_pdc", "Plasmacytoid dendritic cell markers", ["Plasmacytoid dendritic cells"],
         ["LILRA4", "CLEC4C", "IL3RA", "TCF4", "IRF7", "SPIB", "JCHAIN", "LAMP5", "SERPINF1",
          "ITM2C", "NRP1", "GZMB", "TLR7", "TLR9", "PLD4"]),
        ("marker_neutrophil", "Neutrophil markers", ["Neutrophils"],
         ["CSF3R", "FCGR3B", "CXCR2", "CXCR1", "CEACAM8", "MMP8", "MME", "FPR1", "S100A12",
          "TREM1", "CMTM2", "IL1R2", "LCN2", "LTF", "CAMP"]),
        ("marker_osteoclast", "Osteoclast markers", ["Osteoclasts"],
         ["ACP5", "CTSK", "MMP9", "DCSTAMP", "OSCAR", "CA2", "ITGB3", "SNX10", "TNFRSF11A",
          "CALCR", "ATP6V0D2", "NFATC1"]),
        ("marker_myeloid_progenitor", "Haematopoietic stem and myeloid progenitor markers",
         ["Hematopoietic stem cells"],
         ["CD34", "KIT", "FLT3", "PROM1", "GATA2", "MEIS1", "HLF", "CD33", "MPO", "ELANE",
          "AZU1", "PRTN3", "SPINK2", "CRHBP", "HOPX"]),
    ]
    for nm, title, cts, cand in marker_sets:
        ev = s.panglao_evidence(cts)
        sigs.append(curated(
            nm, title, f"Markers of {title.lower().replace(' markers', '')}: candidate genes "
            f"kept only when PanglaoDB lists them for {', '.join(cts)} (human rows); evidence "
            "rows per gene.", ["myeloid_identity"], cand, ev, mk_src))
    return sigs


def data_card(sigs: list[Signature]) -> str:
    def src(s: Signature) -> str:
        x = s.source
        if x.get("kind") == "paper_table":
            return f"Li 2023 Cell Rep, doi:{x['doi']} ({x.get('module', 'TM1-TM4')})"
        if x.get("kind") == "derived_from_data":
            return "derived: " + (x.get("data", "").split(",")[0].split(" (")[0])
        if x.get("kind") == "database":
            return f"{x['database']} {x['version']}: {x['record']}"
        return x.get("evidence_sources", x.get("database", "")).split(" (")[0]
    lic = {"database": lambda s: s.source["licence"],
           "paper_table": lambda s: "cite paper (repo has no licence)",
           "derived_from_data": lambda s: "derived (this project)",
           "curated_intersection": lambda s: "CC BY 4.0 (evidence: GO CC BY; PanglaoDB cited)"}
    how = {"database": "copied; symbols updated to HGNC 2026-06",
           "paper_table": "authors' table (gene, module, sign)",
           "derived_from_data": "computed by build_signatures.py",
           "curated_intersection": "candidates ∩ database evidence, per gene"}
    lines = [
        "# osteoimmune signature library", "",
        f"Library version **{LIBRARY_VERSION}** ({LIBRARY_DATE}); changes in `CHANGELOG.md`. "
        "One YAML file per signature (schema below), generated by "
        "`data/build/build_signatures.py` from the public tables in `../shared/reference` and "
        "the data in `../shared/data` (sources, versions and licences in "
        "`data/reference/README.md`). Do not edit the YAML by hand: change the script and "
        "rebuild.", "",
        "Gene symbols are HGNC approved symbols (June 2026); each gene lists its mouse "
        "orthologs from the shipped `data/reference/orthologs_human_mouse.tsv.gz`. Signed sets "
        "give each gene a `direction` (`up`/`down`), weighted sets a `weight`.", "",
        "| set | n genes | up/down | species | tags | source | licence | how derived |",
        "| --- | ---: | --- | --- | --- | --- | --- | --- |"]
    for s in sigs:
        ud = f"{len(s.up_genes)}/{len(s.down_genes)}" if s.is_signed else ""
        k = s.source.get("kind", "curated_intersection")
        lines.append(f"| `{s.name}` | {len(s)} | {ud} | human (+ mouse orthologs) | "
                     f"{', '.join(s.tags)} | {src(s)} | {lic[k](s)} | {how[k]} |")
    lines += ["", "## Schema (schema_version 1)", "", "```yaml",
              "schema_version: 1", "name: osteoclast_resorption      # score column name",
              "title: ...", "description: ...", "tags: [osteoclastogenesis, ...]",
              "species: human                  # species of `genes`",
              "source:                         # provenance",
              "  kind: database | paper_table | derived_from_data | curated_intersection",
              "  citation/doi/pmid/table, or database/record/version/licence/url",
              "  derivation: how the genes were chosen; motivation: papers cited as motivation",
              "  symbols_updated: {OLD: NEW}     # renames applied to the source's symbols",
              "genes:",
              "  - symbol: ACP5", "    direction: up     # signed sets only",
              "    weight: 1.0       # weighted sets only",
              "    mouse: [Acp5]     # orthologs from the shipped table",
              "    evidence: [...]   # curated/derived sets: the supporting records",
              "excluded:            # source genes left out, with the reason",
              "  - {symbol: ..., reason: ...}", "```", "",
              "Load with `oi.signatures.load()`; list with `osteoimmune signatures list`.", ""]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description="Build data/signatures from the shared tables.")
    ap.add_argument("--reference", type=Path, default=SHARED / "reference")
    ap.add_argument("--data", type=Path, default=SHARED / "data")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    sigs = build_all(args.reference, args.data)
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    for f in out.glob("*.yaml"):
        f.unlink()
    for s in sigs:
        write_yaml(s, out / f"{s.name}.yaml")
    (out / "library.yaml").write_text(
        f"# osteoimmune signature library\nversion: \"{LIBRARY_VERSION}\"\n"
        f"date: \"{LIBRARY_DATE}\"\nschema_version: 1\nn_signatures: {len(sigs)}\n"
        "changelog: CHANGELOG.md\nbuilt_by: data/build/build_signatures.py\n",
        encoding="utf-8")
    (out / "README.md").write_text(data_card(sigs), encoding="utf-8")
    for s in sigs:
        print(f"{s.name:50s} {len(s):4d} {'signed' if s.is_signed else ''}")


if __name__ == "__main__":
    main()
