"""Alias and previous-symbol resolution through the shipped HGNC/MGI symbol table."""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache

import pandas as pd

from .._paths import data_root


@cache
def _alias_table(species: str) -> dict[str, str | None]:
    """Map upper-cased symbol/alias/previous symbol → approved symbol (None if ambiguous)."""
    path = data_root() / "reference" / f"symbols_{species}.tsv.gz"
    if not path.exists():
        return {}
    tab = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    out: dict[str, str | None] = {}
    # approved symbols win over previous symbols, which win over aliases
    for col in ("symbol", "prev_symbols", "alias_symbols"):
        level: dict[str, set[str]] = {}
        for sym, val in zip(tab["symbol"], tab[col]):
            for key in (val.split("|") if col != "symbol" else [val]):
                key = key.strip().upper()
                if key:
                    level.setdefault(key, set()).add(sym)
        for key, targets in level.items():
            if key in out:
                continue
            out[key] = next(iter(targets)) if len(targets) == 1 else None
    return out


def resolve_symbols(symbols: Sequence[str], species: str | None = None) -> list[str | None]:
    """Approved symbol for each input (approved, previous or alias symbol).

    Parameters
    ----------
    symbols
        Gene symbols in any case.
    species
        ``"human"`` or ``"mouse"``; ``None`` tries human, then mouse.

    Returns
    -------
    list
        The approved symbol, or ``None`` when the symbol is unknown or ambiguous.
    """
    species_list = [species] if species else ["human", "mouse"]
    out: list[str | None] = []
    tables = [_alias_table(s) for s in species_list]
    for s in symbols:
        key = str(s).upper()
        hit = None
        for t in tables:
            if key in t:
                hit = t[key]
                break
        out.append(hit)
    return out
