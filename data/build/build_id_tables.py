"""Build the trimmed Entrez id -> gene symbol tables shipped in ``data/reference/``.

Sources (read-only copies in ``../shared/reference``; see its MANIFEST.tsv):

- mouse: NCBI Gene ``Mus_musculus.gene_info`` (May 2019), file
  ``genes/ncbi_Mus_musculus.gene_info_2019-05.gz``, sha256
  ab59fdd29e105049e3b992d2049098348e945994a5ffd476aeba7ffd3d4b649a, byte copy of
  https://ftp.ncbi.nlm.nih.gov/gene/DATA/GENE_INFO/Mammalia/Mus_musculus.gene_info.gz
  (public domain; cite NCBI Gene). Columns kept: GeneID, Symbol, type_of_gene.
- human: HGNC complete set (2026-06-20), file ``genes/hgnc_complete_set_core_2026-06-20.tsv.gz``
  (CC0). Approved records with an Entrez id; columns kept: entrez_id, symbol, locus_group.

Outputs (gzip TSV with columns ``entrez_id``, ``symbol``, ``gene_type``; one row per id):

- ``data/reference/entrez_symbol_mouse.tsv.gz``
- ``data/reference/entrez_symbol_human.tsv.gz``

Run from the repository root::

    python data/build/build_id_tables.py [--reference ../shared/reference]
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[2]
MOUSE_SHA256 = "ab59fdd29e105049e3b992d2049098348e945994a5ffd476aeba7ffd3d4b649a"
HUMAN_SHA256 = "6bb2951c56204cd7b387c4e40b8d46107f6bdc422e77b8e4f2088a5d39e1be4b"


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _write(df: pd.DataFrame, path: Path, header: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    # mtime=0 and a fixed row order make the output byte-reproducible
    with open(path, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as gz:
        gz.write(header.encode())
        gz.write(df.to_csv(sep="\t", index=False, lineterminator="\n").encode())


def build(reference: Path) -> None:
    mouse_src = reference / "genes" / "ncbi_Mus_musculus.gene_info_2019-05.gz"
    human_src = reference / "genes" / "hgnc_complete_set_core_2026-06-20.tsv.gz"
    for src, sha in ((mouse_src, MOUSE_SHA256), (human_src, HUMAN_SHA256)):
        got = _sha256(src)
        if got != sha:
            raise SystemExit(f"{src}: sha256 {got} differs from the recorded {sha}")

    mouse = pd.read_csv(mouse_src, sep="\t", usecols=["GeneID", "Symbol", "type_of_gene"],
                        dtype=str)
    mouse.columns = ["entrez_id", "symbol", "gene_type"]
    mouse = mouse.sort_values("entrez_id", key=lambda s: s.astype(int)).reset_index(drop=True)
    _write(mouse, ROOT / "data" / "reference" / "entrez_symbol_mouse.tsv.gz",
           f"# source: NCBI Gene Mus_musculus.gene_info (2019-05), sha256 {MOUSE_SHA256}; "
           "public domain, cite NCBI Gene. Built by data/build/build_id_tables.py\n")

    human = pd.read_csv(human_src, sep="\t", usecols=["symbol", "locus_group", "entrez_id"],
                        dtype=str)
    human = human.dropna(subset=["entrez_id"])
    human = human[["entrez_id", "symbol", "locus_group"]].rename(
        columns={"locus_group": "gene_type"})
    human = human.sort_values("entrez_id", key=lambda s: s.astype(int)).reset_index(drop=True)
    _write(human, ROOT / "data" / "reference" / "entrez_symbol_human.tsv.gz",
           f"# source: HGNC complete set 2026-06-20 (Approved records), sha256 {HUMAN_SHA256}; "
           "CC0. Built by data/build/build_id_tables.py\n")
    print(f"mouse: {len(mouse)} ids; human: {len(human)} ids")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reference", type=Path, default=ROOT.parent / "shared" / "reference")
    build(parser.parse_args().reference)
