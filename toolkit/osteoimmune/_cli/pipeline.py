"""``osteoimmune run`` and ``osteoimmune demo``: the end-to-end pipeline."""

from __future__ import annotations

import click


@click.command()
@click.argument("config", type=click.Path(exists=True, dir_okay=False))
@click.option("--out", "out", required=True, type=click.Path(file_okay=False))
def run(config: str, out: str) -> None:
    """Run the pipeline described by CONFIG (YAML) into --out."""
    raise click.ClickException("the pipeline is not implemented yet (issue: pipeline)")


@click.command()
@click.option("--out", "out", default="osteoimmune_demo", type=click.Path(file_okay=False))
def demo(out: str) -> None:
    """Run the pipeline on the embedded default data set."""
    raise click.ClickException("the demo is not implemented yet (issue: pipeline)")
