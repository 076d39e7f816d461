"""Atlas-scale benchmark: out-of-core scoring of a large backed .h5ad (issue 8).

1. Writes a synthetic sparse ``.h5ad`` (default 1,000,000 cells × 20,000 genes, ~1,500
   stored values per cell, float32 log-normalised-looking values, CSR), generated and
   written in row blocks so it is never whole in memory, into ``benchmarks/data/``
   (git-ignored), then repacked so that ``X/data`` and ``X/indices`` each lie in one
   stretch of the file, as anndata writes a matrix held in memory (appended blocks
   interleave the two datasets' chunks). Genes have log-normally distributed expression
   frequencies, so some genes are in almost every cell and most are rare, as in real
   data.
2. Measures, each stage in its own subprocess (wall time; peak RSS of the process tree,
   sampled every 0.1 s, plus ``ru_maxrss`` of the driver and of its children):

   a. ``read``: one plain streaming read of X with h5py (``data`` and ``indices`` of
      ``chunk_size`` rows at a time): the I/O limit of any out-of-core method;
   a'. ``oi_read``: one pass of osteoimmune's own chunk reader over X, summing every
      stored value (a memory map of the page cache on Linux: no copy into buffers);
   b. ``backed_<method>``: ``oi.tl.score`` of 20 signatures of 50 genes on
      ``anndata.read_h5ad(path, backed="r")`` for ``module`` and ``aucell``;
   c. ``dask_<method>``: the same on a dask array from
      ``anndata.experimental.read_elem_lazy`` on a 2-worker ``distributed.LocalCluster``
      (one thread per worker; osteoimmune's kernels then run one thread per task), and
      ``dask_read``: one pass over that lazy array on the same cluster (every block read
      once), the I/O reference of the dask route (so the dask stages are also given as a
      ratio to it).

   Each stage's wall time is the time of its operation: the read, or the call of
   ``oi.tl.score`` until the result table is returned. It leaves out importing the
   libraries (``import_s``: about 2 s for anndata and osteoimmune, a fixed cost of the
   session), opening the AnnData (``open_s``: anndata reads the observation and gene
   names, about 1 s at 1M cells, whatever is done with the file next), starting and
   closing the dask cluster (``cluster_start_s``, ``cluster_close_s``), the workers'
   imports of the same libraries (``worker_import_s``; otherwise they happen on the
   first task), and this benchmark's check of the result (its first new 160 MB array
   took 1.3 s). Before 2026-12-02 that check, the cluster's start and close, the
   workers' imports and, for ``oi_read``, the opening fell inside the figures.
   ``stage_process_s`` is the whole stage after the imports.

   Every timed run is preceded by a plain read in the same regime (its *pair*;
   ``--no-paired-reads`` turns this off). Identical runs on a shared 2-core machine
   differ by up to 30 % and drift over minutes, so besides the ratio of the median
   figures (``ratio_to_read``) each stage gets the median of its runs' ratios to their
   paired reads (``ratio_to_paired_read``), in which slow drifts cancel.

3. Prints a table and writes ``benchmarks/results/scale.json`` (machine, versions,
   configuration, figures, ratios of scoring time to the plain read).

Usage::

    python benchmarks/scale_bench.py                 # 1M cells (~12 GB file, ~25-35 min)
    python benchmarks/scale_bench.py --n-cells 50000 # quick run

Two page-cache regimes are measured (``--cache both``, the default):

* ``warm``: the file is in the page cache (the plain read runs once untimed first), so
  reading is a memory copy and the stages measure compute;
* ``cold``: the file's pages are evicted (``posix_fadvise(POSIX_FADV_DONTNEED)``, no root
  needed) before every stage, so each stage starts by reading from disk, as the first
  analysis of a freshly downloaded atlas does. A two-pass method's second pass then
  reads what the first pass brought into the cache, when the file fits in memory.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
N_SIGNATURES, SIG_SIZE = 20, 50


# ---------------------------------------------------------------------------------------
# data
# ---------------------------------------------------------------------------------------
def _solve_rate(w: np.ndarray, target: float) -> float:
    """Poisson rate lam with sum_j (1 - exp(-lam w_j)) = target (expected distinct genes)."""
    lo, hi = 0.0, 1.0
    while np.sum(-np.expm1(-hi * w)) < target:
        hi *= 2
    for _ in range(100):
        mid = (lo + hi) / 2
        if np.sum(-np.expm1(-mid * w)) < target:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


def write_synthetic_h5ad(path: Path, n_cells: int, n_genes: int, nnz_per_cell: int,
                         seed: int = 0, rows_per_block: int = 10_000) -> dict:
    """Write a CSR ``.h5ad`` block by block; return its description.

    Each cell's stored genes are the distinct hits of a Poisson process over genes
    weighted by log-normal frequencies (expected ``nnz_per_cell`` distinct genes), so
    indices come out sorted; values are ``log1p(Gamma(2, 2))`` in float32.
    """
    import anndata as ad
    import h5py
    import pandas as pd

    rng = np.random.default_rng(seed)
    w = rng.lognormal(0.0, 1.5, n_genes)
    w = w / w.sum()
    cumw = np.cumsum(w)
    cumw[-1] = 1.0
    lam = _solve_rate(w, nnz_per_cell)
    k = int(np.ceil(lam + 8 * np.sqrt(lam) + 16))
    obs = pd.DataFrame(index=pd.Index([f"cell{i}" for i in range(n_cells)]))
    var = pd.DataFrame(index=pd.Index([f"GENE{j}" for j in range(n_genes)]))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.h5ad")
    ad.AnnData(obs=obs, var=var).write_h5ad(tmp)
    t0 = time.perf_counter()
    with h5py.File(tmp, "a") as f:
        if "X" in f:
            del f["X"]
        g = f.create_group("X")
        g.attrs["encoding-type"] = "csr_matrix"
        g.attrs["encoding-version"] = "0.1.0"
        g.attrs["shape"] = (n_cells, n_genes)
        dchunk = (1 << 20,)
        dset = g.create_dataset("data", (0,), dtype=np.float32, maxshape=(None,),
                                chunks=dchunk)
        iset = g.create_dataset("indices", (0,), dtype=np.int32, maxshape=(None,),
                                chunks=dchunk)
        indptr = np.zeros(n_cells + 1, dtype=np.int64)
        total = 0
        for s in range(0, n_cells, rows_per_block):
            e = min(n_cells, s + rows_per_block)
            r = e - s
            pos = np.cumsum(rng.exponential(1.0, (r, k)), axis=1) / lam
            keep = pos < 1.0
            genes = np.searchsorted(cumw, pos, side="right")
            genes = np.minimum(genes, n_genes - 1)
            dup = np.zeros_like(keep)
            dup[:, 1:] = genes[:, 1:] == genes[:, :-1]
            keep &= ~dup
            counts = keep.sum(axis=1)
            cols = genes[keep].astype(np.int32)  # row-major: sorted within each row
            vals = np.log1p(rng.gamma(2.0, 2.0, cols.size)).astype(np.float32)
            n = cols.size
            dset.resize((total + n,))
            iset.resize((total + n,))
            dset[total:total + n] = vals
            iset[total:total + n] = cols
            indptr[s + 1:e + 1] = total + np.cumsum(counts)
            total += n
            if (s // rows_per_block) % 10 == 0:
                print(f"  wrote {e:,}/{n_cells:,} cells ({total / e:.0f} nnz/cell, "
                      f"{time.perf_counter() - t0:.0f} s)", flush=True)
        g.create_dataset("indptr", data=indptr)
        g.attrs["osteoimmune_benchmark"] = json.dumps(
            {"n_cells": n_cells, "n_genes": n_genes, "nnz_per_cell": nnz_per_cell,
             "seed": seed})
    repack_contiguous(tmp, path)
    tmp.unlink()
    return {"nnz": int(total), "seconds": round(time.perf_counter() - t0, 1),
            "layout": LAYOUT}


#: storage of X/data and X/indices in the benchmark file: each in one stretch of the file,
#: as anndata writes a matrix held in memory (appending blocks interleaves the chunks of
#: the two datasets, so each dataset's storage breaks every few chunks)
LAYOUT = "contiguous"


def repack_contiguous(src: Path, dst: Path, step: int = 50_000_000) -> None:
    """Copy an ``.h5ad`` whose CSR ``X`` was appended block by block into ``dst`` with
    ``X/data`` and ``X/indices`` contiguous (same values, same other elements)."""
    import h5py

    t0 = time.perf_counter()
    part = dst.with_suffix(".repack.h5ad")
    with h5py.File(src, "r") as fs, h5py.File(part, "w") as fd:
        for k, v in fs.attrs.items():
            fd.attrs[k] = v
        for key in fs:
            if key != "X":
                fs.copy(fs[key], fd, name=key)
        gs = fs["X"]
        gd = fd.create_group("X")
        for k, v in gs.attrs.items():
            gd.attrs[k] = v
        meta = json.loads(gs.attrs["osteoimmune_benchmark"])
        gd.attrs["osteoimmune_benchmark"] = json.dumps({**meta, "layout": LAYOUT})
        gd.create_dataset("indptr", data=gs["indptr"][...])
        for name in ("data", "indices"):
            ds = gs[name]
            out = gd.create_dataset(name, shape=ds.shape, dtype=ds.dtype)  # contiguous
            for lo in range(0, ds.shape[0], step):
                hi = min(ds.shape[0], lo + step)
                out[lo:hi] = ds[lo:hi]
    os.replace(part, dst)
    print(f"  repacked X contiguously ({time.perf_counter() - t0:.0f} s)", flush=True)


def _existing_matches(path: Path, n_cells: int, n_genes: int, nnz_per_cell: int,
                      seed: int) -> tuple[int, str | None] | None:
    """(stored values, layout) of an existing benchmark file of this configuration, or
    None when there is none (a broken or foreign file is rewritten)."""
    import h5py

    if not path.exists():
        return None
    try:
        with h5py.File(path, "r") as f:
            meta = json.loads(f["X"].attrs["osteoimmune_benchmark"])
            layout = meta.pop("layout", None)
            if meta != {"n_cells": n_cells, "n_genes": n_genes,
                        "nnz_per_cell": nnz_per_cell, "seed": seed}:
                return None
            return int(f["X/data"].shape[0]), layout
    except Exception:
        return None


def signatures(n_genes: int, seed: int = 1) -> dict[str, list[str]]:
    rng = np.random.default_rng(seed)
    return {f"sig{i:02d}": [f"GENE{j}" for j in rng.choice(n_genes, SIG_SIZE, replace=False)]
            for i in range(N_SIGNATURES)}


# ---------------------------------------------------------------------------------------
# stages (run in a child process: python scale_bench.py --stage NAME ...)
# ---------------------------------------------------------------------------------------
def stage_read(path: Path, chunk_size: int) -> dict:
    import h5py

    with h5py.File(path, "r") as f:
        g = f["X"]
        indptr = g["indptr"][...]
        n = len(indptr) - 1
        checksum = 0.0
        for s in range(0, n, chunk_size):
            e = min(n, s + chunk_size)
            lo, hi = int(indptr[s]), int(indptr[e])
            data = g["data"][lo:hi]
            indices = g["indices"][lo:hi]
            checksum += float(data[:1].sum()) + float(indices[:1].sum())
    return {"checksum": checksum}


def stage_backed(path: Path, chunk_size: int, method: str, n_genes: int) -> dict:
    import warnings

    import anndata as ad

    import osteoimmune as oi

    t0 = time.perf_counter()
    b = ad.read_h5ad(path, backed="r")
    open_s = time.perf_counter() - t0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t0 = time.perf_counter()
        res = oi.tl.score(b, signatures(n_genes), method=method, chunk_size=chunk_size,
                          progress=False)
        timed_s = time.perf_counter() - t0
    b.file.close()
    return {**_result_summary(res), "open_s": open_s, "timed_s": timed_s}


def _result_summary(res) -> dict:
    """Shape, mean and checksum of a score table, computed after the clock stops (the
    first new 160 MB array of a process, e.g. ``np.abs`` of 10^6 × 20 scores, took 1.3 s
    here: time of this benchmark, not of scoring)."""
    a = res.to_numpy()
    return {"shape": list(res.shape), "mean": float(a.mean()),
            "checksum": float(sum(np.abs(a[s:s + 65536]).sum()
                                  for s in range(0, a.shape[0], 65536))),
            "passes_over_X": res.attrs["params"].get("passes_over_X")}


def stage_oi_read(path: Path, chunk_size: int) -> dict:
    """One pass of osteoimmune's own chunk reader (the memory map on Linux), reading
    every stored value: the floor of one scoring pass."""
    import anndata as ad

    from osteoimmune.scoring import MatrixSource

    t0 = time.perf_counter()
    b = ad.read_h5ad(path, backed="r")
    open_s = time.perf_counter() - t0
    src = MatrixSource(b.X)
    checksum = 0.0
    for ch in src.iter_chunks(chunk_size, reuse_buffers=True, split=True):
        checksum += float(ch.data.sum()) + float(ch.indices.sum())
    b.file.close()
    return {"checksum": checksum, "memory_mapped": src._maps() is not None,
            "open_s": open_s}


def _block_nnz(block) -> np.ndarray:
    return np.array([[int(block.nnz) if hasattr(block, "nnz") else
                      int(np.count_nonzero(block))]], dtype=np.int64)


def _import_libraries() -> None:
    import anndata  # noqa: F401
    import h5py  # noqa: F401

    import osteoimmune  # noqa: F401


def stage_dask(path: Path, chunk_size: int, method: str, n_genes: int,
               n_workers: int) -> dict:
    """Dask on a local cluster, X read by anndata's lazy reader (``read_elem_lazy``)."""
    import warnings

    import anndata as ad
    import distributed
    import h5py
    from anndata.experimental import read_elem_lazy

    import osteoimmune as oi

    t0 = time.perf_counter()
    cluster = distributed.LocalCluster(n_workers=n_workers, threads_per_worker=1,
                                       processes=True, dashboard_address=None,
                                       memory_limit=0)
    client = distributed.Client(cluster)
    client.wait_for_workers(n_workers)
    times = {"cluster_start_s": round(time.perf_counter() - t0, 2)}
    # the workers import the libraries now, as this process did before its clock
    # started (import_s), not on their first task
    t1 = time.perf_counter()
    client.run(_import_libraries)
    times["worker_import_s"] = round(time.perf_counter() - t1, 2)
    with h5py.File(path, "r") as f:
        t1 = time.perf_counter()
        adata = ad.AnnData(X=read_elem_lazy(f["X"], chunks=(chunk_size, -1)),
                           obs=ad.io.read_elem(f["obs"]), var=ad.io.read_elem(f["var"]))
        times["open_s"] = time.perf_counter() - t1
        t1 = time.perf_counter()
        if method == "read":
            # one pass over the lazy array, every block read once on the workers: the
            # I/O reference of the dask route
            nnz = adata.X.map_blocks(_block_nnz, dtype=np.int64, chunks=(1, 1)).sum()
            out = {"checksum": float(nnz.compute())}
            times["timed_s"] = time.perf_counter() - t1
        else:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                res = oi.tl.score(adata, signatures(n_genes), method=method,
                                  chunk_size=chunk_size, progress=False)
            times["timed_s"] = time.perf_counter() - t1
            out = _result_summary(res)
    t1 = time.perf_counter()
    client.close()
    cluster.close()
    times["cluster_close_s"] = round(time.perf_counter() - t1, 2)
    return {**out, **times}


def _child_main(args) -> None:
    import resource

    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    # libraries are imported before the clock starts (about 2.3 s here for anndata and
    # osteoimmune, whatever the data size); import_s records it
    t0 = time.perf_counter()
    if args.stage not in ("read", "warmup"):
        import anndata  # noqa: F401

        import osteoimmune  # noqa: F401
        if args.stage.startswith("dask_"):
            import distributed  # noqa: F401
    import_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    path = Path(args.path)
    if args.stage == "read":
        out = stage_read(path, args.chunk_size)
    elif args.stage == "oi_read":
        out = stage_oi_read(path, args.chunk_size)
    elif args.stage.startswith("backed_"):
        out = stage_backed(path, args.chunk_size, args.stage[7:], args.n_genes)
    elif args.stage.startswith("dask_"):
        out = stage_dask(path, args.chunk_size, args.stage[5:], args.n_genes,
                         args.n_workers)
    elif args.stage == "warmup":
        # compile every numba kernel once (cached on disk) so no stage pays for it
        import anndata as ad
        import scipy.sparse as sp

        import osteoimmune as oi

        X = sp.random(200, 300, density=0.2, format="csr", dtype=np.float32,
                      random_state=0)
        X.data = np.log1p(X.data * 10).astype(np.float32)
        a = ad.AnnData(X=X)
        a.var_names = [f"GENE{j}" for j in range(300)]
        for m in ("module", "aucell"):
            oi.tl.score(a, {"s": ["GENE1", "GENE2", "GENE3", "GENE4"]}, method=m,
                        progress=False)
        out = {}
    else:
        raise SystemExit(f"unknown stage {args.stage}")
    # a stage that times its own operation (scoring, or the pass over X) reports it as
    # timed_s: opening the AnnData (anndata reads its 1M observation names: about 1 s),
    # starting and closing a dask cluster and checking the result are recorded apart
    elapsed = time.perf_counter() - t0
    out["wall_s"] = out.pop("timed_s", elapsed - out.get("open_s", 0.0))
    out["stage_process_s"] = elapsed
    out["import_s"] = round(import_s, 2)
    out["ru_maxrss_self_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out["ru_maxrss_children_mb"] = \
        resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print("RESULT " + json.dumps(out), flush=True)


def evict_from_page_cache(path: Path) -> None:
    """Drop the file's pages from the OS page cache (clean pages; no root needed)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def run_stage(name: str, args, env=None, cold: bool = False) -> dict:
    """Run one stage in a subprocess; sample the RSS of its process tree.

    ``cold``: evict the data file from the page cache first.
    """
    import psutil

    if cold:
        evict_from_page_cache(args.path)
    cmd = [sys.executable, str(Path(__file__).resolve()), "--stage", name, "--path",
           str(args.path), "--chunk-size", str(args.chunk_size), "--n-genes",
           str(args.n_genes), "--n-workers", str(args.n_workers)]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, **(env or {})})
    peak = [0]
    stop = threading.Event()

    def sample():
        try:
            p = psutil.Process(proc.pid)
        except psutil.NoSuchProcess:
            return
        while not stop.is_set():
            try:
                rss = p.memory_info().rss + sum(c.memory_info().rss
                                                for c in p.children(recursive=True))
                peak[0] = max(peak[0], rss)
            except psutil.Error:
                pass
            stop.wait(0.1)

    th = threading.Thread(target=sample, daemon=True)
    th.start()
    stdout, stderr = proc.communicate()
    stop.set()
    th.join()
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"stage {name} failed ({proc.returncode}):\n{stderr[-4000:]}")
    line = [ln for ln in stdout.splitlines() if ln.startswith("RESULT ")][-1]
    out = json.loads(line[7:])
    out["process_wall_s"] = wall
    out["peak_rss_tree_mb"] = peak[0] / 2**20
    return out


def _versions() -> dict:
    from importlib.metadata import version

    out = {"python": platform.python_version()}
    for pkg in ("osteoimmune", "anndata", "numpy", "scipy", "numba", "h5py", "dask",
                "distributed", "scanpy"):
        try:
            out[pkg] = version(pkg)
        except Exception:
            out[pkg] = None
    return out


def _machine() -> dict:
    import psutil

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            for ln in fh:
                if ln.startswith("model name"):
                    cpu = ln.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {"platform": platform.platform(), "cpu": cpu, "logical_cores": os.cpu_count(),
            "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
            "load_avg_at_start": os.getloadavg()}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n-cells", type=int, default=1_000_000)
    ap.add_argument("--n-genes", type=int, default=20_000)
    ap.add_argument("--nnz-per-cell", type=int, default=1_500)
    ap.add_argument("--chunk-size", type=int, default=10_000)
    ap.add_argument("--n-workers", type=int, default=2)
    ap.add_argument("--methods", default="module,aucell")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--data-dir", type=Path, default=HERE / "data")
    ap.add_argument("--out", type=Path, default=HERE / "results" / "scale.json")
    ap.add_argument("--skip-dask", action="store_true")
    ap.add_argument("--repeat", type=int, default=3,
                    help="runs per stage; the figure is the run with the median wall time")
    ap.add_argument("--cache", choices=["warm", "cold", "both"], default="both",
                    help="page-cache regime(s) to measure (see the module docstring)")
    ap.add_argument("--stages", default=None,
                    help="comma-separated stages to (re)run, e.g. dask_module,dask_aucell; "
                         "the other figures are kept from the existing --out file (same "
                         "data file and configuration)")
    ap.add_argument("--no-paired-reads", dest="paired_reads", action="store_false",
                    help="do not precede every timed run with a plain read (its pair: the "
                         "run's ratio to it is recorded as ratio_to_paired_read)")
    ap.add_argument("--stage", help=argparse.SUPPRESS)
    ap.add_argument("--path", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.stage:
        _child_main(args)
        return

    path = args.data_dir / (f"scale_{args.n_cells}x{args.n_genes}_{args.nnz_per_cell}"
                            f"_s{args.seed}.h5ad")
    args.path = path
    machine, versions = _machine(), _versions()
    existing = _existing_matches(path, args.n_cells, args.n_genes, args.nnz_per_cell,
                                 args.seed)
    nnz = existing[0] if existing else None
    if existing and existing[1] != LAYOUT:  # the same values appended block by block
        print(f"repacking {path} ...", flush=True)
        repack_contiguous(path, path)
    gen = None
    if nnz is None:
        print(f"writing {path} ...", flush=True)
        gen = write_synthetic_h5ad(path, args.n_cells, args.n_genes, args.nnz_per_cell,
                                   seed=args.seed)
        nnz = gen["nnz"]
    file_gb = path.stat().st_size / 1e9
    print(f"{path.name}: {nnz:,} stored values ({nnz / args.n_cells:.0f}/cell), "
          f"{file_gb:.2f} GB", flush=True)

    methods = [m for m in args.methods.split(",") if m]
    regimes = ["warm", "cold"] if args.cache == "both" else [args.cache]
    run_stage("warmup", args)
    order = (["read", "oi_read"] + [f"backed_{m}" for m in methods] + ["dask_read"]
             + [f"dask_{m}" for m in methods])
    stages = [st for st in order if not (args.skip_dask and st.startswith("dask_"))]
    previous: dict[str, dict] = {}
    if args.stages:
        wanted = args.stages.split(",")
        prev = json.loads(args.out.read_text())
        if prev["config"]["n_cells"] != args.n_cells or prev["config"]["nnz"] != nnz:
            raise SystemExit(f"{args.out} holds another configuration; rerun every stage.")
        for regime in regimes:
            key = "figures" if regime == "warm" else "figures_cold"
            previous[regime] = {k: {**v, "run": prev.get("date_utc")}
                                for k, v in prev.get(key, {}).items() if k not in wanted}
        stages = [st for st in stages if st in wanted]
        gen = gen or prev.get("generate")
    all_figures: dict[str, dict[str, dict]] = {}
    for regime in regimes:
        figures = dict(previous.get(regime, {}))
        cold = regime == "cold"
        if not cold:
            run_stage("read", args)  # untimed: every warm stage sees the file in cache
        for st in stages:
            print(f"stage {st} ({regime}) ...", flush=True)
            runs = []
            for _ in range(args.repeat):
                paired = run_stage("read", args, cold=cold) if args.paired_reads else None
                run = run_stage(st, args, cold=cold)
                if paired is not None:
                    run["paired_read_s"] = paired["wall_s"]
                runs.append(run)
            # the run with the median wall time; every run's wall time is kept
            runs.sort(key=lambda r: r["wall_s"])
            figures[st] = {**runs[(len(runs) - 1) // 2],
                           "wall_s_runs": [round(r["wall_s"], 2) for r in runs]}
            if args.paired_reads:
                # each run against the plain read just before it: slow drifts of the
                # machine (other tenants, the page cache thinned out) then cancel
                ratios = sorted(r["wall_s"] / r["paired_read_s"] for r in runs)
                figures[st].pop("paired_read_s")
                figures[st]["paired_read_s_runs"] = [round(r["paired_read_s"], 2)
                                                     for r in runs]
                figures[st]["ratio_to_paired_read_runs"] = [round(x, 2) for x in ratios]
                figures[st]["ratio_to_paired_read"] = round(ratios[(len(ratios) - 1) // 2],
                                                            2)
        read_s = figures["read"]["wall_s"]
        figures = {st: figures[st] for st in order if st in figures}
        for st, fig in figures.items():
            fig["ratio_to_read"] = round(fig["wall_s"] / read_s, 2)
            if st.startswith("dask_") and "dask_read" in figures:
                # against one read of the same lazy array on the same cluster
                fig["ratio_to_dask_read"] = round(
                    fig["wall_s"] / figures["dask_read"]["wall_s"], 2)
        all_figures[regime] = figures
    x_bytes = nnz * 8 + (args.n_cells + 1) * 8
    result = {
        "benchmark": "osteoimmune atlas-scale out-of-core scoring (issue 8)",
        "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": machine, "versions": versions,
        "config": {"n_cells": args.n_cells, "n_genes": args.n_genes,
                   "nnz_per_cell_target": args.nnz_per_cell, "nnz": nnz,
                   "x_bytes": x_bytes, "file_gb": round(file_gb, 3),
                   "chunk_size": args.chunk_size, "n_signatures": N_SIGNATURES,
                   "signature_size": SIG_SIZE, "methods": methods,
                   "dask_workers": args.n_workers, "dask_threads_per_worker": 1,
                   "repeats_per_stage": args.repeat, "paired_reads": args.paired_reads,
                   "page_cache": {"warm": "a warm-up read precedes the timed stages",
                                  "cold": "file evicted (POSIX_FADV_DONTNEED) before "
                                          "every stage"}},
        "notes": ("Each figure is the run with the median wall time of repeats_per_stage runs "
                  "(wall_s_runs lists them all; this machine's timings vary by up to 20-30 % "
                  "between identical runs). With paired_reads, every run follows a plain "
                  "read in the same regime; ratio_to_paired_read is the median of the runs' "
                  "ratios to their paired reads (paired_read_s_runs, "
                  "ratio_to_paired_read_runs), in which the machine's slow drifts cancel. "
                  "peak_rss_tree_mb (RSS of the stage process and all its children, sampled "
                  "every 0.1 s) is the memory figure. ru_maxrss_self_mb inherits the "
                  "high-water mark of the parent benchmark process across fork (the data "
                  "generation), so it is an upper bound only; ru_maxrss_children_mb is the "
                  "largest dask worker process."),
        "generate": gen,
        "goals": {"ratio_to_read_max": 2.0, "peak_rss_gib_max": 4.0},
    }
    for regime, figures in all_figures.items():
        result["figures" if regime == "warm" else "figures_cold"] = {
            k: {kk: (round(v, 3) if isinstance(v, float) else v) for kk, v in d.items()}
            for k, d in figures.items()}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    for regime, figures in all_figures.items():
        print(f"\n{regime} page cache")
        print(f"{'stage':<16}{'wall s':>9}{'x read':>8}{'x paired':>10}{'x dask read':>12}"
              f"{'peak RSS tree MiB':>19}{'driver MiB':>12}{'children MiB':>14}")
        for st, fig in figures.items():
            dr = fig.get("ratio_to_dask_read")
            pr = fig.get("ratio_to_paired_read")
            print(f"{st:<16}{fig['wall_s']:>9.1f}{fig['ratio_to_read']:>8.2f}"
                  f"{(f'{pr:.2f}' if pr is not None else ''):>10}"
                  f"{(f'{dr:.2f}' if dr is not None else ''):>12}"
                  f"{fig['peak_rss_tree_mb']:>19.0f}{fig['ru_maxrss_self_mb']:>12.0f}"
                  f"{fig['ru_maxrss_children_mb']:>14.0f}")
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
