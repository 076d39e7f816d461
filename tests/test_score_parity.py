"""Parity of oi.tl.score with the reference tools (scanpy, decoupler, pyUCell)."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from conftest import make_synthetic

import osteoimmune as oi

sc = pytest.importorskip("scanpy")


def _random_sets(genes, sizes, seed=1, extra_missing=()):
    rng = np.random.default_rng(seed)
    sets = {f"set{n}_{i}": list(rng.choice(genes, size=n, replace=False))
            for i, n in enumerate(sizes)}
    for g in extra_missing:
        first = next(iter(sets))
        sets[first] = [*sets[first], g]
    return sets


def _scanpy_scores(adata, sets, **kw):
    out = {}
    for name, genes in sets.items():
        b = adata.copy()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            sc.tl.score_genes(b, genes, score_name="ref", **kw)
        out[name] = b.obs["ref"].to_numpy()
    return pd.DataFrame(out, index=adata.obs_names)


@pytest.mark.parametrize("use_raw", [True, False])
def test_module_equals_scanpy_pbmc68k(pbmc68k, use_raw):
    genes = list(pbmc68k.raw.var_names)
    sets = _random_sets(genes, [1, 3, 10, 50, 300], extra_missing=["NOT_A_GENE"])
    sets["monocyte"] = ["LYZ", "S100A8", "S100A9", "FCN1", "CD14", "TYROBP"]  # CD14 absent
    ours = oi.tl.score(pbmc68k, sets, method="module", use_raw=use_raw, progress=False)
    ref = _scanpy_scores(pbmc68k, sets, use_raw=use_raw, random_state=0)
    diff = (ours - ref).abs().to_numpy().max()
    assert diff < 1e-6, diff
    assert list(ours.columns) == list(sets)
    assert oi.tl.coverage(ours).loc["monocyte", "n_missing"] == 1


@pytest.mark.parametrize("kw", [dict(ctrl_size=10, n_bins=10, random_state=3),
                                dict(ctrl_size=100, n_bins=25, random_state=0)])
def test_module_equals_scanpy_synthetic(kw):
    ad = make_synthetic(n_obs=400, n_vars=600, seed=4)
    sets = _random_sets(list(ad.var_names), [2, 25, 120], seed=5, extra_missing=["ABSENT1"])
    # include never-expressed genes in a set
    sets["with_zero_genes"] = ["G0", "G1", "G10", "G11", "G12"]
    ours = oi.tl.score(ad, sets, method="module", progress=False, min_coverage=0, **kw)
    ref = _scanpy_scores(ad, sets, **kw)
    assert (ours - ref).abs().to_numpy().max() < 1e-6


def test_module_dense_float64_equals_scanpy():
    ad = make_synthetic(n_obs=200, n_vars=300, seed=8, dtype=np.float64)
    ad.X = ad.X.toarray()
    sets = _random_sets(list(ad.var_names), [5, 40], seed=2)
    ours = oi.tl.score(ad, sets, method="module", progress=False)
    ref = _scanpy_scores(ad, sets, random_state=0)
    assert (ours - ref).abs().to_numpy().max() < 1e-10


def _decoupler_aucell(adata, sets, n_up=None, raw=False):
    dc = pytest.importorskip("decoupler")
    var = adata.raw.var_names if raw else adata.var_names
    net = pd.DataFrame([(n, g) for n, gs in sets.items() for g in gs if g in set(var)],
                       columns=["source", "target"])
    b = adata.copy()
    kw = {} if n_up is None else {"n_up": n_up}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dc.mt.aucell(b, net, raw=raw, tmin=1, **kw)
    return b.obsm["score_aucell"]


@pytest.mark.parametrize("n_up", [None, 50, 17.2])
def test_aucell_equals_decoupler_pbmc68k(pbmc68k, n_up):
    genes = list(pbmc68k.raw.var_names)
    sets = _random_sets(genes, [1, 5, 30, 200], seed=11)
    sets["monocyte"] = ["LYZ", "S100A8", "S100A9", "FCN1", "TYROBP", "CST3"]
    ref = _decoupler_aucell(pbmc68k, sets, n_up=n_up, raw=True)
    kw = {} if n_up is None else {"n_up": n_up}
    ours = oi.tl.score(pbmc68k, sets, method="aucell", progress=False, **kw)
    assert (ours.loc[ref.index, ref.columns] - ref).abs().to_numpy().max() < 1e-6


def test_aucell_equals_decoupler_synthetic_with_empty_genes_and_negatives():
    ad = make_synthetic(n_obs=300, n_vars=500, seed=21, density=0.05)
    sets = _random_sets(list(ad.var_names), [3, 20, 80], seed=3)
    sets["has_empty"] = ["G0", "G1", "G30", "G31", "G32", "G33"]
    ref = _decoupler_aucell(ad, sets)
    with pytest.warns(UserWarning, match="zero in every observation"):
        ours = oi.tl.score(ad, sets, method="aucell", progress=False)
    assert (ours.loc[ref.index, ref.columns] - ref).abs().to_numpy().max() < 1e-6
    # centred data (negative values) rank below the zeros
    cen = ad.copy()
    cen.X = ad.X.toarray() - 0.3 * (ad.X.toarray() > 2)
    ref = _decoupler_aucell(cen, sets, n_up=30)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ours = oi.tl.score(cen, sets, method="aucell", n_up=30, progress=False)
    assert (ours.loc[ref.index, ref.columns] - ref).abs().to_numpy().max() < 1e-6


def test_ucell_equals_pyucell_pbmc68k(pbmc68k):
    pyucell = pytest.importorskip("pyucell")
    genes = list(pbmc68k.raw.var_names)
    sets = _random_sets(genes, [2, 10, 50], seed=7)
    sets["signed"] = ["LYZ", "S100A8", "FCN1", "CD3D-", "CD3E-", "MS4A1-"]
    sets["with_missing"] = ["LYZ", "S100A9", "NOT_A_GENE"]
    b = pbmc68k.copy()
    b.X = pbmc68k.raw.X.copy()
    pyucell.compute_ucell_scores(b, signatures=sets, max_rank=300, n_jobs=1)
    ours = oi.tl.score(pbmc68k, sets, method="ucell", max_rank=300, progress=False,
                       min_coverage=0)
    for name in sets:
        assert np.abs(b.obs[f"{name}_UCell"].to_numpy() - ours[name].to_numpy()).max() < 1e-5


def test_ucell_tiny_gene_space_follows_r_ucell():
    """R UCell caps maxRank at the number of genes and gives zeros their average rank."""
    X = np.array([[5.0, 4.0, 0.0, 0.0, 1.0], [0.0, 0.0, 3.0, 2.0, 0.0]])
    import anndata as ad

    a = ad.AnnData(X, var=pd.DataFrame(index=list("ABCDE")))
    s = oi.tl.score(a, {"ab": ["A", "B"]}, method="ucell", max_rank=1500, progress=False)
    # cell 0: ranks A=1, B=2 -> U = 1 - (3 - 3) / (2*5 - 3) = 1
    # cell 1: A, B are among three zeros ranked 3..5 (average 4) -> U = 1 - (8 - 3) / 7
    assert s["ab"].tolist() == pytest.approx([1.0, 1 - 5 / 7])


def test_zmean_equals_scaled_mean(synthetic):
    ad = synthetic
    sets = {"up": ["G10", "G20", "G30", "G40"],
            "signed": ["G10", "G20", "G50-", "G60-"]}
    ours = oi.tl.score(ad, sets, method="zmean", progress=False)
    Z = ad.X.toarray().astype(np.float64)
    mu, sd = Z.mean(0), Z.std(0, ddof=1)
    sd[sd == 0] = 1
    Z = (Z - mu) / sd
    idx = ad.var_names.get_indexer
    exp_up = Z[:, idx(["G10", "G20", "G30", "G40"])].mean(1)
    exp_signed = (Z[:, idx(["G10", "G20"])].sum(1) - Z[:, idx(["G50", "G60"])].sum(1)) / 4
    np.testing.assert_allclose(ours["up"], exp_up, atol=1e-10)
    np.testing.assert_allclose(ours["signed"], exp_signed, atol=1e-10)
    # against scanpy's scale on the dense matrix
    b = ad.copy()
    b.X = b.X.toarray().astype(np.float64)
    sc.pp.scale(b)
    np.testing.assert_allclose(ours["up"], b[:, ["G10", "G20", "G30", "G40"]].X.mean(1),
                               atol=1e-6)


def test_weighted_zmean():
    ad = make_synthetic(n_obs=50, n_vars=40, seed=2)
    sig = oi.signatures.Signature("w", genes=("G7", "G8"), weights=(2.0, -0.5))
    ours = oi.tl.score(ad, sig, method="zmean", progress=False)
    Z = ad.X.toarray().astype(np.float64)
    Z = (Z - Z.mean(0)) / Z.std(0, ddof=1)
    exp = (2 * Z[:, 7] - 0.5 * Z[:, 8]) / 2.5
    np.testing.assert_allclose(ours["w"], exp, atol=1e-10)


def test_sparse_formats_agree(synthetic):
    sets = {"a": [f"G{i}" for i in range(10, 40)], "b": ["G5", "G6", "G100"]}
    for method in ("module", "aucell", "ucell", "zmean"):
        base = oi.tl.score(synthetic, sets, method=method, progress=False)
        for conv in (sp.csc_matrix, lambda m: m.toarray(), sp.csr_array):
            b = synthetic.copy()
            b.X = conv(synthetic.X)
            other = oi.tl.score(b, sets, method=method, progress=False)
            assert np.array_equal(base.to_numpy(), other.to_numpy()), (method, conv)


@pytest.mark.parametrize("set_size", [3, 40, 300])
def test_aucell_float32_kernel_equals_general_kernel(set_size):
    """The float32 kernel ranks set genes by counting smaller keys (through key buckets,
    or a scan of all keys when few genes are in sets or the buckets are crowded by ties)
    and sorts the row otherwise; all must equal the general kernel, ties (repeated
    values), all-tied rows, negative values, stored zeros, genes never expressed and rows
    where zeros reach the top included."""
    from osteoimmune.scoring._kernels import aucell_chunk, aucell_chunk_f32
    from osteoimmune.scoring.aucell import gene_codes

    rng = np.random.default_rng(set_size)
    n_obs, n_vars = 300, 600
    X = sp.random(n_obs, n_vars, density=0.3, format="csr", random_state=rng,
                  dtype=np.float32)
    X.data = np.round(X.data * 8).astype(np.float32) / 4  # many ties
    X.data[rng.random(X.nnz) < 0.05] *= -1
    X.eliminate_zeros()
    X[:20] = X[:20].multiply(rng.random((20, n_vars)) < 0.02)  # sparse rows: zeros matter
    X = X.tocsr()
    X.sort_indices()
    # rows whose values are all tied: the key buckets are crowded, so the kernel falls
    # back to scanning all keys or sorting
    X.data[X.indptr[20]:X.indptr[40]] = 1.0
    # rows of distinct values: ranked through the buckets with (almost) no tie
    cont = slice(X.indptr[40], X.indptr[80])
    X.data[cont] = (rng.random(cont.stop - cont.start) + 0.01).astype(np.float32)
    # stored zeros (kept in the structure), one gene stored only as zeros (never
    # expressed): the kernel keys such rows again without those entries
    some = slice(X.indptr[80], X.indptr[120])
    X.data[some][rng.random(some.stop - some.start) < 0.1] = 0.0
    X.data[X.indices == 7] = 0.0
    assert (X.data == 0).sum() > 100 and X.nnz > (X != 0).nnz
    kept = np.asarray((X != 0).sum(axis=0)).ravel() > 0
    assert not kept[7]
    n_kept = int(kept.sum())
    kept_pos = np.full(n_vars, -1, dtype=np.int64)
    kept_pos[kept] = np.arange(n_kept)
    perm = np.random.default_rng(0).choice(np.arange(n_kept), n_kept, replace=False)
    perm_pos = np.empty(n_kept, dtype=np.int64)
    perm_pos[perm] = np.arange(n_kept)
    perm_gene = np.flatnonzero(kept)[perm].astype(np.int64)
    sets = [rng.choice(np.flatnonzero(kept), set_size, replace=False) for _ in range(4)]
    ptr = np.concatenate([[0], np.cumsum([len(s) for s in sets])]).astype(np.int64)
    genes = np.concatenate(sets).astype(np.int64)
    no_watch = (np.zeros(0, dtype=np.int32), np.zeros(0, dtype=np.uint8))
    # genes to watch for (one-pass scoring's genes not seen yet): some stored on a few
    # rows, gene 7 only as zeros; the kernel flags the rows storing any of them
    seen = np.ones(n_vars, dtype=np.int32)
    seen[[7, 11, 599]] = 0
    holds = np.array([np.isin(X.indices[X.indptr[i]:X.indptr[i + 1]], [7, 11, 599]).any()
                      for i in range(n_obs)])
    assert 0 < holds.sum() < n_obs
    for n_up in (10, 30, 200):
        max_auc = np.ones(len(sets))
        ip = X.indptr.astype(np.int64)
        ref = aucell_chunk(ip, X.indices, X.data, kept_pos, perm_pos, n_kept, n_up, ptr,
                           genes, max_auc)
        n_bad = np.zeros(1, dtype=np.int64)
        fast = aucell_chunk_f32(ip, X.indices, X.data, X.data.view(np.uint32), kept_pos,
                                perm_pos, perm_gene, n_kept, n_up, ptr, genes, max_auc,
                                *gene_codes(kept, perm_pos, ptr, genes), n_bad, *no_watch)
        assert np.array_equal(ref, fast), n_up
        assert n_bad[0] == 0
        assert ref.max() > 0
        watched = np.full(n_obs, 7, dtype=np.uint8)
        fast = aucell_chunk_f32(ip, X.indices, X.data, X.data.view(np.uint32), kept_pos,
                                perm_pos, perm_gene, n_kept, n_up, ptr, genes, max_auc,
                                *gene_codes(kept, perm_pos, ptr, genes), n_bad, seen,
                                watched)
        assert np.array_equal(ref, fast), n_up
        assert np.array_equal(watched, holds.astype(np.uint8))
    # the kernel counts NaN and infinite values as it reads them (for one-pass scoring)
    bad = X.data.copy()
    bad[[5, 900, X.nnz - 1]] = [np.nan, np.inf, -np.inf]
    aucell_chunk_f32(ip, X.indices, bad, bad.view(np.uint32), kept_pos, perm_pos, perm_gene,
                     n_kept, 30, ptr, genes, max_auc, *gene_codes(kept, perm_pos, ptr, genes),
                     n_bad, *no_watch)
    assert n_bad[0] == 3


class _Linear:
    """A prepared linear method with the weights ``W`` (genes × columns)."""

    def __init__(self, W):
        self.W = W

    def n_out(self):
        return self.W.shape[1]

    def linear(self):
        return self.W, np.zeros(self.W.shape[1])


def test_linear_dense_and_sparse_kernels_identical():
    """Up to DENSE_MAX_COLS columns the linear methods use a dense weight table (only
    the weighted genes' rows when few genes carry weight), above it CSR weights; all
    must give the same bits (zero weights add signed zeros only)."""
    from osteoimmune.scoring._kernels import (
        DENSE_MAX_COLS,
        csr_times_dense,
        csr_times_dense_used,
        csr_times_sparse,
    )
    from osteoimmune.scoring._runner import ChunkScorer
    from osteoimmune.scoring._source import Chunk

    rng = np.random.default_rng(4)
    X = sp.random(400, 300, density=0.2, format="csr", random_state=rng, dtype=np.float32)
    X.data[::7] *= -1
    X.data[::11] = 0.0  # explicit zeros
    X.sort_indices()
    ip = X.indptr.astype(np.int64)
    packed_used = 0
    for n_cols in (1, 5, DENSE_MAX_COLS + 3):
        W = sp.random(300, n_cols, density=0.1, format="csr", random_state=rng)
        W.data = rng.normal(size=W.nnz)
        W.sort_indices()
        ref = csr_times_sparse(ip, X.indices, X.data, W.indptr.astype(np.int64),
                               W.indices.astype(np.int64), W.data, n_cols)
        dense = csr_times_dense(ip, X.indices, X.data, np.ascontiguousarray(W.toarray()))
        assert np.array_equal(ref, dense) and np.array_equal(np.signbit(ref),
                                                            np.signbit(dense))
        assert np.abs(ref).max() > 0
        used = np.flatnonzero(np.diff(W.indptr))
        assert used.size > 0
        used_of = np.full(300, -1, dtype=np.int64)
        used_of[used] = np.arange(used.size)
        packed = csr_times_dense_used(ip, X.indices, X.data, used_of,
                                      np.ascontiguousarray(W.toarray()[used]))
        assert np.array_equal(ref, packed) and np.array_equal(np.signbit(ref),
                                                             np.signbit(packed))
        scorer = ChunkScorer(_Linear(W))
        # the packed table is chosen while few genes carry weight and the table is dense
        assert (scorer.w_used is not None) == (n_cols <= DENSE_MAX_COLS
                                               and used.size <= 0.8 * 300)
        out = scorer(Chunk(0, 400, ip, X.indices, X.data))
        assert np.array_equal(ref, out)
        packed_used += scorer.w_used is not None
    assert packed_used == 2  # 1 and 5 columns weight under 80% of the genes


@pytest.mark.parametrize("method", ["module", "zmean"])
def test_many_sets_sparse_kernel_equals_dense_kernel(synthetic, method):
    """60 sets (CSR weights) give the same bits as the same sets scored 30 at a time
    (dense weight tables)."""
    rng = np.random.default_rng(5)
    names = list(synthetic.var_names)
    sets = {f"s{i}": list(rng.choice(names, 12, replace=False)) for i in range(60)}
    together = oi.tl.score(synthetic, sets, method=method, progress=False)
    first = dict(list(sets.items())[:30])
    second = dict(list(sets.items())[30:])
    halves = pd.concat([oi.tl.score(synthetic, first, method=method, progress=False),
                        oi.tl.score(synthetic, second, method=method, progress=False)],
                       axis=1)
    assert np.array_equal(together.to_numpy(), halves[together.columns].to_numpy())
