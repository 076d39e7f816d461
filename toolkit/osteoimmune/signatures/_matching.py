"""Matching signature genes to the genes of a data set, with a coverage report."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .._utils import warn
from ._signature import Signature

__all__ = ["MatchedSignature", "match_signatures"]

_ENSEMBL = re.compile(r"^ENS[A-Z]*G\d{6,}(\.\d+)?$", re.IGNORECASE)


@dataclass(frozen=True)
class MatchedSignature:
    """A signature resolved against a data set's genes.

    Attributes
    ----------
    name
        The signature name.
    idx
        Positions of the found genes in the data's gene axis (unique, in signature order).
    weights
        Signed weight of each found gene.
    found
        Data gene names of the found genes.
    missing
        Requested genes absent from the data.
    n_missing_up, n_missing_down
        Missing genes of the positive and negative parts (UCell counts them).
    """

    name: str
    idx: np.ndarray
    weights: np.ndarray
    found: tuple[str, ...]
    missing: tuple[str, ...]
    n_requested: int
    n_missing_up: int
    n_missing_down: int
    how: tuple[str, ...]

    @property
    def coverage(self) -> float:
        return len(self.idx) / self.n_requested if self.n_requested else 0.0


def _strip_version(x: str) -> str:
    return x.split(".", 1)[0].upper()


def _canonical_symbols(symbols: Sequence[str], species: str | None) -> list[str | None]:
    """Approved symbol for each input symbol through the shipped alias table (None: unknown)."""
    try:
        from ._aliases import resolve_symbols
    except ImportError:  # pragma: no cover - table always shipped
        return [None] * len(symbols)
    return resolve_symbols(symbols, species=species)


def match_signatures(
    signatures: Sequence[Signature],
    var_names: Sequence[str],
    *,
    species: str | None = None,
    min_coverage: float = 0.5,
    use_aliases: bool = True,
    obs_word: str = "observations",
    on_empty: str = "raise",
) -> tuple[list[MatchedSignature], pd.DataFrame]:
    """Resolve signature genes against ``var_names``.

    Order of rules for each requested gene: exact name; Ensembl id (version suffix ignored);
    case-insensitive symbol; alias or previous symbol through the shipped HGNC/MGI table (both
    sides mapped to the approved symbol). A gene that matches several data genes is an error
    (duplicated var names); two requested genes that resolve to the same data gene count once.

    Parameters
    ----------
    signatures
        Signatures to match.
    var_names
        The data's gene identifiers (``adata.var_names`` or a symbol column).
    species
        Species of the data (``"human"``/``"mouse"``), used for alias resolution.
    min_coverage
        Warn when a signature finds fewer than this fraction of its genes.
    use_aliases
        Resolve aliases and previous symbols.
    obs_word
        Word used in messages for observations (``"cells"`` or ``"samples"``).
    on_empty
        A signature with no gene in the data: ``"raise"`` an error, or ``"drop"`` it with a
        warning naming it (an error all the same when every signature is empty).

    Returns
    -------
    matched
        One :class:`MatchedSignature` per signature, in input order.
    coverage
        DataFrame indexed by signature: ``n_requested``, ``n_found``, ``n_missing``,
        ``coverage``, ``missing`` (``;``-joined), ``n_alias`` (found through an alias).

    Raises
    ------
    ValueError
        When a signature has no gene in the data, or when a gene matches duplicated names.
    """
    names = pd.Index([str(v) for v in var_names])
    exact: dict[str, int] = {}
    dup_names: set[str] = set()
    for i, v in enumerate(names):
        if v in exact:
            dup_names.add(v)
        else:
            exact[v] = i
    upper: dict[str, list[int]] = {}
    for i, v in enumerate(names):
        upper.setdefault(v.upper(), []).append(i)
    ens: dict[str, list[int]] | None = None
    canon_var: dict[str, list[int]] | None = None

    def _dup_error(gene: str, positions) -> ValueError:
        shown = ", ".join(repr(names[p]) for p in list(positions)[:4])
        return ValueError(
            f"Gene {gene!r} matches several data genes ({shown}): the var names are not "
            "unique. Call adata.var_names_make_unique() or pass gene_symbols= a column with "
            "unique symbols."
        )

    # the alias table is only consulted for genes not found otherwise
    requested_all: list[str] = sorted({g for s in signatures for g in s.genes})
    pending = [g for g in requested_all if g not in exact and g.upper() not in upper]
    canon_req: dict[str, str | None] = {}
    if use_aliases and pending:
        canon_req = dict(zip(pending, _canonical_symbols(pending, species)))

    if on_empty not in ("raise", "drop"):
        raise ValueError("on_empty must be 'raise' or 'drop'.")
    matched: list[MatchedSignature] = []
    rows = []
    empty: list[str] = []
    for sig in signatures:
        idx: list[int] = []
        w_out: list[float] = []
        found: list[str] = []
        how: list[str] = []
        missing: list[str] = []
        miss_up = miss_down = 0
        n_alias = 0
        seen: set[int] = set()
        for g, w in zip(sig.genes, sig.signed_weights):
            pos: int | None = None
            rule = ""
            if g in exact:
                if g in dup_names:
                    raise _dup_error(g, np.flatnonzero(names == g))
                pos, rule = exact[g], "exact"
            elif _ENSEMBL.match(g):
                if ens is None:
                    ens = {}
                    for i, v in enumerate(names):
                        if _ENSEMBL.match(v):
                            ens.setdefault(_strip_version(v), []).append(i)
                hits = ens.get(_strip_version(g), [])
                if len(hits) > 1:
                    raise _dup_error(g, hits)
                if hits:
                    pos, rule = hits[0], "ensembl"
            if pos is None:
                hits = upper.get(g.upper(), [])
                if len(hits) > 1:
                    raise _dup_error(g, hits)
                if hits:
                    pos, rule = hits[0], "case"
            if pos is None and use_aliases and canon_req.get(g):
                if canon_var is None:
                    canon_var = {}
                    for i, c in enumerate(_canonical_symbols(list(names), species)):
                        if c is not None:
                            canon_var.setdefault(c.upper(), []).append(i)
                hits = canon_var.get(canon_req[g].upper(), [])
                if len(hits) == 1:
                    pos, rule = hits[0], "alias"
            if pos is None:
                missing.append(g)
                if w >= 0:
                    miss_up += 1
                else:
                    miss_down += 1
                continue
            if pos in seen:
                continue
            seen.add(pos)
            idx.append(pos)
            w_out.append(float(w))
            found.append(names[pos])
            how.append(rule)
            n_alias += rule == "alias"
        n_req = len(sig.genes)
        if not idx and on_empty == "drop":
            empty.append(f"{sig.name} (0/{n_req})")
            rows.append({
                "signature": sig.name, "n_requested": n_req, "n_found": 0,
                "n_missing": len(missing), "coverage": 0.0, "missing": ";".join(missing),
                "n_alias": 0,
            })
            continue
        if not idx:
            raise ValueError(
                f"Signature {sig.name!r}: none of its {n_req} genes is in the data "
                f"(first requested: {', '.join(sig.genes[:5])}). Check the gene identifiers "
                "(symbols vs Ensembl ids: pass gene_symbols= the var column holding symbols) "
                "and the species (a human signature on mouse data needs "
                "signature.to_species('mouse')). To skip such signatures, pass "
                "on_empty='drop'."
            )
        m = MatchedSignature(
            name=sig.name, idx=np.asarray(idx, dtype=np.int64),
            weights=np.asarray(w_out, dtype=float), found=tuple(found),
            missing=tuple(missing), n_requested=n_req, n_missing_up=miss_up,
            n_missing_down=miss_down, how=tuple(how),
        )
        matched.append(m)
        rows.append({
            "signature": sig.name, "n_requested": n_req, "n_found": len(idx),
            "n_missing": len(missing), "coverage": m.coverage,
            "missing": ";".join(missing), "n_alias": n_alias,
        })
    if empty:
        if not matched:
            raise ValueError(
                f"None of the {len(empty)} signatures has a gene in the data. Check the gene "
                "identifiers (symbols vs Ensembl ids: gene_symbols=) and the species."
            )
        warn(f"{len(empty)} signature(s) have no gene in the data and are left out: "
             + ", ".join(empty))
    cov = pd.DataFrame(rows).set_index("signature")
    low = cov.index[(cov["coverage"] < min_coverage) & (cov["n_found"] > 0)]
    if len(low):
        detail = ", ".join(f"{n} ({cov.at[n, 'n_found']}/{cov.at[n, 'n_requested']})"
                           for n in low[:10])
        warn(f"Low gene coverage (< {min_coverage:.0%}) for {len(low)} signature(s): {detail}. "
             "Scores of these signatures rest on few genes; see the coverage report "
             "(result.attrs['coverage']).")
    return matched, cov
