"""Build the trimmed reference tables shipped in ``data/reference/``.

Reads the staged public tables in ``../shared/reference`` (see its README.md and
MANIFEST.tsv for origin, version, sha256 and licence of each input) and writes:

* ``symbols_human.tsv.gz``: HGNC (2026-06-25 gene table + Entrez ids of the 2026-06-20
  complete set), every protein-coding gene ("gene with protein product") plus every other
  HGNC record named by a staged gene-set source the library uses. Columns: symbol,
  alias_symbols, prev_symbols, ensembl_id, entrez_id, hgnc_id, gene_type (``|`` separated).
  Licence CC0.
* ``symbols_mouse.tsv.gz``: MGI (2026-06-25) protein-coding genes plus the mouse orthologs
  of every human row above. Columns: symbol, alias_symbols, prev_symbols, ensembl_id,
  entrez_id (NCBI gene_info 2019-05 through the MGI id), mgi_id, gene_type.
* ``orthologs_human_mouse.tsv.gz``: one row per human-mouse pair for the human genes of
  ``symbols_human``. Rule, per human gene: the MGI HMD pairs when MGI has any; otherwise
  HCOP pairs supported by at least 3 databases; otherwise Ensembl ``ortholog_one2one``
  pairs with orthology confidence 1. ``source`` records which table answered and
  ``support`` the HCOP databases or the Ensembl homology type. Symbols of the older tables
  are brought up to the 2026 HGNC/MGI symbols (through Ensembl ids, then previous symbols).

Run from the repository root::

    python data/build/build_reference.py [--reference ../shared/reference]

The output is deterministic (sorted rows, gzip without timestamps).
"""

from __future__ import annotations

import argparse
import gzip
import io
import json
from pathlib import Path

import pandas as pd

HERE = Path(__file__).resolve().parent
OUT = HERE.parent / "reference"
DEFAULT_REF = HERE.parents[2] / "shared" / "reference"

GENESET_SOURCES = [
    "genesets/h.all.v2023.2.Hs.symbols.gmt",
    "genesets/ReactomePathways_2023-03-06.gmt.gz",
    "genesets/osteoimmune_GO_BP_propagated_2024-11.gmt",
]


def _open_text(path: Path):
    return gzip.open(path, "rt", encoding="utf-8") if path.suffix == ".gz" else open(
        path, encoding="utf-8")


def _gmt_symbols(path: Path) -> set[str]:
    out: set[str] = set()
    with _open_text(path) as fh:
        for line in fh:
            parts = line.rstrip("\n").split("\t")
            out.update(g for g in parts[2:] if g)
    return out


def _write_tsv_gz(df: pd.DataFrame, path: Path) -> None:
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", mtime=0, compresslevel=9) as gz:
        gz.write(df.to_csv(sep="\t", index=False, lineterminator="\n").encode("utf-8"))
    path.write_bytes(buf.getvalue())


def _resolver(tab: pd.DataFrame, upper: bool):
    """Old symbol → current symbol through approved, then previous symbols (unique only)."""
    approved = {(s.upper() if upper else s): s for s in tab["symbol"]}
    prev: dict[str, set[str]] = {}
    for s, p in zip(tab["symbol"], tab["prev_symbols"]):
        for k in filter(None, p.split("|")):
            prev.setdefault(k.upper() if upper else k, set()).add(s)

    def resolve(sym: str) -> str | None:
        k = sym.upper() if upper else sym
        if k in approved:
            return approved[k]
        hits = prev.get(k, set())
        return next(iter(hits)) if len(hits) == 1 else None

    return resolve


def build(ref: Path, out: Path = OUT) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    rd = dict(sep="\t", dtype=str, keep_default_na=False)
    # ---------------------------------------------------------------- human
    hg = pd.read_csv(ref / "genes/hgnc_human_gene_table_2026-06-25.tsv.gz", **rd)
    core = pd.read_csv(ref / "genes/hgnc_complete_set_core_2026-06-20.tsv.gz", **rd)
    entrez = dict(zip(core["hgnc_id"], core["entrez_id"]))
    hg["entrez_id"] = hg["source_id"].map(entrez).fillna("")
    hres = _resolver(hg, upper=True)
    needed: set[str] = set()
    for rel in GENESET_SOURCES:
        needed |= {hres(g) for g in _gmt_symbols(ref / rel)} - {None}
    for rel in ["genesets/progeny_model_human_full_v1.20.0.tsv.gz"]:
        pg = pd.read_csv(ref / rel, sep="\t", usecols=["gene"], dtype=str)
        needed |= {hres(g) for g in pg["gene"].unique()} - {None}
    li = pd.read_csv(ref / "signatures/Li2023_BCG_trained_immunity_TIGs.tsv", **rd)
    needed |= {hres(g) for g in li["gene"].unique()} - {None}
    keep = (hg["gene_type"] == "gene with protein product") | hg["symbol"].isin(needed)
    human = hg.loc[keep, ["symbol", "alias_symbols", "prev_symbols", "ensembl_id", "entrez_id",
                          "source_id", "gene_type"]].rename(columns={"source_id": "hgnc_id"})
    human = human.sort_values("symbol").reset_index(drop=True)

    # ---------------------------------------------------------------- mouse (full, trimmed later)
    mg = pd.read_csv(ref / "genes/mgi_mouse_gene_table_2026-06-25.tsv.gz", **rd)
    mres = _resolver(mg, upper=False)
    mg_ens = {e: s for e, s in zip(mg["ensembl_id"], mg["symbol"]) if e}
    hg_ens = {e: s for e, s in zip(hg["ensembl_id"], hg["symbol"]) if e}

    # ---------------------------------------------------------------- orthologs
    hmd = pd.read_csv(ref / "orthologs/mgi_HMD_HumanPhenotype.rpt.gz", sep="\t", header=None,
                      dtype=str, keep_default_na=False, usecols=[0, 2, 3])
    hmd.columns = ["h", "m", "mgi"]
    mgi_sym = dict(zip(mg["source_id"], mg["symbol"]))
    hmd["human_symbol"] = hmd["h"].map(hres)
    # MGI id is the stable key on the mouse side
    hmd["mouse_symbol"] = [mgi_sym.get(i) or mres(m) for i, m in zip(hmd["mgi"], hmd["m"])]
    hmd = hmd.dropna(subset=["human_symbol", "mouse_symbol"])
    hmd = hmd.assign(source="MGI_HMD", support="MGI curated")[
        ["human_symbol", "mouse_symbol", "source", "support"]]

    hcop = pd.read_csv(ref / "orthologs/hcop_human_mouse_2024-01-23.csv.gz", dtype=str,
                       keep_default_na=False)
    hcop.columns = ["hens", "h", "mens", "m", "support"]
    hcop["n_support"] = hcop["support"].str.split(",").map(len)
    hcop = hcop[hcop["n_support"] >= 3].copy()
    hcop["human_symbol"] = [hg_ens.get(e) or hres(s) for e, s in zip(hcop["hens"], hcop["h"])]
    hcop["mouse_symbol"] = [mg_ens.get(e) or mres(s) for e, s in zip(hcop["mens"], hcop["m"])]
    hcop = hcop.dropna(subset=["human_symbol", "mouse_symbol"])
    hcop = hcop.assign(source="HCOP>=3", support=hcop["support"].str.replace(",", "|"))[
        ["human_symbol", "mouse_symbol", "source", "support"]]

    ens = pd.read_csv(ref / "orthologs/ensembl_biomart_human_to_mouse_2024-01-23.csv.gz",
                      dtype=str, keep_default_na=False)
    ens.columns = ["hens", "h", "m", "mens", "type", "conf", "goc"]
    ens = ens[(ens["type"] == "ortholog_one2one") & (ens["conf"] == "1")].copy()
    ens["human_symbol"] = [hg_ens.get(e) or hres(s) for e, s in zip(ens["hens"], ens["h"])]
    ens["mouse_symbol"] = [mg_ens.get(e) or mres(s) for e, s in zip(ens["mens"], ens["m"])]
    ens = ens.dropna(subset=["human_symbol", "mouse_symbol"])
    ens = ens.assign(source="Ensembl_one2one", support="ortholog_one2one conf=1")[
        ["human_symbol", "mouse_symbol", "source", "support"]]

    hset = set(human["symbol"])
    parts = []
    answered: set[str] = set()
    for tab in (hmd, hcop, ens):
        tab = tab[tab["human_symbol"].isin(hset) & ~tab["human_symbol"].isin(answered)]
        tab = tab.drop_duplicates(["human_symbol", "mouse_symbol"])
        parts.append(tab)
        answered |= set(tab["human_symbol"])
    orth = pd.concat(parts).sort_values(["human_symbol", "mouse_symbol"]).reset_index(drop=True)
    nh = orth.groupby("human_symbol")["mouse_symbol"].transform("size")
    nm = orth.groupby("mouse_symbol")["human_symbol"].transform("size")
    orth["orthology"] = [
        ("one" if a == 1 else "many") + "2" + ("one" if b == 1 else "many")
        for a, b in zip(nm, nh)
    ]
    # orthology reads "<human side>2<mouse side>": one2many = one human gene, several mouse genes

    # ---------------------------------------------------------------- mouse table
    gi = pd.read_csv(ref / "genes/ncbi_Mus_musculus.gene_info_2019-05.gz", sep="\t", dtype=str,
                     keep_default_na=False, usecols=["GeneID", "dbXrefs"])
    mgi2entrez: dict[str, str] = {}
    for gid, x in zip(gi["GeneID"], gi["dbXrefs"]):
        for xr in x.split("|"):
            if xr.startswith("MGI:MGI:"):
                mgi2entrez.setdefault(xr[4:], gid)
    mg["entrez_id"] = mg["source_id"].map(mgi2entrez).fillna("")
    keepm = (mg["gene_type"] == "protein coding gene") | mg["symbol"].isin(orth["mouse_symbol"])
    mouse = mg.loc[keepm, ["symbol", "alias_symbols", "prev_symbols", "ensembl_id", "entrez_id",
                           "source_id", "gene_type"]].rename(columns={"source_id": "mgi_id"})
    mouse = mouse.drop_duplicates("symbol").sort_values("symbol").reset_index(drop=True)

    _write_tsv_gz(human, out / "symbols_human.tsv.gz")
    _write_tsv_gz(mouse, out / "symbols_mouse.tsv.gz")
    _write_tsv_gz(orth, out / "orthologs_human_mouse.tsv.gz")
    summary = {
        "symbols_human": len(human), "symbols_mouse": len(mouse), "ortholog_pairs": len(orth),
        "human_genes_with_ortholog": int(orth["human_symbol"].nunique()),
        "pairs_by_source": orth["source"].value_counts().to_dict(),
        "inputs": {
            "hgnc": "genes/hgnc_human_gene_table_2026-06-25.tsv.gz (+ entrez from "
                    "genes/hgnc_complete_set_core_2026-06-20.tsv.gz), CC0",
            "mgi": "genes/mgi_mouse_gene_table_2026-06-25.tsv.gz, MGI (free with citation)",
            "ncbi": "genes/ncbi_Mus_musculus.gene_info_2019-05.gz, public domain",
            "mgi_hmd": "orthologs/mgi_HMD_HumanPhenotype.rpt.gz, MGI",
            "hcop": "orthologs/hcop_human_mouse_2024-01-23.csv.gz, CC0",
            "ensembl": "orthologs/ensembl_biomart_human_to_mouse_2024-01-23.csv.gz, EMBL-EBI",
        },
    }
    (out / "build_summary.json").write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
    return summary


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reference", type=Path, default=DEFAULT_REF,
                    help="folder of the staged reference tables (../shared/reference)")
    args = ap.parse_args()
    print(json.dumps(build(args.reference), indent=2))


if __name__ == "__main__":
    main()
