"""Benchmark: osteoimmune scoring against scanpy's score_genes loop and decoupler's AUCell.

Builds a reproducible synthetic sparse data set (cells × genes, ``--nnz`` non-zeros per
cell, log1p of gamma-distributed values), writes it once to ``benchmarks/data/`` and times
each tool in its own subprocess (so peak RSS is per tool), on the same in-memory CSR matrix
and the same ``--n-sets`` signatures of ``--set-size`` genes. Prints a table and writes
``benchmarks/results/score.json`` with the machine, versions and figures.

    python benchmarks/score_bench.py                      # 100,000 × 20,000, 1,500 nnz/cell
    python benchmarks/score_bench.py --n-cells 20000      # quicker
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def make_data(path: Path, n_cells: int, n_genes: int, nnz: int, seed: int = 0) -> None:
    """Write a CSR float32 h5ad, built in row blocks (gene popularity follows a power law)."""
    import anndata as ad
    import pandas as pd
    import scipy.sparse as sp

    rng = np.random.default_rng(seed)
    p = 1.0 / np.arange(1, n_genes + 1) ** 0.6
    p = rng.permutation(p / p.sum())
    blocks = []
    for start in range(0, n_cells, 20_000):
        n = min(20_000, n_cells - start)
        k = rng.poisson(nnz, size=n).clip(1, n_genes)
        indptr = np.concatenate([[0], np.cumsum(k)])
        idx = np.empty(indptr[-1], dtype=np.int32)
        for i in range(n):  # distinct genes per cell
            idx[indptr[i]:indptr[i + 1]] = np.sort(
                rng.choice(n_genes, size=k[i], replace=False, p=p))
        data = np.log1p(rng.gamma(1.2, 1.5, size=indptr[-1])).astype(np.float32)
        blocks.append(sp.csr_matrix((data, idx, indptr), shape=(n, n_genes)))
    X = sp.vstack(blocks, format="csr")
    a = ad.AnnData(X, obs=pd.DataFrame(index=[f"c{i}" for i in range(n_cells)]),
                   var=pd.DataFrame(index=[f"G{j}" for j in range(n_genes)]))
    path.parent.mkdir(parents=True, exist_ok=True)
    a.write_h5ad(path)


def signatures(n_genes: int, n_sets: int, size: int, seed: int = 1) -> dict[str, list[str]]:
    rng = np.random.default_rng(seed)
    return {f"sig{i:02d}": [f"G{j}" for j in rng.choice(n_genes, size, replace=False)]
            for i in range(n_sets)}


def _status_mib(field: str) -> float:
    """A memory figure of this process from /proc/self/status, in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


_BASELINE = {"rss": 0.0}


def _reset_peak() -> None:
    """Reset the peak-RSS high-water mark (Linux), so that it measures only the call, and
    note the resident size just before it (data loaded, libraries imported and warmed)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:  # pragma: no cover - not Linux
        pass
    _BASELINE["rss"] = _status_mib("VmRSS")


def _worker(tool: str, path: str, n_sets: int, size: int, out: str) -> None:
    """Run one tool in this process; write seconds, peak RSS and the scores."""
    import warnings

    import anndata as ad
    import pandas as pd

    warnings.simplefilter("ignore")
    a = ad.read_h5ad(path)
    sets = signatures(a.n_vars, n_sets, size)
    if tool.startswith("osteoimmune"):
        import osteoimmune as oi

        method = tool.split(":")[1]
        # warm the numba kernels on a tiny slice (compilation is cached on disk)
        oi.tl.score(a[:50].copy(), sets, method=method, progress=False)
        _reset_peak()
        t = time.perf_counter()
        res = oi.tl.score(a, sets, method=method, progress=False)
        secs = time.perf_counter() - t
    elif tool == "scanpy:score_genes":
        import scanpy as sc

        _reset_peak()
        t = time.perf_counter()
        cols = {}
        for name, genes in sets.items():
            sc.tl.score_genes(a, genes, score_name=name, random_state=0)
            cols[name] = a.obs[name].to_numpy()
        secs = time.perf_counter() - t
        res = pd.DataFrame(cols, index=a.obs_names)
    elif tool == "decoupler:aucell":
        import decoupler as dc

        net = pd.DataFrame([(n, g) for n, gs in sets.items() for g in gs],
                           columns=["source", "target"])
        _reset_peak()
        t = time.perf_counter()
        dc.mt.aucell(a, net, tmin=1)
        secs = time.perf_counter() - t
        res = a.obsm["score_aucell"]
    else:
        raise ValueError(tool)
    peak = _status_mib("VmHWM")  # high-water mark since the reset: the call itself
    rss_loaded = _BASELINE["rss"]
    res.to_parquet(out + ".parquet")
    Path(out).write_text(json.dumps({"seconds": secs, "peak_rss_mib": peak,
                                     "rss_after_load_mib": rss_loaded,
                                     "peak_above_loaded_mib": peak - rss_loaded}))


def run_tool(tool: str, path: Path, n_sets: int, size: int, tmp: Path) -> dict:
    out = tmp / tool.replace(":", "_")
    env = dict(os.environ)
    if tool == "decoupler:aucell":
        env["NUMBA_NUM_THREADS"] = "1"  # decoupler's best setting here (ANCHORS.md)
    subprocess.run([sys.executable, __file__, "--worker", tool, str(path), str(n_sets),
                    str(size), str(out)], check=True, env=env)
    return json.loads(out.read_text())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n-cells", type=int, default=100_000)
    ap.add_argument("--n-genes", type=int, default=20_000)
    ap.add_argument("--nnz", type=int, default=1_500)
    ap.add_argument("--n-sets", type=int, default=20)
    ap.add_argument("--set-size", type=int, default=50)
    ap.add_argument("--tools", default="osteoimmune:module,osteoimmune:aucell,"
                    "osteoimmune:ucell,osteoimmune:zmean,scanpy:score_genes,decoupler:aucell")
    ap.add_argument("--out", default=str(HERE / "results" / "score.json"))
    ap.add_argument("--worker", nargs=5, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        tool, path, n_sets, size, out = args.worker
        _worker(tool, path, int(n_sets), int(size), out)
        return
    import pandas as pd

    path = HERE / "data" / f"score_{args.n_cells}x{args.n_genes}_{args.nnz}.h5ad"
    if not path.exists():
        t = time.perf_counter()
        make_data(path, args.n_cells, args.n_genes, args.nnz)
        print(f"wrote {path} in {time.perf_counter() - t:.1f} s")
    tmp = HERE / "data" / "tmp"
    tmp.mkdir(parents=True, exist_ok=True)
    rows = {}
    for tool in args.tools.split(","):
        r = run_tool(tool, path, args.n_sets, args.set_size, tmp)
        rows[tool] = r
        print(f"{tool:24s} {r['seconds']:8.2f} s   peak RSS {r['peak_rss_mib']:8.0f} MiB "
              f"(+{r['peak_above_loaded_mib']:.0f} MiB over the loaded data)")
    # agreement with the reference tools on this data
    agree = {}
    if "osteoimmune:module" in rows and "scanpy:score_genes" in rows:
        a = pd.read_parquet(tmp / "osteoimmune_module.parquet")
        b = pd.read_parquet(tmp / "scanpy_score_genes.parquet")
        agree["module_vs_scanpy_max_abs_diff"] = float((a - b[a.columns]).abs().max().max())
    if "osteoimmune:aucell" in rows and "decoupler:aucell" in rows:
        a = pd.read_parquet(tmp / "osteoimmune_aucell.parquet")
        b = pd.read_parquet(tmp / "decoupler_aucell.parquet")
        agree["aucell_vs_decoupler_max_abs_diff"] = float(
            (a.loc[b.index, b.columns] - b).abs().max().max())
    ratios = {}
    if "scanpy:score_genes" in rows and "osteoimmune:module" in rows:
        ratios["module_speedup_vs_scanpy"] = rows["scanpy:score_genes"]["seconds"] / \
            rows["osteoimmune:module"]["seconds"]
        ratios["module_peak_rss_ratio_vs_scanpy"] = rows["osteoimmune:module"]["peak_rss_mib"] \
            / rows["scanpy:score_genes"]["peak_rss_mib"]
        ratios["module_extra_rss_ratio_vs_scanpy"] = \
            rows["osteoimmune:module"]["peak_above_loaded_mib"] / \
            max(rows["scanpy:score_genes"]["peak_above_loaded_mib"], 1.0)
    if "decoupler:aucell" in rows and "osteoimmune:aucell" in rows:
        ratios["aucell_speedup_vs_decoupler"] = rows["decoupler:aucell"]["seconds"] / \
            rows["osteoimmune:aucell"]["seconds"]
        ratios["aucell_peak_rss_ratio_vs_decoupler"] = \
            rows["osteoimmune:aucell"]["peak_rss_mib"] / rows["decoupler:aucell"]["peak_rss_mib"]
        ratios["aucell_extra_rss_ratio_vs_decoupler"] = \
            rows["osteoimmune:aucell"]["peak_above_loaded_mib"] / \
            max(rows["decoupler:aucell"]["peak_above_loaded_mib"], 1.0)
    for k, v in {**ratios, **agree}.items():
        print(f"{k:40s} {v:.3g}")
    import importlib.metadata as md

    versions = {}
    for pkg in ("osteoimmune", "scanpy", "anndata", "decoupler", "numpy", "scipy", "numba"):
        try:
            versions[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            versions[pkg] = None
    result = {
        "benchmark": "score",
        "data": {"n_cells": args.n_cells, "n_genes": args.n_genes, "nnz_per_cell": args.nnz,
                 "n_sets": args.n_sets, "set_size": args.set_size, "format": "CSR float32"},
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                    "python": platform.python_version()},
        "versions": versions,
        "results": rows, "ratios": ratios, "agreement": agree,
        "load_average_at_end": list(os.getloadavg()),
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
