"""GMT input and output."""

from __future__ import annotations

import os
from pathlib import Path

from ._signature import Signature, SignatureLibrary


def read_gmt(path: str | os.PathLike, species: str = "human") -> SignatureLibrary:
    """Read a GMT file (one set per line: name, description, genes...).

    Parameters
    ----------
    path
        The GMT file (optionally gzip-compressed, ``.gz``).
    species
        Species of the gene symbols.

    Returns
    -------
    SignatureLibrary
        One :class:`Signature` per line; genes with a trailing ``-`` form the negative part.
    """
    import gzip

    p = Path(path)
    opener = gzip.open if p.suffix == ".gz" else open
    sigs: list[Signature] = []
    with opener(p, "rt", encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            line = line.rstrip("\r\n")
            if not line.strip() or line.startswith("#"):
                continue
            parts = line.split("\t")
            if len(parts) < 3:
                raise ValueError(
                    f"{p}:{lineno}: a GMT line needs name, description and at least one gene "
                    "separated by tabs."
                )
            genes = [g for g in parts[2:] if g.strip()]
            sigs.append(Signature.from_genes(parts[0].strip(), genes, description=parts[1],
                                             species=species,
                                             source={"file": p.name}))
    return SignatureLibrary(sigs)


def write_gmt(signatures, path: str | os.PathLike) -> Path:
    """Write signatures to a GMT file; negative-weight genes get a trailing ``-``."""
    from ._signature import as_signature_list

    p = Path(path)
    with open(p, "w", encoding="utf-8") as fh:
        for s in as_signature_list(signatures):
            genes = [g if w >= 0 else f"{g}-" for g, w in zip(s.genes, s.signed_weights)]
            desc = (s.title or s.description or "").replace("\t", " ").replace("\n", " ")
            fh.write("\t".join([s.name, desc, *genes]) + "\n")
    return p
