"""``osteoimmune signatures``: list, show and export the built-in library."""

from __future__ import annotations

import click


@click.group()
def signatures() -> None:
    """Browse and export the built-in signature library."""
