"""The :class:`Signature` and :class:`SignatureLibrary` types."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["Signature", "SignatureLibrary", "as_signature_list"]


@dataclass(frozen=True)
class Signature:
    """A named gene signature with optional signed weights and its provenance.

    Parameters
    ----------
    name
        Identifier used as the score column name (e.g. ``"osteoclast_resorption"``).
    genes
        Gene symbols (or Ensembl ids) in the signature's ``species``.
    weights
        Optional weight per gene, same length as ``genes``. The sign gives the direction:
        positive for up-regulated (``up``), negative for down-regulated (``down``) genes.
        ``None`` means every gene has weight ``+1``.
    species
        ``"human"`` or ``"mouse"``.
    title, description
        Human-readable title and description.
    tags
        Free tags used by :meth:`SignatureLibrary.select` (e.g. ``"trained_immunity"``).
    source
        Provenance: a mapping with keys such as ``doi``, ``pmid``, ``table``, ``database``,
        ``version``, ``licence``, ``derivation``.
    metadata
        Further fields kept verbatim (e.g. mouse orthologs, library version).
    """

    name: str
    genes: tuple[str, ...]
    weights: tuple[float, ...] | None = None
    species: str = "human"
    title: str = ""
    description: str = ""
    tags: tuple[str, ...] = ()
    source: Mapping[str, Any] = field(default_factory=dict)
    metadata: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError("Signature name must be a non-empty string.")
        genes = tuple(str(g) for g in self.genes)
        object.__setattr__(self, "genes", genes)
        object.__setattr__(self, "tags", tuple(self.tags))
        if self.weights is not None:
            w = tuple(float(x) for x in self.weights)
            if len(w) != len(genes):
                raise ValueError(
                    f"Signature {self.name!r}: {len(w)} weights for {len(genes)} genes; "
                    "give one weight per gene or weights=None."
                )
            if not np.all(np.isfinite(w)):
                raise ValueError(f"Signature {self.name!r}: weights must be finite numbers.")
            object.__setattr__(self, "weights", w)
        if len(genes) == 0:
            raise ValueError(f"Signature {self.name!r} has no genes; give at least one gene "
                             "or leave the signature out.")

    # ------------------------------------------------------------------ views
    @property
    def signed_weights(self) -> np.ndarray:
        """Weights as a float array (``+1`` everywhere when the signature is unweighted)."""
        if self.weights is None:
            return np.ones(len(self.genes))
        return np.asarray(self.weights, dtype=float)

    @property
    def is_signed(self) -> bool:
        """Whether the signature has genes with negative weight (a ``down`` part)."""
        return bool(np.any(self.signed_weights < 0))

    @property
    def is_weighted(self) -> bool:
        """Whether the absolute weights differ from one."""
        return bool(np.any(np.abs(self.signed_weights) != 1.0))

    @property
    def up_genes(self) -> tuple[str, ...]:
        """Genes with positive weight."""
        w = self.signed_weights
        return tuple(g for g, x in zip(self.genes, w) if x > 0)

    @property
    def down_genes(self) -> tuple[str, ...]:
        """Genes with negative weight."""
        w = self.signed_weights
        return tuple(g for g, x in zip(self.genes, w) if x < 0)

    def __len__(self) -> int:
        return len(self.genes)

    def with_genes(self, genes: Sequence[str], weights: Sequence[float] | None = None,
                   **changes: Any) -> Signature:
        """Return a copy with other genes (and weights), keeping name and provenance."""
        return replace(self, genes=tuple(genes),
                       weights=None if weights is None else tuple(weights), **changes)

    @classmethod
    def from_genes(cls, name: str, genes: Iterable[str], **kwargs: Any) -> Signature:
        """Build a signature from a gene list, UCell style.

        A trailing ``-`` marks a gene of the negative (``down``) part and gets weight ``-1``;
        a trailing ``+`` is stripped. Duplicated genes keep their first occurrence.
        """
        out_genes: list[str] = []
        out_w: list[float] = []
        seen: set[str] = set()
        for g in genes:
            g = str(g).strip()
            w = 1.0
            if len(g) > 1 and g.endswith("-"):
                g, w = g[:-1], -1.0
            elif len(g) > 1 and g.endswith("+"):
                g = g[:-1]
            if not g or g in seen:
                continue
            seen.add(g)
            out_genes.append(g)
            out_w.append(w)
        weights = None if all(w == 1.0 for w in out_w) else tuple(out_w)
        if "weights" in kwargs:
            weights = kwargs.pop("weights")
        return cls(name=name, genes=tuple(out_genes), weights=weights, **kwargs)

    def to_species(self, species: str, *, use_aliases: bool = True,
                   warn_unmapped: bool = True) -> Signature:
        """Translate the signature to ``"human"`` or ``"mouse"`` gene symbols.

        Genes are mapped through the shipped human–mouse ortholog table
        (:func:`osteoimmune.signatures.ortholog_table`: MGI pairs first, else HCOP pairs
        backed by at least 3 databases, else Ensembl one-to-one pairs with confidence 1).
        A gene with several orthologs contributes all of them, each with the gene's
        weight; an ortholog reached from several genes keeps the first gene's weight.

        Parameters
        ----------
        species
            Target species, ``"human"`` or ``"mouse"``.
        use_aliases
            Resolve outdated symbols and aliases before mapping.
        warn_unmapped
            Emit an :class:`~osteoimmune._utils.OsteoimmuneWarning` naming unmapped genes.

        Returns
        -------
        Signature
            A new signature (same name, tags and provenance) whose
            ``metadata["conversion"]`` holds the report: ``from``, ``to``, ``n_input``,
            ``n_mapped``, ``unmapped`` (genes without ortholog), ``one_to_many``
            (``{gene: [orthologs]}``) and ``collapsed`` (genes whose ortholog was already
            taken by an earlier gene).

        Raises
        ------
        ValueError
            For an unknown species, or when no gene has an ortholog.
        """
        from ._orthologs import _check_species, map_orthologs

        target = _check_species(species)
        source = _check_species(self.species, f"Signature {self.name!r} species")
        if target == source:
            return self
        mp = map_orthologs(self.genes, source, target, use_aliases=use_aliases)
        genes: list[str] = []
        weights: list[float] = []
        seen: set[str] = set()
        unmapped: list[str] = []
        one_to_many: dict[str, list[str]] = {}
        collapsed: list[str] = []
        for g, w in zip(self.genes, self.signed_weights):
            hits = mp[g]
            if not hits:
                unmapped.append(g)
                continue
            if len(hits) > 1:
                one_to_many[g] = list(hits)
            new = [h for h in hits if h not in seen]
            if not new:
                collapsed.append(g)
            for h in new:
                seen.add(h)
                genes.append(h)
                weights.append(float(w))
        if not genes:
            raise ValueError(
                f"Signature {self.name!r}: none of its {len(self.genes)} {source} genes has a "
                f"{target} ortholog in the shipped table. Check that the signature's species "
                f"({source!r}) is right (Signature(..., species=...))."
            )
        if unmapped and warn_unmapped:
            from .._utils import warn

            shown = ", ".join(unmapped[:10]) + (" ..." if len(unmapped) > 10 else "")
            warn(f"Signature {self.name!r}: {len(unmapped)} of {len(self.genes)} {source} genes "
                 f"have no {target} ortholog and were left out ({shown}); see "
                 "signature.metadata['conversion'].")
        report = {"from": source, "to": target, "n_input": len(self.genes),
                  "n_mapped": len(self.genes) - len(unmapped), "unmapped": unmapped,
                  "one_to_many": one_to_many, "collapsed": collapsed}
        meta = {k: v for k, v in self.metadata.items() if k != "conversion"}
        meta["conversion"] = report
        keep_w = None if self.weights is None else tuple(weights)
        return replace(self, genes=tuple(genes), weights=keep_w, species=target,
                       metadata=meta)

    def to_dict(self) -> dict[str, Any]:
        """Plain-dict form (for YAML/JSON)."""
        d: dict[str, Any] = {
            "name": self.name,
            "title": self.title,
            "description": self.description,
            "species": self.species,
            "tags": list(self.tags),
            "genes": list(self.genes),
            "source": dict(self.source),
        }
        if self.weights is not None:
            d["weights"] = list(self.weights)
        if self.metadata:
            d["metadata"] = dict(self.metadata)
        return d


class SignatureLibrary(Mapping[str, Signature]):
    """An ordered, name-indexed collection of :class:`Signature` objects.

    Parameters
    ----------
    signatures
        The signatures; names must be unique.
    version
        Library version string (the built-in library's release).
    metadata
        Free metadata (e.g. changelog location).
    """

    def __init__(self, signatures: Iterable[Signature], version: str | None = None,
                 metadata: Mapping[str, Any] | None = None) -> None:
        self._sigs: dict[str, Signature] = {}
        for s in signatures:
            if not isinstance(s, Signature):
                raise TypeError(f"SignatureLibrary holds Signature objects, got {type(s).__name__}.")
            if s.name in self._sigs:
                raise ValueError(f"Duplicated signature name {s.name!r} in the library.")
            self._sigs[s.name] = s
        self.version = version
        self.metadata = dict(metadata or {})

    def __getitem__(self, name: str) -> Signature:
        try:
            return self._sigs[name]
        except KeyError:
            import difflib

            close = difflib.get_close_matches(str(name), list(self._sigs), n=3)
            hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
            raise KeyError(f"No signature named {name!r} in the library.{hint}") from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._sigs)

    def __len__(self) -> int:
        return len(self._sigs)

    def __repr__(self) -> str:
        v = f" v{self.version}" if self.version else ""
        return f"SignatureLibrary{v} with {len(self)} signatures"

    @property
    def names(self) -> list[str]:
        """Signature names in library order."""
        return list(self._sigs)

    def select(self, names: Iterable[str] | None = None, tags: Iterable[str] | str | None = None,
               species: str | None = None, match: str = "any") -> SignatureLibrary:
        """Return a sub-library.

        Parameters
        ----------
        names
            Keep only these names (error for unknown names).
        tags
            Keep signatures carrying any (``match="any"``) or all (``match="all"``) of these tags.
        species
            Keep signatures of this species.
        match
            ``"any"`` or ``"all"`` for ``tags``.
        """
        sigs = list(self._sigs.values())
        if names is not None:
            sigs = [self[n] for n in names]
        if tags is not None:
            tags = {tags} if isinstance(tags, str) else set(tags)
            if match == "all":
                sigs = [s for s in sigs if tags <= set(s.tags)]
            elif match == "any":
                sigs = [s for s in sigs if tags & set(s.tags)]
            else:
                raise ValueError("match must be 'any' or 'all'.")
        if species is not None:
            sigs = [s for s in sigs if s.species == species]
        return SignatureLibrary(sigs, version=self.version, metadata=self.metadata)

    def to_frame(self) -> pd.DataFrame:
        """Long table: one row per signature × gene (name, gene, weight, species, tags, source)."""
        rows = []
        for s in self._sigs.values():
            for g, w in zip(s.genes, s.signed_weights):
                rows.append({"signature": s.name, "gene": g, "weight": w, "species": s.species,
                             "tags": ";".join(s.tags),
                             "source": s.source.get("citation") or s.source.get("doi")
                             or s.source.get("database", "")})
        return pd.DataFrame(rows, columns=["signature", "gene", "weight", "species", "tags",
                                           "source"])

    def to_dict(self) -> dict[str, list[str]]:
        """``{name: genes}`` (weights dropped)."""
        return {n: list(s.genes) for n, s in self._sigs.items()}

    def to_species(self, species: str, **kwargs: Any) -> SignatureLibrary:
        """Translate every signature to ``species`` (see :meth:`Signature.to_species`).

        Parameters
        ----------
        species
            ``"human"`` or ``"mouse"``.
        **kwargs
            Passed to :meth:`Signature.to_species`.

        Returns
        -------
        SignatureLibrary
            A new library with the same version; each signature's
            ``metadata["conversion"]`` holds its mapping report.
        """
        return SignatureLibrary([s.to_species(species, **kwargs) for s in self._sigs.values()],
                                version=self.version, metadata=self.metadata)

    def to_gmt(self, path: str | os.PathLike) -> Path:
        """Write the library as GMT (name, description, genes). Weights are not kept by GMT;
        genes of the negative part get a trailing ``-`` as in UCell."""
        from ._io import write_gmt

        return write_gmt(self, path)


def as_signature_list(signatures: Any) -> list[Signature]:
    """Coerce the accepted signature inputs to a list of :class:`Signature`.

    Accepts a :class:`SignatureLibrary`, a :class:`Signature`, a sequence of signatures, a
    mapping ``{name: genes}`` (genes may carry UCell-style ``+``/``-`` suffixes, or be a
    mapping ``{gene: weight}``), or a path to a GMT file.
    """
    if isinstance(signatures, Signature):
        return [signatures]
    if isinstance(signatures, SignatureLibrary):
        return list(signatures.values())
    if isinstance(signatures, str | os.PathLike):
        p = Path(signatures)
        if not p.exists():
            hint = ""
            if isinstance(signatures, str) and p.suffix == "" and os.sep not in signatures:
                hint = (" To score a signature of the built-in library by name, pass "
                        f"oi.signatures.load().select(names=[{signatures!r}]).")
            raise FileNotFoundError(
                f"Signature file {str(p)!r} does not exist; pass a GMT path, a dict of gene "
                f"lists, a Signature or a SignatureLibrary.{hint}"
            )
        from ._io import read_gmt

        return list(read_gmt(p).values())
    if isinstance(signatures, Mapping):
        out = []
        for name, genes in signatures.items():
            if isinstance(genes, Signature):
                out.append(genes)
            elif isinstance(genes, Mapping):
                out.append(Signature(name=str(name), genes=tuple(genes),
                                     weights=tuple(float(v) for v in genes.values())))
            elif isinstance(genes, str):
                raise TypeError(
                    f"Signature {name!r}: expected a list of genes, got the string {genes!r}; "
                    "wrap a single gene in a list."
                )
            else:
                out.append(Signature.from_genes(str(name), genes))
        if not out:
            raise ValueError("No signatures given (the mapping is empty).")
        return out
    if isinstance(signatures, Iterable):
        items = list(signatures)
        if items and all(isinstance(s, Signature) for s in items):
            return items
        if items and all(isinstance(s, str) for s in items):
            raise TypeError(
                f"signatures is a bare list of {len(items)} gene names; name the gene set: "
                "pass a dict {name: [genes]}, e.g. {'my_signature': [...]}.")
    raise TypeError(
        "signatures must be a SignatureLibrary, a Signature, a list of Signatures, a dict "
        f"{{name: [genes]}} or a path to a GMT file; got {type(signatures).__name__}."
    )
