"""Gene signatures: the :class:`Signature` type, libraries, GMT I/O and gene matching."""

from ._io import read_gmt, write_gmt
from ._matching import MatchedSignature, match_signatures
from ._signature import Signature, SignatureLibrary, as_signature_list

__all__ = [
    "MatchedSignature",
    "Signature",
    "SignatureLibrary",
    "as_signature_list",
    "match_signatures",
    "read_gmt",
    "write_gmt",
]
