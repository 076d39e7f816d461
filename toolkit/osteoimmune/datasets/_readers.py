"""Readers for the registered formats: h5ad, 10x h5/mtx, expression tables, sample sheets, GEO."""

from __future__ import annotations

import gzip
import io
import re
from collections.abc import Callable
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd

from .._utils import warn
from ..pp._bulk import collapse_ids

Fetch = Callable[[str], "Path | None"]


def _sep(path: Path, fmt: str | None = None) -> str:
    name = path.name.lower()
    if fmt == "tsv" or name.endswith((".tsv", ".tsv.gz", ".txt", ".txt.gz")):
        return "\t"
    return ","


def _open_text(path: Path):
    if path.name.endswith(".gz"):
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8", errors="replace")
    return open(path, encoding="utf-8", errors="replace")


def read_h5ad(entry: dict, fetch: Fetch) -> ad.AnnData:
    """Read the ``matrix`` file of an h5ad entry."""
    return ad.read_h5ad(fetch("matrix"))


def read_10x_h5(entry: dict, fetch: Fetch) -> ad.AnnData:
    """Read a 10x Genomics ``filtered_feature_bc_matrix.h5`` (``matrix`` role)."""
    import scanpy as sc

    adata = sc.read_10x_h5(fetch("matrix"))
    adata.var_names_make_unique()
    return adata


def read_10x_mtx(entry: dict, fetch: Fetch) -> ad.AnnData:
    """Read a 10x Market Exchange folder: roles ``matrix``, ``features`` and ``barcodes``.

    The three files must sit in one folder under 10x's names (``matrix.mtx[.gz]``,
    ``features.tsv[.gz]`` or ``genes.tsv``, ``barcodes.tsv[.gz]``).
    """
    import scanpy as sc

    paths = [fetch(role) for role in ("matrix", "features", "barcodes")]
    folders = {p.parent for p in paths}
    if len(folders) != 1:
        raise ValueError(f"data set {entry['name']!r}: the 10x matrix, features and barcodes "
                         "files must be in one folder; fix their paths in the registry.")
    opts = entry.get("options", {})
    adata = sc.read_10x_mtx(folders.pop(), var_names=opts.get("var_names", "gene_symbols"),
                            make_unique=True)
    return adata


def _samples_from_columns(columns: list[str], opts: dict, name: str) -> pd.DataFrame:
    pattern = opts.get("sample_pattern")
    obs = pd.DataFrame(index=pd.Index(columns, name=None))
    if not pattern:
        return obs
    rx = re.compile(pattern)
    rows = []
    for col in columns:
        m = rx.match(col)
        if m is None:
            raise ValueError(f"data set {name!r}: sample column {col!r} does not match the "
                             f"registry's sample_pattern {pattern!r}; the file is not the "
                             "registered version.")
        rows.append(m.groupdict())
    parsed = pd.DataFrame(rows, index=obs.index)
    for col in parsed.columns:
        num = pd.to_numeric(parsed[col], errors="coerce")
        if num.notna().all():
            parsed[col] = num.astype(np.int64)
    for code_col, labels in opts.get("code_labels", {}).items():
        parsed[code_col] = parsed[code_col].map(labels)
    parsed = parsed.rename(columns=opts.get("code_columns", {}))
    return parsed


def _merge_sheet(obs: pd.DataFrame, entry: dict, fetch: Fetch) -> pd.DataFrame:
    spec = entry.get("options", {}).get("sample_sheet")
    if not spec:
        return obs
    path = fetch(spec["role"])
    if path is None:
        return obs
    sheet = pd.read_csv(path, sep=_sep(path), dtype=str).set_index(spec["index"])
    missing = obs.index.difference(sheet.index)
    if len(missing):
        raise ValueError(f"data set {entry['name']!r}: the sample sheet {path} lacks samples "
                         f"{list(missing[:5])}.")
    sheet = sheet.loc[obs.index]
    for col in sheet.columns:
        if col in obs.columns:
            mine = obs[col].astype(str).to_numpy()
            theirs = sheet[col].astype(str).to_numpy()
            if not np.array_equal(mine, theirs):
                bad = obs.index[mine != theirs][:3]
                raise ValueError(f"data set {entry['name']!r}: column {col!r} of the sample "
                                 f"sheet {path} disagrees with the sample names for {list(bad)}.")
        else:
            obs[col] = sheet[col].to_numpy()
    return obs


def _id_mapping(entry: dict, fetch: Fetch, id_map: dict):
    if "table" in id_map:
        return id_map["table"]
    path = fetch(id_map["role"])
    if path is None:
        raise FileNotFoundError(f"data set {entry['name']!r}: id map {id_map['role']!r} missing.")
    if path.name.endswith((".annot", ".annot.gz")):
        table = read_geo_annot(path)
    else:
        table = pd.read_csv(path, sep=_sep(path), dtype=str,
                            usecols=[id_map["from"], id_map["to"]])
    return table[[id_map["from"], id_map["to"]]].drop_duplicates(subset=id_map["from"])


def read_expression_table(entry: dict, fetch: Fetch) -> ad.AnnData:
    """Read a features × samples CSV/TSV table, map its ids to symbols and attach sample info.

    Registry options: ``id_column``, ``drop_columns``, ``id_type``, ``id_map`` (a file
    ``role`` with ``from``/``to`` columns, or a shipped ``table``), ``collapse`` (rule of
    :func:`osteoimmune.pp.collapse_ids`), ``counts`` (raw counts: also kept in
    ``layers["counts"]``), ``sample_pattern`` (regex with named groups parsed from the sample
    columns), ``code_labels``/``code_columns`` and ``sample_sheet`` (optional file checked
    against the parsed columns and merged), ``condition_format``.
    """
    opts = entry.get("options", {})
    path = fetch("matrix")
    df = pd.read_csv(path, sep=_sep(path))
    id_col = str(opts.get("id_column"))
    if id_col not in df.columns:
        raise ValueError(f"data set {entry['name']!r}: id column {id_col!r} not in {path} "
                         f"(columns start {list(df.columns[:4])}).")
    ids = df[id_col].astype(str)
    drop = [id_col] + [c for c in opts.get("drop_columns", []) if c in df.columns]
    values = df.drop(columns=drop)
    non_numeric = [c for c in values.columns if not pd.api.types.is_numeric_dtype(values[c])]
    if non_numeric:
        raise ValueError(f"data set {entry['name']!r}: columns {non_numeric[:5]} of {path} are "
                         "not numeric; the file is not the registered version.")
    if ids.duplicated().any():
        raise ValueError(f"data set {entry['name']!r}: feature ids repeat in {path}.")
    samples = [str(c) for c in values.columns]
    obs = _samples_from_columns(samples, opts, entry["name"])
    obs = _merge_sheet(obs, entry, fetch)
    if opts.get("condition_format"):
        obs["condition"] = [opts["condition_format"].format(**row) for row in
                            obs.to_dict("records")]
    id_type = opts.get("id_type", "feature_id")
    var = pd.DataFrame({id_type: ids.to_numpy()}, index=pd.Index(ids.to_numpy()))
    X = values.to_numpy(dtype=np.float64).T.copy()
    adata = ad.AnnData(X=X, obs=obs, var=var)
    if opts.get("counts"):
        adata.layers["counts"] = adata.X.copy()
    if opts.get("id_map"):
        mapping = _id_mapping(entry, fetch, opts["id_map"])
        adata = collapse_ids(adata, mapping, rule=opts.get("collapse", "max_mean"))
    return adata


def read_sample_sheet(entry: dict, fetch: Fetch) -> ad.AnnData:
    """Read a sample sheet (no expression) as an AnnData with ``n_vars == 0``."""
    opts = entry.get("options", {})
    path = fetch("sample_sheet")
    sheet = pd.read_csv(path, sep=_sep(path), index_col=opts.get("index_col", 0))
    sheet.index = sheet.index.astype(str)
    sheet.index.name = None
    if sheet.index.duplicated().any():
        raise ValueError(f"data set {entry['name']!r}: sample ids repeat in {path}.")
    return ad.AnnData(X=np.zeros((len(sheet), 0)), obs=sheet)


def read_geo_annot(path: str | Path) -> pd.DataFrame:
    """Read a GEO platform annotation (``GPLxxx.annot[.gz]``) or a SOFT platform table.

    Returns the table between ``!platform_table_begin`` and ``!platform_table_end`` (or the
    whole file after its ``#``/``!``/``^`` header lines when those markers are absent).
    """
    lines: list[str] = []
    inside = None
    with _open_text(Path(path)) as fh:
        for line in fh:
            if line.startswith("!platform_table_begin"):
                inside = True
                continue
            if line.startswith("!platform_table_end"):
                break
            if inside or (inside is None and not line.startswith(("#", "!", "^"))):
                lines.append(line)
    if not lines:
        raise ValueError(f"{path} holds no platform table.")
    return pd.read_csv(io.StringIO("".join(lines)), sep="\t", dtype=str)


def read_geo_series_matrix(path: str | Path) -> ad.AnnData:
    """Read a GEO series matrix (``GSExxx_series_matrix.txt[.gz]``) as samples × probes.

    Sample annotations (``!Sample_*`` lines) become ``obs`` columns without the ``Sample_``
    prefix; ``characteristics_ch1`` lines of the form ``key: value`` become columns named
    ``key`` (spaces to underscores), other ones ``characteristics_ch1_<i>``. The expression
    table (between ``!series_matrix_table_begin`` and ``!series_matrix_table_end``) becomes
    ``X``; ``var_names`` are the ``ID_REF`` probe ids.
    """
    meta: dict[str, list[list[str]]] = {}
    table: list[str] = []
    in_table = False
    with _open_text(Path(path)) as fh:
        for line in fh:
            if line.startswith("!series_matrix_table_begin"):
                in_table = True
                continue
            if line.startswith("!series_matrix_table_end"):
                break
            if in_table:
                table.append(line)
            elif line.startswith("!Sample_"):
                parts = line.rstrip("\n").split("\t")
                key = parts[0][len("!Sample_"):]
                meta.setdefault(key, []).append([p.strip().strip('"') for p in parts[1:]])
    if not table:
        raise ValueError(f"{path} holds no series matrix table (no !series_matrix_table_begin).")
    df = pd.read_csv(io.StringIO("".join(table)), sep="\t", index_col=0, na_values=["null", ""])
    df.index = df.index.astype(str)
    accessions = meta.get("geo_accession", [list(df.columns)])[0]
    obs = pd.DataFrame(index=pd.Index(accessions))
    for key, rows in meta.items():
        for i, vals in enumerate(rows):
            if len(vals) != len(accessions):
                continue
            if key.startswith("characteristics"):
                pairs = [v.split(":", 1) for v in vals]
                keys = {p[0].strip() for p in pairs if len(p) == 2}
                if len(keys) == 1 and all(len(p) == 2 for p in pairs):
                    col = keys.pop().replace(" ", "_")
                    obs[col] = [p[1].strip() for p in pairs]
                    continue
            col = key if len(rows) == 1 else f"{key}_{i + 1}"
            obs[col] = vals
    if "geo_accession" in obs.columns:
        obs = obs.drop(columns="geo_accession")
    if list(df.columns) != list(obs.index):
        raise ValueError(f"{path}: the table's sample columns do not match !Sample_geo_accession.")
    var = pd.DataFrame({"probe_id": df.index.to_numpy()}, index=df.index)
    return ad.AnnData(X=df.to_numpy(dtype=np.float64).T.copy(), obs=obs, var=var)


def read_geo_series(entry: dict, fetch: Fetch) -> ad.AnnData:
    """Reader of ``geo_series_matrix`` entries: series matrix, probe -> symbol, pheno sheet join."""
    opts = entry.get("options", {})
    adata = read_geo_series_matrix(fetch("matrix"))
    if opts.get("id_map"):
        mapping = _id_mapping(entry, fetch, opts["id_map"])
        adata = collapse_ids(adata, mapping, rule=opts.get("collapse", "max_mean"))
    join = opts.get("join_sheet")
    if join:
        from ._load import load

        try:
            sheet = load(join["dataset"], cache_dir=fetch.cache_dir,  # type: ignore[attr-defined]
                         download=fetch.download).obs  # type: ignore[attr-defined]
        except Exception as err:  # the join is a convenience: say why it was skipped
            warn(f"data set {entry['name']!r}: sample sheet {join['dataset']!r} not joined "
                 f"({err}).")
        else:
            extra = sheet.drop(columns=[c for c in sheet.columns if c in adata.obs.columns])
            missing = adata.obs_names.difference(extra.index)
            if len(missing):
                warn(f"data set {entry['name']!r}: {len(missing)} samples are not in the sample "
                     f"sheet {join['dataset']!r}; their sheet columns are empty.")
            adata.obs = adata.obs.join(extra, how="left")
    return adata


READERS: dict[str, Callable[[dict, Fetch], ad.AnnData]] = {
    "h5ad": read_h5ad,
    "10x_h5": read_10x_h5,
    "10x_mtx": read_10x_mtx,
    "expression_table": read_expression_table,
    "sample_sheet": read_sample_sheet,
    "geo_series_matrix": read_geo_series,
}
