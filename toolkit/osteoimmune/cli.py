"""Command line: ``osteoimmune`` (signatures, datasets, run, demo)."""

from __future__ import annotations

import click

from ._version import __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="osteoimmune")
def main() -> None:
    """osteoimmune: signature scoring and bone-phenotype association for osteoimmunology.

    Exit codes: 0 success, 1 analysis error (bad data, failed step), 2 usage or
    configuration error.
    """


def _register() -> None:
    from ._cli.datasets import datasets
    from ._cli.pipeline import demo, run
    from ._cli.signatures import signatures

    main.add_command(signatures)
    main.add_command(datasets)
    main.add_command(run)
    main.add_command(demo)


_register()

if __name__ == "__main__":  # pragma: no cover
    main()
