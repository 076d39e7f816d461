"""scDRS cell scores with matched control gene sets (``method="scdrs"``).

Reproduces :func:`scdrs.pp.preprocess` + :func:`scdrs.method.score_cell` (scDRS 1.0.2,
Zhang et al. 2022 Nat Genet) without covariates, streaming the matrix in row chunks:

1. **gene statistics** (one pass): mean and variance (ddof 0) of the log data, and of
   ``expm1(X)``; the technical variance of ``expm1(X)`` is a loess fit (span 0.3, degree 2,
   tricube) of ``log10 var`` on ``log10 mean`` over the non-constant genes, and the
   technical variance of the log data is ``var * ct_var_tech / ct_var`` (Frost 2020).
   scDRS uses ``skmisc.loess`` with its default kd-tree/vertex interpolation; this module
   computes the exact (``surface="direct"``) local fit, which agrees with
   ``skmisc.loess(..., surface="direct")`` to 1e-12 and with the interpolated surface to a
   few 1e-3 in log10 variance.
2. **mean–variance bins**: ``pd.qcut`` of the gene means into ``n_mean_bin`` bins and, in
   each, of the variances into ``n_var_bin`` bins (``duplicates="drop"``); both are capped
   at ``floor(sqrt(n_genes / 10))``.
3. **control sets**: for every bin holding signature genes (bins in scDRS's order, genes
   sorted by name) and every control set, ``RandomState(random_state).choice(bin genes,
   size=#signature genes in the bin, replace=False)`` — the very draws scDRS makes, so the
   control sets equal scDRS's for the same seed (signature genes may be drawn as controls).
4. **raw scores**: weights ``1 / sqrt(var_tech + 0.01)`` (``weight_opt="vs"``) times the
   signature's gene weights, normalised to sum 1; a control gene takes the gene weight of
   the signature gene it matches. All ``n_sets × (1 + n_ctrl)`` raw scores of a cell come
   from one fused kernel; no cells × controls matrix is ever held.
5. **normalisation**: centre every raw score over cells (column means are
   ``gene_means @ W``, no pass needed); divide each control by ``sqrt(Σ var·w² /
   Σ_signature var·w²)``; standardise each cell by the mean and SD (ddof 0) of its own
   control scores; centre over cells again; a cell whose raw score is exactly 0 gets the
   global minimum − 1e-3 (a control score with raw 0 gets the global minimum).
6. **p-value**: pooled over every cell × control normalised score,
   ``p = (1 + #{null >= s}) / (1 + n_cells * n_ctrl)``, computed exactly in a second pass
   (the control scores are recomputed and placed among the sorted cell scores).

Results are bit-identical for every ``chunk_size`` and storage (dense, sparse, backed).
Not supported: covariate regression (``cov``) and cell-group weighting (``adj_prop``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from .._utils import warn
from ._base import GeneStats, ScoreContext, ScoringMethod
from ._scdrs_kernels import (
    colsum_min_update,
    hist_update,
    legacy_choice_sets,
    loess_quadratic,
    null_positions,
    score_rows,
)
from ._source import Chunk

__all__ = ["ScDRS", "scdrs_gene_table", "loess_fit"]

_WEIGHT_OPTS = ("vs", "uniform", "inv_std")
_BUFFER_ELEMENTS = 1 << 23  # cells × controls block held at once (64 MiB of float64)


def loess_fit(x: np.ndarray, y: np.ndarray, span: float = 0.3) -> np.ndarray:
    """Local-quadratic loess fitted values (tricube weights, exact local fits).

    Parameters
    ----------
    x, y
        Predictor and response (1-D, same length, finite).
    span
        Fraction of the points in each local neighbourhood (0 < span <= 1).

    Returns
    -------
    numpy.ndarray
        Fitted values at ``x``, in the input order. Equal to
        ``skmisc.loess.loess(x, y, span=span, degree=2, surface="direct")`` fitted values.

    Raises
    ------
    ValueError
        If the inputs differ in length, hold non-finite values, or are too short.
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"x and y must be 1-D arrays of one length, got {x.shape} and {y.shape}.")
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
        raise ValueError("x and y must be finite; drop the non-finite points before the fit.")
    if not 0 < span <= 1:
        raise ValueError(f"span must lie in (0, 1], got {span}.")
    n = x.size
    nf = min(n, int(np.floor(n * span + 1e-5)))
    if nf < 3:
        raise ValueError(f"Too few points ({n}) for a local quadratic fit with span={span}; "
                         "at least 3 points per neighbourhood are needed.")
    order = np.argsort(x, kind="stable")
    fitted = np.empty(n)
    fitted[order] = loess_quadratic(np.ascontiguousarray(x[order]),
                                    np.ascontiguousarray(y[order]), nf)
    return fitted


def _qcut_labels(values: pd.Series, q: int) -> np.ndarray:
    """``pd.qcut(values, q, labels=False, duplicates="drop")``; 0 where it cannot cut."""
    try:
        lab = pd.qcut(values, q, labels=False, duplicates="drop")
    except (ValueError, IndexError):
        return np.zeros(len(values), dtype=np.int64)
    lab = np.asarray(lab, dtype=np.float64)
    lab[~np.isfinite(lab)] = 0
    return lab.astype(np.int64)


def scdrs_gene_table(stats: GeneStats, var_names, n_mean_bin: int = 20,
                     n_var_bin: int = 20) -> tuple[pd.DataFrame, tuple[int, int]]:
    """Gene statistics of ``scdrs.pp.preprocess`` from one pass of gene sums.

    Parameters
    ----------
    stats
        Gene statistics with the ``expm1`` sums (``compute_gene_stats(..., expm1=True)``).
    var_names
        Gene names (their sort order fixes the control draws, as in scDRS).
    n_mean_bin, n_var_bin
        Requested mean and variance bins (capped at ``floor(sqrt(n_genes / 10))``).

    Returns
    -------
    table : pandas.DataFrame
        One row per gene (index = ``var_names``) with scDRS's columns ``mean``, ``var``,
        ``var_tech``, ``ct_mean``, ``ct_var``, ``ct_var_tech`` and ``mean_var`` (bin label
        ``"<mean bin>.<var bin>"``).
    bins : tuple of int
        The (n_mean_bin, n_var_bin) actually used.

    Raises
    ------
    ValueError
        If the expm1 sums are missing, or fewer than 10 genes / too few non-constant genes.
    """
    if stats.expm1_sum is None:
        raise ValueError("scdrs_gene_table needs expm1 sums: compute the gene statistics with "
                         "expm1=True.")
    n_genes = stats.n_vars
    mean = stats.mean
    var = stats.var(ddof=0)
    ct_mean = stats.expm1_mean()
    ct_var = stats.expm1_var(ddof=0)
    not_const = ct_var > 0
    n_nc = int(not_const.sum())
    if n_nc < 10:
        raise ValueError(
            f"Only {n_nc} genes vary across the observations; scDRS needs at least 10 "
            "non-constant genes to fit the mean–variance trend. Score more genes (do not "
            "subset to the signature genes) or use method='module'."
        )
    est = np.zeros(n_genes)
    est[not_const] = loess_fit(np.log10(ct_mean[not_const]), np.log10(ct_var[not_const]),
                               span=0.3)
    ct_var_tech = 10.0 ** est
    with np.errstate(divide="ignore", invalid="ignore"):
        var_tech = var * ct_var_tech / ct_var
    var_tech[~np.isfinite(var_tech)] = 0.0
    n_bin_max = int(np.floor(np.sqrt(n_genes / 10)))
    if n_bin_max < 1:
        raise ValueError(f"scDRS needs at least 10 genes for its mean–variance bins; the data "
                         f"hold {n_genes}.")
    if n_mean_bin > n_bin_max or n_var_bin > n_bin_max:
        warn(f"Too few genes ({n_genes}) for {n_mean_bin} × {n_var_bin} mean–variance bins; "
             f"using {n_bin_max} × {n_bin_max} (floor(sqrt(n_genes / 10)), as scDRS does).")
        n_mean_bin, n_var_bin = n_bin_max, n_bin_max
    names = pd.Index(np.asarray(var_names).astype(str))
    df = pd.DataFrame({"mean": mean, "var": var, "var_tech": var_tech, "ct_mean": ct_mean,
                       "ct_var": ct_var, "ct_var_tech": ct_var_tech},
                      index=pd.RangeIndex(n_genes))
    mean_bin = _qcut_labels(df["mean"], n_mean_bin)
    labels = np.empty(n_genes, dtype=object)
    for b in np.unique(mean_bin):
        sel = np.flatnonzero(mean_bin == b)
        vb = _qcut_labels(df["var"].iloc[sel], n_var_bin)
        labels[sel] = [f"{b}.{v}" for v in vb]
    df["mean_var"] = labels
    df.index = names
    return df, (n_mean_bin, n_var_bin)


def _draw_controls(bins: list[np.ndarray], k: np.ndarray, n_ctrl: int,
                   random_state) -> np.ndarray:
    """scDRS's control draws: n_ctrl × sum(k) gene indices (see :func:`legacy_choice_sets`)."""
    ptr = np.zeros(len(bins) + 1, dtype=np.int64)
    ptr[1:] = np.cumsum([len(b) for b in bins])
    genes = np.concatenate(bins).astype(np.int64)
    out = np.empty((n_ctrl, int(k.sum())), dtype=np.int64)
    size = int(2 * n_ctrl * ptr[-1] + 4096)
    while True:
        rs = np.random.RandomState(random_state)
        stream = rs.randint(0, 2**32, size=size, dtype=np.uint32)
        used = legacy_choice_sets(stream, ptr, genes, k.astype(np.int64), n_ctrl, out)
        if used >= 0:
            return out
        size *= 2


class ScDRS(ScoringMethod):
    """scDRS normalised scores and pooled empirical p-values.

    Parameters
    ----------
    n_ctrl
        Number of matched control gene sets per signature.
    n_mean_bin, n_var_bin
        Mean and variance bins for matching control genes (capped at
        ``floor(sqrt(n_genes / 10))``).
    weight_opt
        Gene weights of the raw score: ``"vs"`` (1/sqrt(technical variance + 0.01), the
        scDRS default), ``"inv_std"`` (1/sqrt(variance + 0.01)) or ``"uniform"``.

    Notes
    -----
    Output columns: ``"<name>"`` (normalised score) for every signature, then
    ``"<name>_pval"`` (pooled p-value). Signed signatures are scored on their positive
    part (with a warning), as scDRS weights must be positive. The fitted gene table, control
    sets and weights are kept as ``gene_table_``, ``control_genes_`` and ``weights_``.
    """

    name = "scdrs"
    reference = ("Zhang et al. 2022 Nat Genet, doi:10.1038/s41588-022-01167-z; "
                 "scdrs.pp.preprocess + scdrs.method.score_cell 1.0.2")
    needs_stats = True
    needs_expm1 = True
    accepts_counts = False
    accepts_negative = False
    two_pass = True

    def __init__(self, n_ctrl: int = 1000, n_mean_bin: int = 20, n_var_bin: int = 20,
                 weight_opt: str = "vs") -> None:
        if int(n_ctrl) < 1 or int(n_ctrl) != n_ctrl:
            raise ValueError(f"n_ctrl must be a positive integer, got {n_ctrl}.")
        for nm, v in (("n_mean_bin", n_mean_bin), ("n_var_bin", n_var_bin)):
            if int(v) < 1 or int(v) != v:
                raise ValueError(f"{nm} must be a positive integer, got {v}.")
        if weight_opt not in _WEIGHT_OPTS:
            raise ValueError(f"weight_opt={weight_opt!r} is not supported; choose one of "
                             f"{list(_WEIGHT_OPTS)}.")
        self.n_ctrl = int(n_ctrl)
        self.n_mean_bin = int(n_mean_bin)
        self.n_var_bin = int(n_var_bin)
        self.weight_opt = weight_opt

    # -- preparation ------------------------------------------------------------------
    def _gene_weights(self, table: pd.DataFrame) -> np.ndarray:
        if self.weight_opt == "vs":
            return 1.0 / np.sqrt(table["var_tech"].to_numpy() + 1e-2)
        if self.weight_opt == "inv_std":
            return 1.0 / np.sqrt(table["var"].to_numpy() + 1e-2)
        return np.ones(len(table))

    def prepare(self, ctx: ScoreContext) -> None:
        if ctx.random_state is not None and not isinstance(ctx.random_state,
                                                           (int, np.integer)):
            raise TypeError("method='scdrs' needs an integer random_state (or None), got "
                            f"{type(ctx.random_state).__name__}.")
        seed = ctx.random_state
        if seed is None:
            seed = int(np.random.SeedSequence().generate_state(1)[0])
        self._seed = int(seed)
        table, (nmb, nvb) = scdrs_gene_table(ctx.stats, ctx.var_names, self.n_mean_bin,
                                             self.n_var_bin)
        self._bins_used = (nmb, nvb)
        self.gene_table_ = table
        names = table.index.to_numpy().astype(str)
        # genes of each bin, sorted by name (scDRS sorts gene names); bins in label order
        name_order = np.lexsort((np.arange(len(names)), names))
        labels = table["mean_var"].to_numpy()
        bin_genes: dict[str, np.ndarray] = {}
        lab_sorted = labels[name_order]
        for lab in sorted(set(labels.tolist())):
            bin_genes[lab] = name_order[lab_sorted == lab]
        gw = self._gene_weights(table)
        var = table["var"].to_numpy()
        mean = ctx.stats.mean
        n_ctrl = self.n_ctrl
        rows, cols, vals = [], [], []
        mu, sqrt_ratio = [], []
        self._names, self.control_genes_, self.weights_ = [], {}, {}
        self._n_genes = {}
        for s, m in enumerate(ctx.matched):
            idx = np.asarray(m.idx, dtype=np.int64)
            uw = np.asarray(m.weights, dtype=np.float64)
            if np.any(uw <= 0):
                keep = uw > 0
                if not keep.any():
                    raise ValueError(
                        f"Signature {m.name!r} has no gene with a positive weight; scDRS "
                        "needs positive gene weights. Score its down genes as their own "
                        "signature (weights +1) or use method='ucell'/'zmean'."
                    )
                warn(f"Signature {m.name!r}: scDRS uses positive gene weights only; scoring "
                     f"its {int(keep.sum())} up genes and ignoring {int((~keep).sum())} "
                     "down/zero-weight genes.")
                idx, uw = idx[keep], uw[keep]
            # scDRS sorts the signature genes by name
            o = np.lexsort((idx, names[idx]))
            idx, uw = idx[o], uw[o]
            sig_lab = labels[idx]
            sel_bins = sorted(set(sig_lab.tolist()))
            ctrl_uw = []
            bins, ks = [], []
            for lab in sel_bins:
                in_bin = sig_lab == lab  # signature genes of the bin, in name order
                bins.append(bin_genes[lab])
                ks.append(int(in_bin.sum()))
                ctrl_uw.append(uw[in_bin])
            ctrl = _draw_controls(bins, np.array(ks), n_ctrl, self._seed)
            ctrl_uw = np.concatenate(ctrl_uw)
            w_sig = gw[idx] * uw
            w_sig = w_sig / w_sig.sum()
            w_ctrl = gw[ctrl] * ctrl_uw[None, :]
            w_ctrl = w_ctrl / w_ctrl.sum(axis=1, keepdims=True)
            v_sig = float(np.sum(var[idx] * w_sig**2))
            if not v_sig > 0:
                raise ValueError(
                    f"Signature {m.name!r}: none of its {len(idx)} genes varies across the "
                    f"{ctx.obs_word}; its scDRS score is undefined. Remove the signature or "
                    "score data in which its genes are expressed."
                )
            ratio = np.sum(var[ctrl] * w_ctrl**2, axis=1) / v_sig
            ratio[~(ratio > 0)] = 1.0
            base = s * (1 + n_ctrl)
            rows += [idx, ctrl.ravel()]
            cols += [np.full(len(idx), base),
                     np.repeat(base + 1 + np.arange(n_ctrl), ctrl.shape[1])]
            vals += [w_sig, w_ctrl.ravel()]
            mu += [[float(mean[idx] @ w_sig)], np.einsum("ij,ij->i", mean[ctrl], w_ctrl)]
            sqrt_ratio += [[1.0], np.sqrt(ratio)]
            self._names.append(m.name)
            self.control_genes_[m.name] = ctrl
            self.weights_[m.name] = (idx, w_sig, w_ctrl)
            self._n_genes[m.name] = len(idx)
        n_sets = len(self._names)
        k_cols = n_sets * (1 + n_ctrl)
        W = sp.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                          shape=(ctx.n_vars, k_cols))  # duplicates (a gene drawn twice) sum
        W = W.tocsc()  # each column gathers its genes in increasing gene order
        W.sort_indices()
        self._w = (W.indptr.astype(np.int64), W.indices.astype(np.int64),
                   W.data.astype(np.float64))
        self._n_vars = ctx.n_vars
        self._mu = np.concatenate([np.asarray(a, dtype=np.float64) for a in mu])
        self._sqrt_ratio = np.concatenate([np.asarray(a, dtype=np.float64)
                                           for a in sqrt_ratio])
        self._n_sets = n_sets
        self._n_obs = ctx.n_obs
        self._norm1 = np.empty((ctx.n_obs, n_sets))
        self._zero = np.zeros((ctx.n_obs, n_sets), dtype=np.bool_)
        self._colsum = np.zeros(n_sets * n_ctrl)
        self._colmin = np.full(n_sets * n_ctrl, np.inf)
        self._hist = None
        self._block = max(1, _BUFFER_ELEMENTS // max(1, n_sets * n_ctrl))

    # -- passes -----------------------------------------------------------------------
    def columns(self) -> list[str]:
        return list(self._names) + [f"{n}_pval" for n in self._names]

    def n_out(self) -> int:
        return 2 * self._n_sets

    def score_chunk(self, chunk: Chunk) -> np.ndarray:
        n_sets, n_ctrl = self._n_sets, self.n_ctrl
        wi, wj, wv = self._w
        n = chunk.n_rows
        buf = np.empty((min(n, self._block), n_sets * n_ctrl))
        norm1 = self._norm1[chunk.start:chunk.stop]
        zero = self._zero[chunk.start:chunk.stop]
        for r0 in range(0, n, self._block):
            r1 = min(n, r0 + self._block)
            score_rows(chunk.indptr, chunk.indices, chunk.data, r0, r1, self._n_vars, wi, wj,
                       wv, n_sets, n_ctrl, self._mu, self._sqrt_ratio, norm1[r0:r1], zero[r0:r1], buf)
            colsum_min_update(buf, r1 - r0, self._colsum, self._colmin)
        out = np.empty((n, 2 * n_sets))
        out[:, :n_sets] = norm1
        out[:, n_sets:] = zero
        return out

    def _between_passes(self) -> None:
        n_obs, n_ctrl = self._n_obs, self.n_ctrl
        self._colmean = self._colsum / n_obs
        n_sets = self._n_sets
        # per-set means over contiguous copies: the summation order of a set does not depend
        # on the other sets of the call
        centre = np.array([np.ascontiguousarray(self._norm1[:, s]).mean() if n_obs else 0.0
                           for s in range(n_sets)])
        final = self._norm1 - centre
        # per set: minimum over its cells' scores and all its cells × controls null scores
        null_min = (self._colmin - self._colmean).reshape(n_sets, n_ctrl).min(axis=1)
        gmin = np.minimum(final.min(axis=0), null_min) if n_obs else np.zeros(n_sets)
        final = np.where(self._zero, gmin[None, :] - 1e-3, final)
        self._final = final
        self._gmin = gmin
        self._order = np.argsort(final, axis=0, kind="stable")
        self._sorted = np.ascontiguousarray(np.take_along_axis(final, self._order, axis=0).T)
        # bucket tables narrowing the search of a null score among the sorted cell scores
        n_buckets = max(1, n_obs)
        self._tables = np.zeros((n_sets, n_buckets + 1), dtype=np.int64)
        self._e0 = np.zeros(n_sets)
        self._inv_w = np.zeros(n_sets)
        for s in range(n_sets):
            srt = self._sorted[s]
            if n_obs == 0:
                continue
            e0, span = float(srt[0]), float(srt[-1] - srt[0])
            width = span / n_buckets
            self._e0[s] = e0
            self._inv_w[s] = 1.0 / width if width > 0 else 0.0
            edges = e0 + np.arange(n_buckets + 1) * width
            self._tables[s] = np.searchsorted(srt, edges, side="right")
        self._hist = np.zeros((self._n_sets, n_obs + 1), dtype=np.int64)

    def second_pass_chunk(self, chunk: Chunk, first: np.ndarray) -> None:
        if self._hist is None:
            self._between_passes()
        n_sets, n_ctrl = self._n_sets, self.n_ctrl
        wi, wj, wv = self._w
        n = chunk.n_rows
        pos = np.empty((min(n, self._block), n_sets * n_ctrl), dtype=np.int64)
        for r0 in range(0, n, self._block):
            r1 = min(n, r0 + self._block)
            null_positions(chunk.indptr, chunk.indices, chunk.data, r0, r1, self._n_vars,
                           wi, wj, wv, n_sets, n_ctrl, self._mu, self._sqrt_ratio,
                           self._colmean, self._gmin, self._sorted, self._tables, self._e0,
                           self._inv_w, pos)
            hist_update(pos, r1 - r0, n_sets, n_ctrl, self._hist)

    def finalize(self, raw: np.ndarray, obs_names: pd.Index) -> pd.DataFrame:
        if self._hist is None:  # no second pass ran (no observations)
            self._between_passes()
        n_obs, n_null = self._n_obs, self._n_obs * self.n_ctrl
        pval = np.empty((n_obs, self._n_sets))
        for s in range(self._n_sets):
            h = self._hist[s]
            # number of null scores >= the k-th smallest final score: sum of h[k+1:]
            ge = np.cumsum(h[::-1])[::-1][1:]
            pval[self._order[:, s], s] = (1.0 + ge) / (1.0 + n_null)
        data = np.concatenate([self._final, pval], axis=1)
        return pd.DataFrame(data, index=obs_names, columns=self.columns())

    def params(self) -> dict[str, Any]:
        return {"n_ctrl": self.n_ctrl, "n_mean_bin": self._bins_used[0],
                "n_var_bin": self._bins_used[1], "weight_opt": self.weight_opt,
                "seed": self._seed, "loess": "local quadratic, span 0.3, exact local fits",
                "n_genes": dict(self._n_genes), "pvalue": "pooled over cells × controls"}
