"""Numba kernels of the scDRS method (``method="scdrs"``).

* :func:`loess_quadratic` — direct local-quadratic loess with tricube weights (the fit
  ``skmisc.loess.loess(x, y, span, degree=2, surface="direct")`` computes).
* :func:`legacy_choice_sets` — the control-gene draws of scDRS: ``np.random.choice(bin,
  size=k, replace=False)`` of a legacy ``RandomState`` (a Fisher–Yates shuffle with masked
  rejection sampling on the raw 32-bit Mersenne-Twister stream), replayed from the stream.
* :func:`score_rows` / :func:`null_positions` — the fused per-cell kernel: raw scores of every
  signature and its control sets (``x @ W`` by scattering the row's non-zeros), the first
  gene-set alignment, the cell-wise standardisation against the cell's own control scores,
  without ever holding a cells × columns matrix larger than one block.
* :func:`colsum_min_update` / :func:`hist_update` — order-fixed reductions over rows, so
  results are bit-identical whatever the chunking.
"""

from __future__ import annotations

import numba as nb
import numpy as np

_BLOCK = 16


# ----------------------------------------------------------------------------- loess
@nb.njit(cache=True)
def _solve3(a, b):
    """Solve the 3 × 3 system ``a z = b`` (Gaussian elimination, partial pivoting).

    Returns the solution, or NaNs when the system is singular.
    """
    m = a.copy()
    r = b.copy()
    n = 3
    for k in range(n):
        p = k
        best = abs(m[k, k])
        for i in range(k + 1, n):
            if abs(m[i, k]) > best:
                best = abs(m[i, k])
                p = i
        if best <= 1e-12 * max(1.0, abs(m[0, 0])):
            z = np.empty(n)
            z[:] = np.nan
            return z
        if p != k:
            for j in range(n):
                t = m[k, j]
                m[k, j] = m[p, j]
                m[p, j] = t
            t = r[k]
            r[k] = r[p]
            r[p] = t
        for i in range(k + 1, n):
            f = m[i, k] / m[k, k]
            for j in range(k, n):
                m[i, j] -= f * m[k, j]
            r[i] -= f * r[k]
    z = np.empty(n)
    for i in range(n - 1, -1, -1):
        s = r[i]
        for j in range(i + 1, n):
            s -= m[i, j] * z[j]
        z[i] = s / m[i, i]
    return z


@nb.njit(parallel=True, cache=True)
def loess_quadratic(xs, ys, nf):
    """Local-quadratic loess fitted values at the (sorted) design points.

    Parameters
    ----------
    xs, ys
        Predictor sorted ascending, and the response in the same order.
    nf
        Neighbourhood size ``floor(n * span + 1e-5)`` (capped at n).

    Notes
    -----
    For each point q the ``nf`` nearest points (a contiguous window in sorted order) get
    tricube weights ``(1 - (d/h)^3)^3`` with h the distance of the ``nf``-th nearest; the
    fitted value is the intercept of the weighted least-squares quadratic in ``x - q``.
    A window with fewer than three distinct x values falls back to a local linear and then
    a local constant fit.
    """
    n = xs.shape[0]
    out = np.empty(n)
    for ii in nb.prange(n):
        i = np.int64(ii)
        q = xs[i]
        # nf nearest points: slide a window of length nf over the sorted x
        lo = i - nf + 1
        if lo < 0:
            lo = 0
        if lo > n - nf:
            lo = n - nf
        # binary-search the best window start in [lo, min(i, n - nf)]
        wa = np.int64(lo)
        wb = np.int64(min(i, n - nf))
        while wa < wb:
            mid = (wa + wb) // 2
            # window [mid, mid+nf): compare left distance with the next point on the right
            if q - xs[mid] > xs[mid + nf] - q:
                wa = mid + 1
            else:
                wb = mid
        lo = wa
        hi = lo + nf
        h = max(q - xs[lo], xs[hi - 1] - q)
        s = np.zeros(5)
        t = np.zeros(3)
        for j in range(lo, hi):
            d = abs(xs[j] - q)
            if h > 0:
                u3 = (d / h) ** 3
                if u3 >= 1.0:
                    continue
                w = (1.0 - u3) ** 3
                u = (xs[j] - q) / h
            else:
                w = 1.0
                u = 0.0
            uk = w
            for k in range(5):
                s[k] += uk
                if k < 3:
                    t[k] += uk * ys[j]
                uk *= u
        a3 = np.empty((3, 3))
        for r in range(3):
            for c in range(3):
                a3[r, c] = s[r + c]
        z = _solve3(a3, t)
        if np.isfinite(z[0]):
            out[i] = z[0]
        else:
            det = s[0] * s[2] - s[1] * s[1]
            if s[0] > 0 and abs(det) > 1e-12 * s[0] * s[0]:
                out[i] = (s[2] * t[0] - s[1] * t[1]) / det
            elif s[0] > 0:
                out[i] = t[0] / s[0]
            else:
                out[i] = ys[i]
    return out


# ----------------------------------------------------------------------------- RNG replay
@nb.njit(cache=True)
def legacy_choice_sets(stream, bin_ptr, bin_genes, bin_k, n_ctrl, out):
    """Replay scDRS's control-gene draws from a legacy RandomState's raw 32-bit stream.

    For every selected bin b (in scDRS's order) and every control set i, scDRS calls
    ``np.random.choice(bin_genes_b, size=k_b, replace=False)``, which is
    ``permutation(n_b)[:k_b]``; the permutation is a Fisher–Yates shuffle drawing
    ``random_interval(j)`` by masked rejection on 32-bit outputs.

    Parameters
    ----------
    stream
        uint32 raw outputs of the generator (``RandomState(seed).randint(0, 2**32, ...,
        dtype=np.uint32)``).
    bin_ptr, bin_genes
        CSR-like list of the genes of each selected bin (in scDRS order).
    bin_k
        Number of signature genes in each selected bin.
    n_ctrl
        Number of control sets.
    out
        int64 array (n_ctrl × sum(bin_k)), filled with gene indices.

    Returns
    -------
    int
        Number of stream values consumed, or -1 when the stream ran out.
    """
    pos = 0
    n_stream = stream.shape[0]
    col0 = 0
    for b in range(bin_ptr.shape[0] - 1):
        start = bin_ptr[b]
        nb_ = bin_ptr[b + 1] - start
        k = bin_k[b]
        perm = np.empty(nb_, dtype=np.int64)
        for i in range(n_ctrl):
            for j in range(nb_):
                perm[j] = j
            for j in range(nb_ - 1, 0, -1):
                mask = j
                mask |= mask >> 1
                mask |= mask >> 2
                mask |= mask >> 4
                mask |= mask >> 8
                mask |= mask >> 16
                while True:
                    if pos >= n_stream:
                        return -1
                    v = np.int64(stream[pos]) & mask
                    pos += 1
                    if v <= j:
                        break
                tmp = perm[j]
                perm[j] = perm[v]
                perm[v] = tmp
            for c in range(k):
                out[i, col0 + c] = bin_genes[start + perm[c]]
        col0 += k
    return pos


# ----------------------------------------------------------------------------- scoring
@nb.njit(cache=True, inline="always")
def _row_scores(indptr, indices, data, r, w_indptr, w_indices, w_data, acc):
    """acc[:] = x_r @ W (acc must be zero on entry)."""
    for p in range(indptr[r], indptr[r + 1]):
        x = np.float64(data[p])
        if x == 0:
            continue
        j = indices[p]
        for q in range(w_indptr[j], w_indptr[j + 1]):
            acc[w_indices[q]] += x * w_data[q]


@nb.njit(cache=True, inline="always")
def _standardise_set(acc, base, n_ctrl, mu, sqrt_ratio, cbuf):
    """Aligned control scores of one set into cbuf; returns (mean, sd) over controls."""
    m = 0.0
    for i in range(n_ctrl):
        c = base + 1 + i
        v = (acc[c] - mu[c]) / sqrt_ratio[c]
        cbuf[i] = v
        m += v
    m /= n_ctrl
    ss = 0.0
    for i in range(n_ctrl):
        d = cbuf[i] - m
        ss += d * d
    sd = np.sqrt(ss / n_ctrl)
    if not sd > 0:
        sd = 1.0
    return m, sd


@nb.njit(parallel=True, cache=True)
def score_rows(indptr, indices, data, r0, r1, w_indptr, w_indices, w_data, n_sets, n_ctrl,
               mu, sqrt_ratio, norm1, sig_zero, ctrl_norm):
    """First pass over rows ``r0:r1`` of a CSR chunk.

    Writes, for row ``r`` (output row ``r - r0``) and set ``s``: ``norm1[., s]`` the
    signature score after centring and cell-wise standardisation, ``sig_zero[., s]`` whether
    the raw signature score is exactly 0, and ``ctrl_norm[., s * n_ctrl + i]`` the
    standardised control scores (before the second centring).
    """
    k_cols = n_sets * (1 + n_ctrl)
    n_rows = r1 - r0
    n_blocks = (n_rows + _BLOCK - 1) // _BLOCK
    for bb in nb.prange(n_blocks):
        acc = np.zeros(k_cols)
        cbuf = np.empty(n_ctrl)
        for rr in range(bb * _BLOCK, min(n_rows, (bb + 1) * _BLOCK)):
            acc[:] = 0.0
            _row_scores(indptr, indices, data, r0 + rr, w_indptr, w_indices, w_data, acc)
            for s in range(n_sets):
                base = s * (1 + n_ctrl)
                m, sd = _standardise_set(acc, base, n_ctrl, mu, sqrt_ratio, cbuf)
                raw = acc[base]
                sig_zero[rr, s] = raw == 0
                norm1[rr, s] = ((raw - mu[base]) - m) / sd
                o = s * n_ctrl
                for i in range(n_ctrl):
                    ctrl_norm[rr, o + i] = (cbuf[i] - m) / sd
    return 0


@nb.njit(parallel=True, cache=True)
def colsum_min_update(ctrl_norm, n_rows, colsum, colmin):
    """colsum[j] += ctrl_norm[r, j] in row order; colmin[j] = min(...). Parallel over j."""
    n_cols = ctrl_norm.shape[1]
    for j in nb.prange(n_cols):
        s = colsum[j]
        mn = colmin[j]
        for r in range(n_rows):
            v = ctrl_norm[r, j]
            s += v
            if v < mn:
                mn = v
        colsum[j] = s
        colmin[j] = mn
    return 0


@nb.njit(cache=True, inline="always")
def _count_le(sorted_arr, value):
    """Number of entries of sorted_arr that are <= value (searchsorted side='right')."""
    lo = 0
    hi = sorted_arr.shape[0]
    while lo < hi:
        mid = (lo + hi) >> 1
        if sorted_arr[mid] <= value:
            lo = mid + 1
        else:
            hi = mid
    return lo


@nb.njit(parallel=True, cache=True)
def null_positions(indptr, indices, data, r0, r1, w_indptr, w_indices, w_data, n_sets,
                   n_ctrl, mu, sqrt_ratio, colmean, zero_value, sorted_final, pos):
    """Second pass: place every null (control) score of rows ``r0:r1`` among the sorted
    final signature scores.

    The null value of control i of set s is its standardised score minus the control's mean
    over cells, or ``zero_value[s]`` when its raw score is exactly 0 (scDRS). ``pos[., s *
    n_ctrl + i]`` receives the number of final scores of set s that are <= the null value.
    """
    k_cols = n_sets * (1 + n_ctrl)
    n_rows = r1 - r0
    n_blocks = (n_rows + _BLOCK - 1) // _BLOCK
    for bb in nb.prange(n_blocks):
        acc = np.zeros(k_cols)
        cbuf = np.empty(n_ctrl)
        for rr in range(bb * _BLOCK, min(n_rows, (bb + 1) * _BLOCK)):
            acc[:] = 0.0
            _row_scores(indptr, indices, data, r0 + rr, w_indptr, w_indices, w_data, acc)
            for s in range(n_sets):
                base = s * (1 + n_ctrl)
                m, sd = _standardise_set(acc, base, n_ctrl, mu, sqrt_ratio, cbuf)
                srt = sorted_final[s]
                o = s * n_ctrl
                for i in range(n_ctrl):
                    if acc[base + 1 + i] == 0:
                        t = zero_value[s]
                    else:
                        t = (cbuf[i] - m) / sd - colmean[o + i]
                    pos[rr, o + i] = _count_le(srt, t)
    return 0


@nb.njit(parallel=True, cache=True)
def hist_update(pos, n_rows, n_sets, n_ctrl, hist):
    """hist[s, pos] += 1 for every null score (integer counts: order-free). Parallel over s."""
    for s in nb.prange(n_sets):
        o = s * n_ctrl
        for r in range(n_rows):
            for i in range(n_ctrl):
                hist[s, pos[r, o + i]] += 1
    return 0
