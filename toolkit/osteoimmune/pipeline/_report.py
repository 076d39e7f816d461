"""Self-contained HTML5 report: tables inline, figures embedded as base64 PNG."""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path
from typing import Any

import pandas as pd

__all__ = ["write_report"]

_CSS = """
body{font-family:-apple-system,"Segoe UI",Helvetica,Arial,sans-serif;margin:2em auto;
max-width:1100px;padding:0 1em;color:#222;line-height:1.45}
h1{font-size:1.6em;margin-bottom:.2em}h2{border-bottom:1px solid #ccc;padding-bottom:.2em;
margin-top:1.8em}
table{border-collapse:collapse;font-size:.85em;margin:.6em 0}
th,td{border:1px solid #ddd;padding:.25em .6em;text-align:right}
th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}
.banner{background:#FFF4D6;border:2px solid #E69F00;padding:.8em 1em;margin:1em 0;
font-weight:600}
.sig{color:#D55E00;font-weight:600}
figure{margin:1.2em 0}figure img{max-width:100%;height:auto;border:1px solid #eee}
figcaption{font-size:.85em;color:#555}
.warn li{color:#8a4b00}code{background:#f5f5f5;padding:0 .2em}
.meta td{text-align:left}
"""


def _e(x: Any) -> str:
    return html.escape(str(x), quote=True)


def _table(df: pd.DataFrame, float_format: str = "{:.4g}", max_rows: int | None = None) -> str:
    if max_rows is not None and len(df) > max_rows:
        df = df.head(max_rows)
    formatters = {c: (lambda v, f=float_format: "" if pd.isna(v) else f.format(v))
                  for c in df.columns if pd.api.types.is_float_dtype(df[c])}
    return df.to_html(index=False, escape=True, border=0, formatters=formatters,
                      na_rep="", classes="data")


def _kv(rows: list[tuple[str, Any]]) -> str:
    body = "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in rows)
    return f'<table class="meta">{body}</table>'


def _img(path: Path, caption: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return (f'<figure><img alt="{_e(caption)}" src="data:image/png;base64,{data}">'
            f"<figcaption>{_e(caption)}</figcaption></figure>")


def write_report(path: Path, ctx: dict[str, Any]) -> None:
    """Write the run report as one standalone HTML5 file.

    Parameters
    ----------
    path
        Destination ``report.html``.
    ctx
        What the pipeline gathered: ``title``, ``simulated``, ``summary`` (list of
        key/value pairs), ``truth`` (DataFrame or None), ``coverage`` (DataFrame),
        ``associations`` (DataFrame), ``alpha``, ``figures`` (list of ``(png path,
        caption)``), ``warnings`` (list of str), ``provenance`` (dict).
    """
    parts: list[str] = []
    title = ctx["title"]
    parts.append(f"<h1>{_e(title)}</h1>")
    parts.append(f"<p>osteoimmune {_e(ctx['provenance'].get('osteoimmune_version', ''))} · "
                 f"run of {_e(ctx['provenance'].get('finished', ''))}</p>")
    if ctx.get("simulated"):
        parts.append('<div class="banner" id="simulated-banner">SIMULATED DATA. Every cell, '
                     "donor and phenotype in this report comes from "
                     "<code>oi.datasets.simulate_cohort</code>, with a planted association. "
                     "These results demonstrate the method; they are not biological findings."
                     "</div>")
    parts.append("<h2>Run summary</h2>")
    parts.append(_kv(ctx["summary"]))
    truth = ctx.get("truth")
    if truth is not None and len(truth):
        parts.append("<h2>Planted effect and its recovery</h2>")
        parts.append("<p>What the simulation planted (<code>.uns['truth']</code>) next to what "
                     "the pipeline estimated for the same signature × cell type. The planted effect "
                     "is a log-fold change of gene means per SD of the phenotype; the estimates "
                     "are in score units per unit of the phenotype (<code>effect</code>) and "
                     "score SDs per phenotype SD (<code>effect_std</code>): compare direction "
                     "and significance, not magnitude.</p>")
        parts.append(_table(truth))
    assoc: pd.DataFrame = ctx["associations"]
    alpha = ctx["alpha"]
    parts.append("<h2>Associations</h2>")
    n_sig = int((assoc["qvalue"] < alpha).sum()) if "qvalue" in assoc else 0
    parts.append(f"<p>{len(assoc)} tests (sample level: one value per sample and cell type); "
                 f'<span class="sig">{n_sig} with q &lt; {alpha:g}</span> '
                 "(Benjamini–Hochberg within each scoring method × model). The 40 smallest "
                 "p-values are shown; all rows are in <code>associations.csv</code>.</p>")
    show = assoc.sort_values("pvalue", kind="stable")
    cols = [c for c in ("score_method", "signature", "group", "phenotype", "model", "n",
                        "effect", "ci_low", "ci_high", "effect_std", "pvalue", "qvalue")
            if c in show.columns]
    parts.append(_table(show[cols], max_rows=40))
    parts.append("<h2>Figures</h2>")
    for png, caption in ctx["figures"]:
        parts.append(_img(png, caption))
    parts.append("<h2>Signature gene coverage</h2>")
    parts.append(_table(ctx["coverage"]))
    warns = ctx.get("warnings") or []
    parts.append("<h2>Warnings</h2>")
    if warns:
        parts.append('<ul class="warn">' + "".join(f"<li>{_e(w)}</li>" for w in warns)
                     + "</ul>")
    else:
        parts.append("<p>None.</p>")
    prov = ctx["provenance"]
    parts.append("<h2>Provenance</h2>")
    inputs = pd.DataFrame(prov.get("inputs", []))
    if len(inputs):
        parts.append("<h3>Inputs (sha256)</h3>" + _table(inputs))
    parts.append("<h3>Timings (seconds)</h3>"
                 + _kv([(k, f"{v:.2f}") for k, v in prov.get("timings", {}).items()]))
    parts.append("<h3>Package versions</h3>" + _kv(list(prov.get("packages", {}).items())))
    parts.append("<h3>Configuration</h3><pre>"
                 + _e(json.dumps(prov.get("config", {}), indent=2, default=str)) + "</pre>")
    doc = ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
           "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
           f"<title>{_e(title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n"
           + "\n".join(parts) + "\n</body>\n</html>\n")
    path.write_text(doc, encoding="utf-8")
