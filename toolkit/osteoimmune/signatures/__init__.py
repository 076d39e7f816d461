"""Gene signatures: the :class:`Signature` type, the built-in library, I/O and gene matching."""

from ._io import read_gmt, write_gmt
from ._library import load, read_table, read_yaml, write_yaml
from ._matching import MatchedSignature, match_signatures
from ._orthologs import map_orthologs, ortholog_table
from ._signature import Signature, SignatureLibrary, as_signature_list

__all__ = [
    "MatchedSignature",
    "Signature",
    "SignatureLibrary",
    "as_signature_list",
    "load",
    "map_orthologs",
    "match_signatures",
    "ortholog_table",
    "read_gmt",
    "read_table",
    "read_yaml",
    "write_gmt",
    "write_yaml",
]
