"""Where the package's shipped data live (wheel or source checkout)."""

from __future__ import annotations

from functools import cache
from pathlib import Path


@cache
def data_root() -> Path:
    """Return the folder holding the shipped data (signatures, reference tables, registry).

    In an installed wheel the files are under ``osteoimmune/_data``; in an editable
    install or a source checkout they are in the repository's ``data/`` folder.
    """
    here = Path(__file__).resolve().parent
    packaged = here / "_data"
    if packaged.is_dir():
        return packaged
    checkout = here.parent.parent / "data"
    if checkout.is_dir():
        return checkout
    raise FileNotFoundError(
        "osteoimmune's data folder was not found: expected osteoimmune/_data in an installed "
        f"wheel or data/ in a source checkout (looked in {packaged} and {checkout}). "
        "Reinstall the package with `pip install osteoimmune`."
    )
