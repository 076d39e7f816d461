"""``osteoimmune signatures``: list, show and export the built-in library."""

from __future__ import annotations

import click


def _library(tags: tuple[str, ...] = ()):
    from ..signatures import load

    lib = load()
    return lib.select(tags=list(tags)) if tags else lib


@click.group()
def signatures() -> None:
    """Browse and export the built-in signature library."""


@signatures.command("list")
@click.option("--tag", "tags", multiple=True, help="Keep signatures with this tag (repeatable).")
def list_(tags: tuple[str, ...]) -> None:
    """List the signatures: name, number of genes, tags and source (tab-separated)."""
    lib = _library(tags)
    click.echo(f"# osteoimmune signature library v{lib.version}: {len(lib)} signatures")
    click.echo("name\tn_genes\tsigned\ttags\tsource")
    for s in lib.values():
        src = s.source.get("record") or s.source.get("doi") or s.source.get("kind", "")
        click.echo(f"{s.name}\t{len(s)}\t{'yes' if s.is_signed else 'no'}\t"
                   f"{','.join(s.tags)}\t{src}")


@signatures.command("show")
@click.argument("name")
@click.option("--species", type=click.Choice(["human", "mouse"]), default="human",
              show_default=True, help="Gene symbols of this species.")
def show(name: str, species: str) -> None:
    """Show one signature: description, provenance and genes (with weights)."""
    lib = _library()
    try:
        s = lib[name]
    except KeyError as e:
        raise click.UsageError(str(e.args[0]) + " Run `osteoimmune signatures list`.") from None
    if species != s.species:
        s = s.to_species(species, warn_unmapped=False)
    click.echo(f"{s.name}: {s.title}")
    click.echo(f"tags: {', '.join(s.tags)}")
    click.echo(f"species: {s.species}; genes: {len(s)}"
               + (f" ({len(s.up_genes)} up, {len(s.down_genes)} down)" if s.is_signed else ""))
    click.echo(f"description: {s.description}")
    click.echo("source:")
    for k, v in s.source.items():
        click.echo(f"  {k}: {v}")
    conv = s.metadata.get("conversion")
    if conv and conv["unmapped"]:
        click.echo(f"unmapped to {species}: {', '.join(conv['unmapped'])}")
    click.echo("gene\tweight")
    for g, w in zip(s.genes, s.signed_weights):
        click.echo(f"{g}\t{w:g}")


@signatures.command("export")
@click.option("--format", "fmt", type=click.Choice(["gmt", "tsv"]), default="gmt",
              show_default=True, help="GMT (genes of the down part get a trailing '-') or a "
              "long TSV table (signature, gene, weight, ...).")
@click.option("--out", "out", type=click.Path(dir_okay=False), default=None,
              help="Output file (default: standard output).")
@click.option("--tag", "tags", multiple=True, help="Export only signatures with this tag.")
@click.option("--species", type=click.Choice(["human", "mouse"]), default="human",
              show_default=True)
def export(fmt: str, out: str | None, tags: tuple[str, ...], species: str) -> None:
    """Export the library (or a tagged part) as GMT or TSV."""
    import os
    import tempfile
    import warnings

    lib = _library(tags)
    if len(lib) == 0:
        raise click.UsageError(f"No signature has the tag(s) {', '.join(tags)}.")
    if species != "human":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            lib = lib.to_species(species)
    if fmt == "gmt":
        if out:
            lib.to_gmt(out)
        else:
            fd, tmp = tempfile.mkstemp(suffix=".gmt")
            os.close(fd)
            try:
                lib.to_gmt(tmp)
                with open(tmp, encoding="utf-8") as fh:
                    click.echo(fh.read(), nl=False)
            finally:
                os.unlink(tmp)
    else:
        text = lib.to_frame().to_csv(sep="\t", index=False)
        if out:
            with open(out, "w", encoding="utf-8") as fh:
                fh.write(text)
        else:
            click.echo(text, nl=False)
    if out:
        click.echo(f"wrote {len(lib)} signatures to {out}", err=True)
