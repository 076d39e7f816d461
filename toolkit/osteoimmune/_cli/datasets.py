"""``osteoimmune datasets``: list, describe and fetch registered data sets."""

from __future__ import annotations

import click
import yaml


@click.group()
def datasets() -> None:
    """Registered public data sets (checksum-verified, cached in $OSTEOIMMUNE_DATA_DIR)."""


@datasets.command("list")
@click.option("--cache-dir", type=click.Path(file_okay=False), default=None,
              help="Cache folder (default: $OSTEOIMMUNE_DATA_DIR or the platform cache).")
def list_cmd(cache_dir: str | None) -> None:
    """List the registered data sets, whether they are verified and cached."""
    from ..datasets import list_datasets

    table = list_datasets(cache_dir=cache_dir)
    cols = ["species", "data_type", "verified", "cached", "accession"]
    click.echo(table[cols].to_string())


@datasets.command("info")
@click.argument("name")
def info_cmd(name: str) -> None:
    """Show the registry entry of NAME (files, citation, licence, harmonisation) as YAML."""
    from ..datasets import info

    try:
        entry = info(name)
    except KeyError as err:
        raise click.UsageError(str(err.args[0])) from err
    click.echo(yaml.safe_dump(entry, sort_keys=False, allow_unicode=True, width=100))


@datasets.command("fetch")
@click.argument("name")
@click.option("--cache-dir", type=click.Path(file_okay=False), default=None,
              help="Cache folder (default: $OSTEOIMMUNE_DATA_DIR or the platform cache).")
@click.option("--no-download", is_flag=True, help="Only verify the files already cached.")
@click.option("--allow-unverified", is_flag=True,
              help="Also download files without a recorded sha256 (verified: false entries); "
                   "their checksum is printed.")
def fetch_cmd(name: str, cache_dir: str | None, no_download: bool,
              allow_unverified: bool) -> None:
    """Fetch (or verify) every file of NAME into the cache and print the paths."""
    from ..datasets import DatasetFileError, fetch_file, get_entry

    try:
        entry = get_entry(name)
    except KeyError as err:
        raise click.UsageError(str(err.args[0])) from err
    failed = False
    for spec in entry["files"]:
        try:
            path = fetch_file(entry, spec["role"], cache_dir, download=not no_download,
                              allow_unverified=allow_unverified)
        except DatasetFileError as err:
            failed = True
            click.echo(f"FAILED {spec['role']}: {err}", err=True)
            continue
        if path is None:
            click.echo(f"absent {spec['role']} (optional): {spec['path']}")
        else:
            state = "verified" if spec.get("sha256") else "UNVERIFIED (no checksum)"
            click.echo(f"{state} {spec['role']}: {path}")
    if failed:
        raise click.ClickException(f"some files of {name!r} could not be fetched or verified "
                                   "(see above).")
