"""``osteoimmune datasets``: list, describe and fetch registered data sets."""

from __future__ import annotations

import click


@click.group()
def datasets() -> None:
    """Registered public data sets."""
