"""The end-to-end run: data → myeloid cells → scores → per-sample values → associations →
figures → report, written atomically with full provenance."""

from __future__ import annotations

import contextlib
import copy
import datetime as _dt
import json
import os
import shutil
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .._version import __version__
from ..stats import bh_by_family
from ._config import ConfigError, load_config, validate_config
from ._provenance import adata_sha256, file_sha256, package_versions
from ._report import write_report

__all__ = ["OutputExistsError", "RunResult", "run_pipeline"]

OUTPUT_FILES = ("report.html", "scores.parquet", "per_sample.csv", "associations.csv",
                "coverage.csv", "signatures.gmt", "provenance.json")


class OutputExistsError(FileExistsError):
    """The output folder exists and ``force`` was not given."""


@dataclass
class RunResult:
    """What a pipeline run produced.

    Attributes
    ----------
    out
        The output folder.
    associations
        The association table written to ``associations.csv``.
    per_sample
        The per-sample table written to ``per_sample.csv``.
    figures
        Paths of the figure files, relative to ``out``.
    provenance
        The content of ``provenance.json``.
    """

    out: Path
    associations: pd.DataFrame
    per_sample: pd.DataFrame
    figures: list[str] = field(default_factory=list)
    provenance: dict[str, Any] = field(default_factory=dict)


class _Steps:
    """Timings and a progress bar over the pipeline steps."""

    def __init__(self, names: list[str], progress: bool, log: Callable[[str], None]):
        from tqdm.auto import tqdm

        self.timings: dict[str, float] = {}
        self.log = log
        self.bar = tqdm(total=len(names), desc="osteoimmune run", unit="step",
                        disable=not progress, file=sys.stderr, leave=False)

    @contextlib.contextmanager
    def step(self, name: str) -> Iterator[None]:
        self.bar.set_postfix_str(name)
        self.log(f"[osteoimmune] {name} ...")
        t0 = time.perf_counter()
        yield
        self.timings[name] = round(time.perf_counter() - t0, 3)
        self.bar.update(1)

    def close(self) -> None:
        self.bar.close()


# ---------------------------------------------------------------------------- inputs
def _resolve_signatures(cfg: dict):
    """The SignatureLibrary the config asks for (library names/tags and/or a GMT file)."""
    import osteoimmune as oi
    from osteoimmune.signatures import SignatureLibrary

    spec = cfg["signatures"]
    sigs: list = []
    if spec["names"] or spec["tags"]:
        lib = oi.signatures.load()
        for n in spec["names"]:
            if n not in lib.names:
                import difflib

                close = difflib.get_close_matches(n, lib.names, n=1)
                hint = f" Did you mean {close[0]!r}?" if close else ""
                raise ConfigError(f"config key 'signatures.names': {n!r} is not in the built-in "
                                  f"library.{hint} See `osteoimmune signatures list`.")
            sigs.append(lib[n])
        if spec["tags"]:
            known = {t for n in lib.names for t in lib[n].tags}
            unknown = [t for t in spec["tags"] if t not in known]
            if unknown:
                raise ConfigError(f"config key 'signatures.tags': unknown tag(s) {unknown}; "
                                  f"library tags: {sorted(known)}.")
            sigs.extend(lib.select(tags=spec["tags"]).values())
    if spec["gmt"]:
        sigs.extend(oi.signatures.read_gmt(spec["gmt"]).values())
    seen: dict[str, Any] = {}
    for s in sigs:
        if s.name in seen and seen[s.name].genes != s.genes:
            raise ConfigError(f"config key 'signatures': two different signatures are named "
                              f"{s.name!r} (library and GMT); rename one in the GMT file.")
        seen.setdefault(s.name, s)
    return SignatureLibrary(list(seen.values()))


def _load_data(cfg: dict, progress: bool):
    """Load the data set; return (adata, input record, simulated flag)."""
    import anndata as ad

    import osteoimmune as oi

    ds = cfg["dataset"]
    src = ds["source"]
    if src == "simulated":
        try:
            adata = oi.datasets.simulate_cohort(**ds["simulate"],
                                                random_state=cfg["random_state"])
        except TypeError as exc:
            raise ConfigError(f"config key 'dataset.simulate': {exc}; see "
                              "help(oi.datasets.simulate_cohort) for its arguments.") from None
        adata = adata.copy()  # simulate_cohort caches its result: never touch the shared copy
        record = {"role": "dataset", "name": "simulated_cohort", "path": "(generated)",
                  "sha256": adata_sha256(adata), "sha256_of": "in-memory content (X, obs)"}
        return adata, [record], True
    if Path(src).suffix == ".h5ad" or Path(src).is_file():
        path = Path(src)
        adata = ad.read_h5ad(path)
        return adata, [{"role": "dataset", "name": path.name, "path": str(path),
                        "sha256": file_sha256(path), "sha256_of": "file"}], \
            bool(adata.uns.get("simulated", False))
    try:
        adata = oi.datasets.load(src, progressbar=progress)
    except KeyError as exc:
        raise ConfigError(f"config key 'dataset.source': {exc.args[0] if exc.args else exc}") \
            from None
    files = (adata.uns.get("dataset") or {}).get("files") or {}
    records = [{"role": f"dataset:{role}", "name": src, "path": str(f.get("path")),
                "sha256": f.get("sha256"), "sha256_of": "file (verified on load)"}
               for role, f in files.items() if f.get("present", True)]
    return adata, records, bool(adata.uns.get("simulated", False))


def _pick_key(obs: pd.DataFrame, given: str | None, candidates: tuple[str, ...],
              key: str) -> str:
    if given is not None:
        if given not in obs.columns:
            raise ConfigError(f"config key {key!r}: {given!r} is not a column of the data's obs "
                              f"(columns: {list(obs.columns)}).")
        return given
    for c in candidates:
        if c in obs.columns and obs[c].notna().any():
            return c
    raise ConfigError(f"config key {key!r} is needed: the data have none of the default columns "
                      f"{list(candidates)}; name the column (obs columns: {list(obs.columns)}).")


def _phenotype_table(cfg: dict, adata, sample_key: str) -> tuple[pd.DataFrame, list[dict]]:
    import osteoimmune as oi

    path = cfg["dataset"]["phenotypes"]
    if path is not None:
        sep = "\t" if path.endswith((".tsv", ".tab", ".txt")) else ","
        table = pd.read_csv(path, sep=sep, index_col=0)
        table.index = table.index.astype(str)
        rec = [{"role": "phenotypes", "name": Path(path).name, "path": path,
                "sha256": file_sha256(path), "sha256_of": "file"}]
        return table, rec
    stored = adata.uns.get("donor_table")
    samples = set(adata.obs[sample_key].astype(str))
    if isinstance(stored, pd.DataFrame) and set(stored.index.astype(str)) == samples:
        table = oi.datasets.donor_table(adata, donor_key=sample_key)
    else:  # the sample-level columns of obs (constant within each sample)
        nunique = adata.obs.groupby(sample_key, observed=True).nunique(dropna=False)
        cols = [c for c in nunique.columns if (nunique[c] <= 1).all()]
        table = oi.datasets.donor_table(adata, donor_key=sample_key, columns=cols)
    table.index = table.index.astype(str)
    return table, []


def _check_phenotypes(cfg: dict, table: pd.DataFrame) -> None:
    asc = cfg["association"]
    for key, cols in (("association.phenotypes", asc["phenotypes"]),
                      ("association.covariates", asc["covariates"])):
        missing = [c for c in cols if c not in table.columns]
        if missing:
            raise ConfigError(f"config key {key!r}: {missing} not found among the sample-level "
                              f"columns {list(table.columns)} (columns constant within each "
                              "sample, or dataset.phenotypes).")


# ---------------------------------------------------------------------------- figures
def _save_all(fig_or_ax, stem: Path, formats: list[str]) -> list[Path]:
    import matplotlib.pyplot as plt

    from ..pl import save_figure

    fig = fig_or_ax if hasattr(fig_or_ax, "savefig") else fig_or_ax.figure
    out = []
    for fmt in formats:
        p = stem.with_suffix(f".{fmt}")
        save_figure(fig, p)
        out.append(p)
    plt.close(fig)
    return out


def _figures(tmp: Path, cfg: dict, myeloid, scores: dict, per_sample: pd.DataFrame,
             phenos: pd.DataFrame, results: pd.DataFrame, coverage: pd.DataFrame,
             groupby: str, truth: dict | None) -> list[tuple[Path, str]]:
    """Draw every figure; return (png path, caption) pairs for the report."""
    import osteoimmune as oi

    fdir = tmp / "figures"
    fdir.mkdir()
    formats = cfg["figures"]["formats"]
    alpha = cfg["association"]["alpha"]
    made: list[tuple[Path, str]] = []

    def keep(obj, name: str, caption: str) -> None:
        paths = _save_all(obj, fdir / name, formats)
        made.append((paths[0], caption))

    keep(oi.pl.signature_coverage(coverage), "signature_coverage",
         "Signature genes found in the data (blue) and missing (grey).")
    emb = cfg["figures"]["embedding"]
    basis = None
    if emb in ("auto", "umap") and "X_umap" in myeloid.obsm:
        basis = "umap"
    elif emb in ("auto", "pca"):
        if "X_pca" not in myeloid.obsm:
            import scanpy as sc

            n_comps = int(min(20, myeloid.n_obs - 1, myeloid.n_vars - 1))
            sc.pp.pca(myeloid, n_comps=n_comps, random_state=cfg["random_state"])
        basis = "pca"
    elif emb == "umap":
        raise ConfigError("config key 'figures.embedding' is 'umap' but the data have no "
                          "obsm['X_umap']; use 'pca', 'auto' or 'none'.")
    hits = results.sort_values("pvalue", kind="stable")
    for method, sc_df in scores.items():
        top_sigs = list(dict.fromkeys(hits.loc[hits["score_method"] == method, "signature"]))
        show = top_sigs[:4] or [c for c in sc_df.columns if not str(c).endswith("_pval")][:4]
        if basis is not None:
            keep(oi.pl.scores_embedding(myeloid, sc_df, show, basis=basis, ncols=2),
                 f"scores_embedding_{method}",
                 f"{method} scores of the strongest signatures on the {basis.upper()} of the "
                 "myeloid cells.")
        keep(oi.pl.scores_by_group(myeloid, sc_df, groupby, show,
                                   hue=cfg["dataset"]["condition_key"], ncols=2),
             f"scores_by_group_{method}",
             f"{method} scores per {groupby} (cells; for display only: tests are per sample).")
        for model in cfg["association"]["models"]:
            for ph in cfg["association"]["phenotypes"]:
                sub = results[(results["score_method"] == method) & (results["model"] == model)
                              & (results["phenotype"] == ph)].dropna(subset=["effect"])
                if sub.empty:
                    continue
                tag = f"{method}_{model}_{ph}"
                top = sub.sort_values("pvalue", kind="stable").head(30)
                keep(oi.pl.forest(top, alpha=alpha), f"forest_{tag}",
                     f"Effects (95% CI) on {ph}, {model}, {method} scores: the {len(top)} "
                     f"smallest p-values of {len(sub)} tests; q < {alpha:g} in vermillion.")
                keep(oi.pl.association_heatmap(sub, alpha=alpha), f"association_heatmap_{tag}",
                     f"Effect on {ph} per signature × {groupby} ({model}, {method}); "
                     "stars: q-values.")
    # scatter plots: the planted pair (simulated data) and the strongest hits
    pairs: list[tuple[str, str, str, str]] = []
    first_method = next(iter(scores))
    if truth is not None:
        pairs.append((first_method, str(truth.get("signature")), str(truth.get("cell_type")),
                      str(truth.get("phenotype", cfg["association"]["phenotypes"][0]))))
    for _, r in hits.dropna(subset=["pvalue"]).iterrows():
        if len(pairs) >= cfg["figures"]["max_scatter"] + (truth is not None):
            break
        cand = (r["score_method"], r["signature"], r["group"], r["phenotype"])
        if cand not in pairs:
            pairs.append(cand)
    color = cfg["association"]["covariates"][0] if cfg["association"]["covariates"] else None
    for i, (method, sig, grp, ph) in enumerate(pairs):
        ps = per_sample[(per_sample["score_method"] == method)]
        if not ((ps["signature"] == sig) & (ps["group"] == grp)).any():
            continue
        res = results[(results["score_method"] == method)
                      & (results["model"] == cfg["association"]["models"][0])]
        ax = oi.pl.association_scatter(ps, phenos, sig, ph, group=grp, color=color, results=res)
        planted = truth is not None and i == 0
        keep(ax, f"association_scatter_{i + 1}",
             f"{'PLANTED pair: ' if planted else ''}per-sample mean {method} score of {sig} in "
             f"{grp} vs {ph} (one point per sample; line: least squares with 95% CI).")
    return made


# ---------------------------------------------------------------------------- run
def _out_dir_ready(out: Path, force: bool) -> None:
    if out.exists():
        if not out.is_dir():
            raise OutputExistsError(f"--out {str(out)!r} exists and is a file; choose a new "
                                    "folder name.")
        if not force and any(out.iterdir()):
            raise OutputExistsError(f"output folder {str(out)!r} already exists and is not "
                                    "empty; choose another --out or pass --force to replace it.")


def _publish(tmp: Path, out: Path) -> None:
    """Move the finished temporary folder to ``out`` (replacing it) with renames only."""
    trash = None
    if out.exists():
        trash = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
        trash.rmdir()
        os.replace(out, trash)
    try:
        os.replace(tmp, out)
    except BaseException:
        if trash is not None:
            os.replace(trash, out)
        raise
    if trash is not None:
        shutil.rmtree(trash, ignore_errors=True)


def _jsonable(x: Any) -> Any:
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, (np.generic,)):
        return x.item()
    if isinstance(x, np.ndarray):
        return x.tolist()
    if isinstance(x, pd.DataFrame):
        return x.to_dict(orient="list")
    if isinstance(x, (str, int, float, bool)) or x is None:
        return x
    return str(x)


def run_pipeline(
    config: dict | str | os.PathLike,
    out: str | os.PathLike,
    *,
    force: bool = False,
    quiet: bool = False,
    progress: bool | None = None,
    command: str | None = None,
) -> RunResult:
    """Run the whole analysis described by a configuration and write its outputs.

    Steps: load the data set (a registered name, an ``.h5ad`` path, or ``simulated``) →
    :func:`osteoimmune.pp.select_myeloid` → :func:`osteoimmune.tl.score` (each method, all
    signatures in one pass) → :func:`osteoimmune.tl.aggregate` (per sample × cell type) →
    :func:`osteoimmune.tl.associate` (each model; all phenotypes of a method × model form
    one Benjamini–Hochberg family) → figures (:mod:`osteoimmune.pl`) → ``report.html``.

    Outputs are written into a temporary sibling folder and moved to ``out`` by a rename
    once complete, so an interrupted run never leaves a partial folder at ``out``.

    Parameters
    ----------
    config
        Path to a YAML configuration or an already-parsed mapping (see
        :func:`osteoimmune.pipeline.validate_config` for the keys).
    out
        Output folder. It must not exist (or be empty) unless ``force=True``.
    force
        Replace an existing output folder (only once the new run has succeeded).
    quiet
        Print nothing (no step messages, no progress bars); warnings still go to the report.
    progress
        Show progress bars; default: the config's ``progress`` unless ``quiet``.
    command
        The command line, recorded in ``provenance.json``.

    Returns
    -------
    RunResult
        The output folder, the association and per-sample tables, figure paths and the
        provenance record.

    Raises
    ------
    ConfigError
        Invalid configuration (including keys that name columns absent from the data).
    OutputExistsError
        ``out`` exists, is not empty, and ``force`` is False.
    """
    import matplotlib

    import osteoimmune as oi

    t_start = time.perf_counter()
    started = _dt.datetime.now(_dt.timezone.utc)
    inputs: list[dict] = []
    if isinstance(config, (str, os.PathLike)):
        cfg_path = Path(config).resolve()
        cfg = load_config(cfg_path)
        inputs.append({"role": "config", "name": cfg_path.name, "path": str(cfg_path),
                       "sha256": file_sha256(cfg_path), "sha256_of": "file"})
    else:
        cfg = validate_config(copy.deepcopy(config))
    out = Path(out).resolve()
    _out_dir_ready(out, force)
    if progress is None:
        progress = bool(cfg["progress"]) and not quiet
    progress = progress and not quiet

    def log(msg: str) -> None:
        if not quiet:
            from tqdm.auto import tqdm

            tqdm.write(msg, file=sys.stderr)

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    steps = _Steps(["signatures", "load data", "select myeloid cells", "score", "aggregate",
                    "associate", "figures", "write outputs"], progress, log)
    rs = cfg["random_state"]
    caught: list[warnings.WarningMessage] = []
    try:
        with warnings.catch_warnings(record=True) as caught, \
                matplotlib.rc_context({"figure.max_open_warning": 0}):
            warnings.simplefilter("always")
            warnings.filterwarnings("ignore", category=DeprecationWarning)
            warnings.filterwarnings("ignore", category=PendingDeprecationWarning)
            warnings.filterwarnings("ignore", category=FutureWarning)
            if matplotlib.get_backend().lower() not in ("agg", "pdf", "svg", "cairo"):
                import matplotlib.pyplot as plt

                plt.switch_backend("Agg")
            with steps.step("signatures"):
                lib = _resolve_signatures(cfg)
                gmt = tmp / "signatures.gmt"
                lib.to_gmt(gmt)
                inputs.append({"role": "signatures", "name": f"{len(lib)} signatures",
                               "path": "signatures.gmt (in this folder)",
                               "sha256": file_sha256(gmt), "sha256_of": "file"})
                if cfg["signatures"]["gmt"]:
                    inputs.append({"role": "signatures_gmt",
                                   "name": Path(cfg["signatures"]["gmt"]).name,
                                   "path": cfg["signatures"]["gmt"],
                                   "sha256": file_sha256(cfg["signatures"]["gmt"]),
                                   "sha256_of": "file"})
            with steps.step("load data"):
                adata, recs, simulated = _load_data(cfg, progress)
                inputs.extend(recs)
                obs = adata.obs
                sample_key = _pick_key(obs, cfg["dataset"]["sample_key"],
                                       ("donor", "sample", "donor_id", "sample_id"),
                                       "dataset.sample_key")
                groupby = _pick_key(obs, cfg["dataset"]["cell_type_key"],
                                    ("cell_type", "celltype", "cell_type_label"),
                                    "dataset.cell_type_key")
                if cfg["dataset"]["condition_key"] is not None:
                    _pick_key(obs, cfg["dataset"]["condition_key"], (),
                              "dataset.condition_key")
                phenos, recs = _phenotype_table(cfg, adata, sample_key)
                inputs.extend(recs)
                _check_phenotypes(cfg, phenos)
                truth = dict(adata.uns["truth"]) if simulated and "truth" in adata.uns \
                    else None
            with steps.step("select myeloid cells"):
                if cfg["myeloid"]["select"]:
                    annotation = cfg["myeloid"]["annotation_key"] or groupby
                    myeloid = oi.pp.select_myeloid(
                        adata, annotation_key=annotation, layer=cfg["dataset"]["layer"],
                        use_raw=cfg["dataset"]["use_raw"], species=cfg["dataset"]["species"],
                        random_state=rs, key_added="myeloid_type")
                    # groups are the controlled myeloid vocabulary from here on
                    if truth is not None and annotation in myeloid.obs.columns:
                        hit = myeloid.obs.loc[myeloid.obs[annotation].astype(str)
                                              == str(truth.get("cell_type")), "myeloid_type"]
                        if len(hit):
                            truth["cell_type_label"] = str(truth.get("cell_type"))
                            truth["cell_type"] = str(hit.astype(str).mode().iloc[0])
                    groupby = "myeloid_type"
                else:
                    myeloid = adata
                if myeloid.is_view:
                    myeloid = myeloid.copy()
                if myeloid.n_obs == 0:
                    raise ValueError("no myeloid cell was selected; check dataset.cell_type_key "
                                     "or set myeloid.select: false.")
            scores: dict[str, pd.DataFrame] = {}
            coverage = None
            with steps.step("score"):
                ds = cfg["dataset"]
                for method in cfg["scoring"]["methods"]:
                    scores[method] = oi.tl.score(
                        myeloid, lib, method=method, layer=ds["layer"], use_raw=ds["use_raw"],
                        gene_symbols=ds["gene_symbols"], species=ds["species"],
                        random_state=rs, progress=progress,
                        min_coverage=cfg["scoring"]["min_coverage"],
                        **cfg["scoring"]["options"].get(method, {}))
                    if coverage is None:
                        coverage = oi.tl.coverage(scores[method])
            with steps.step("aggregate"):
                ag = cfg["aggregation"]
                frames = []
                for method, sc_df in scores.items():
                    ps = oi.tl.aggregate(myeloid, sc_df, sample_key=sample_key, groupby=groupby,
                                         stat=ag["stat"], threshold=ag["threshold"],
                                         min_cells=ag["min_cells"])
                    frames.append(ps.assign(score_method=method))
                per_sample = pd.concat(frames, ignore_index=True)
                if per_sample.empty:
                    raise ValueError(f"no sample × {groupby} reached aggregation.min_cells="
                                     f"{ag['min_cells']}; lower it or check the data.")
            with steps.step("associate"):
                asc = cfg["association"]
                frames = []
                for method in scores:
                    ps = per_sample[per_sample["score_method"] == method].drop(
                        columns="score_method")
                    for model in asc["models"]:
                        parts = [oi.tl.associate(
                            ps, phenos, ph, covariates=asc["covariates"], model=model,
                            reference=asc["reference"].get(ph), robust=asc["robust"],
                            n_perm=asc["n_perm"], random_state=rs, alpha=asc["alpha"])
                            for ph in asc["phenotypes"]]
                        res = pd.concat(parts, ignore_index=True)
                        # one BH family per scoring method x model, across phenotypes
                        res["qvalue"] = bh_by_family(res, family=None)
                        frames.append(res.assign(score_method=method))
                results = pd.concat(frames, ignore_index=True)
                lead = ["score_method", "signature", "group", "phenotype", "model"]
                results = results[lead + [c for c in results.columns if c not in lead]]
            with steps.step("figures"):
                figs = _figures(tmp, cfg, myeloid, scores, per_sample, phenos, results,
                                coverage, groupby, truth)
            with steps.step("write outputs"):
                wide = []
                for method, sc_df in scores.items():
                    wide.append(sc_df.rename(columns=lambda c, m=method: f"{m}:{c}"))
                table = pd.concat(wide, axis=1)
                table.insert(0, "group", myeloid.obs[groupby].astype(str).to_numpy())
                table.insert(0, "sample", myeloid.obs[sample_key].astype(str).to_numpy())
                table.index = table.index.astype(str)
                table.index.name = "cell"
                table.attrs = {}
                table.to_parquet(tmp / "scores.parquet")
                per_sample.to_csv(tmp / "per_sample.csv", index=False)
                results.to_csv(tmp / "associations.csv", index=False)
                cov = coverage.copy()
                if "missing" in cov.columns:
                    cov["missing"] = cov["missing"].map(
                        lambda v: ";".join(v) if isinstance(v, (list, tuple)) else v)
                cov.to_csv(tmp / "coverage.csv")
                truth_table = _truth_table(truth, results) if truth is not None else None
                warn_list = sorted({f"{w.category.__name__}: {w.message}" for w in caught})
        steps.close()
        finished = _dt.datetime.now(_dt.timezone.utc)
        steps.timings["total"] = round(time.perf_counter() - t_start, 3)
        outputs = {}
        for p in sorted(tmp.rglob("*")):
            if p.is_file():
                outputs[str(p.relative_to(tmp))] = file_sha256(p)
        provenance = {
            "osteoimmune_version": __version__,
            "command": command,
            "started": started.isoformat(timespec="seconds"),
            "finished": finished.isoformat(timespec="seconds"),
            "simulated_data": bool(simulated),
            "config": _jsonable(cfg),
            "inputs": inputs,
            "random_seeds": {"random_state": rs,
                             "simulate_cohort": rs if cfg["dataset"]["source"] == "simulated"
                             else None,
                             "scoring": rs, "association (permutations)": rs,
                             "pca (figures)": rs},
            "keys": {"sample_key": sample_key, "cell_type_key": groupby},
            "n_cells": int(adata.n_obs), "n_myeloid_cells": int(myeloid.n_obs),
            "n_samples": int(per_sample["sample"].nunique()),
            "truth": _jsonable(truth) if truth is not None else None,
            "timings_seconds": steps.timings,
            "packages": package_versions(),
            "warnings": warn_list,
            "outputs_sha256": outputs,
        }
        report_ctx = {
            "title": ("osteoimmune report: SIMULATED cohort" if simulated
                      else f"osteoimmune report: {inputs[-1]['name'] if inputs else ''}"),
            "simulated": simulated,
            "summary": [
                ("data set", cfg["dataset"]["source"]
                 + (" (SIMULATED: oi.datasets.simulate_cohort)" if simulated else "")),
                ("cells / myeloid cells", f"{adata.n_obs} / {myeloid.n_obs}"),
                ("samples", f"{per_sample['sample'].nunique()} (key: {sample_key})"),
                ("cell types", ", ".join(map(str, pd.unique(per_sample["group"])))),
                ("signatures", len(lib)),
                ("scoring methods", ", ".join(scores)),
                ("aggregation", f"{cfg['aggregation']['stat']} per sample × {groupby}, "
                                f"min {cfg['aggregation']['min_cells']} cells"),
                ("phenotypes", ", ".join(cfg["association"]["phenotypes"])),
                ("covariates", ", ".join(cfg["association"]["covariates"]) or "none"),
                ("models", ", ".join(cfg["association"]["models"])),
                ("random_state", rs),
                ("wall time (s)", f"{steps.timings['total']:.1f}"),
            ],
            "truth": truth_table,
            "coverage": coverage.reset_index().drop(columns=["missing"], errors="ignore"),
            "associations": results,
            "alpha": cfg["association"]["alpha"],
            "figures": figs,
            "warnings": warn_list,
            "provenance": {**provenance, "timings": steps.timings},
        }
        write_report(tmp / "report.html", report_ctx)
        provenance["outputs_sha256"]["report.html"] = file_sha256(tmp / "report.html")
        # provenance.json last: its presence marks a complete run
        (tmp / "provenance.json").write_text(json.dumps(_jsonable(provenance), indent=2),
                                             encoding="utf-8")
        _publish(tmp, out)
    except BaseException:
        steps.close()
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    for w in provenance["warnings"]:
        log(f"[osteoimmune] warning: {w}")
    log(f"[osteoimmune] done in {steps.timings['total']:.1f} s: {out}")
    return RunResult(out=out, associations=results, per_sample=per_sample,
                     figures=[k for k in provenance["outputs_sha256"] if k.startswith("figures/")],
                     provenance=provenance)


def _truth_table(truth: dict, results: pd.DataFrame) -> pd.DataFrame:
    """The planted signature × cell type next to its estimates (one row per method × model)."""
    sel = results[(results["signature"] == truth.get("signature"))
                  & (results["group"] == truth.get("cell_type"))
                  & (results["phenotype"] == truth.get("phenotype", "bmd"))]
    cols = [c for c in ("score_method", "model", "n", "effect", "ci_low", "ci_high", "effect_std",
                        "pvalue", "qvalue") if c in sel.columns]
    out = sel[cols].copy()
    out.insert(0, "planted_direction", truth.get("direction"))
    out.insert(0, "planted_effect (log-fold per SD)", truth.get("effect"))
    out.insert(0, "phenotype", truth.get("phenotype"))
    out.insert(0, "cell_type", truth.get("cell_type"))
    out.insert(0, "signature", truth.get("signature"))
    return out.reset_index(drop=True)
