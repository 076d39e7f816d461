"""Human ↔ mouse gene mapping through the shipped ortholog table."""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache

import pandas as pd

from .._paths import data_root

SPECIES = ("human", "mouse")


@cache
def ortholog_table() -> pd.DataFrame:
    """The shipped human–mouse ortholog table.

    Returns
    -------
    pandas.DataFrame
        Columns ``human_symbol``, ``mouse_symbol``, ``source`` (``MGI_HMD``, ``HCOP>=3`` or
        ``Ensembl_one2one``: the table that answered), ``support`` and ``orthology``
        (``one2one``, ``one2many``, ``many2one``, ``many2many``; human side first).
    """
    path = data_root() / "reference" / "orthologs_human_mouse.tsv.gz"
    if not path.exists():
        raise FileNotFoundError(
            f"The ortholog table {path} is missing. Rebuild it with "
            "`python data/build/build_reference.py` or reinstall osteoimmune."
        )
    return pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)


@cache
def _maps() -> dict[tuple[str, str], dict[str, list[str]]]:
    tab = ortholog_table()
    h2m: dict[str, list[str]] = {}
    m2h: dict[str, list[str]] = {}
    for h, m in zip(tab["human_symbol"], tab["mouse_symbol"]):
        h2m.setdefault(h, []).append(m)
        m2h.setdefault(m, []).append(h)
    return {("human", "mouse"): h2m, ("mouse", "human"): m2h}


def _check_species(species: str, what: str = "species") -> str:
    s = str(species).lower()
    if s not in SPECIES:
        raise ValueError(f"{what} must be 'human' or 'mouse', got {species!r}.")
    return s


def map_orthologs(genes: Sequence[str], source: str, target: str,
                  use_aliases: bool = True) -> dict[str, list[str]]:
    """Orthologs in ``target`` for each gene of ``source``.

    Parameters
    ----------
    genes
        Gene symbols of the ``source`` species. Outdated symbols and aliases are first
        resolved to the approved symbol through the shipped symbol table when
        ``use_aliases`` is true.
    source, target
        ``"human"`` or ``"mouse"``.
    use_aliases
        Resolve previous symbols and aliases before mapping.

    Returns
    -------
    dict
        ``{gene: [orthologs, ...]}``; an empty list for unmapped genes. Orthologs are in
        the table's order (sorted symbols).
    """
    source = _check_species(source, "source species")
    target = _check_species(target, "target species")
    genes = [str(g) for g in genes]
    if source == target:
        return {g: [g] for g in genes}
    mp = _maps()[(source, target)]
    out: dict[str, list[str]] = {}
    canon: list[str | None] = [None] * len(genes)
    if use_aliases:
        from ._aliases import resolve_symbols

        canon = resolve_symbols(genes, species=source)
    for g, c in zip(genes, canon):
        hits = mp.get(g)
        if hits is None and c is not None:
            hits = mp.get(c)
        out[g] = list(hits or [])
    return out
