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

_LANES = 8
_GROUP = 8 * _LANES  # rows per parallel task


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


@nb.njit(parallel=True, nogil=True, cache=True)
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
def _block_raw(indptr, indices, data, r_start, n_lanes, c_ptr, c_genes, c_w, xd, acc):
    """acc[b, c] = x_{r_start + b} @ W[:, c] for b < n_lanes (a block of up to 8 rows).

    The rows are spread into ``xd`` (genes × _LANES, zero on entry and on exit); every column
    then gathers its genes in CSC order, all lanes at once. Each lane's sum runs over the
    column's genes in a fixed order, so a row's scores do not depend on its block (unused
    lanes hold zeros; ``acc`` must have 8 rows).
    """
    for b in range(n_lanes):
        r = r_start + b
        for p in range(indptr[r], indptr[r + 1]):
            xd[indices[p], b] = np.float64(data[p])
    for c in range(c_ptr.shape[0] - 1):
        t0 = t1 = t2 = t3 = t4 = t5 = t6 = t7 = 0.0
        for q in range(c_ptr[c], c_ptr[c + 1]):
            g = c_genes[q]
            w = c_w[q]
            t0 += xd[g, 0] * w
            t1 += xd[g, 1] * w
            t2 += xd[g, 2] * w
            t3 += xd[g, 3] * w
            t4 += xd[g, 4] * w
            t5 += xd[g, 5] * w
            t6 += xd[g, 6] * w
            t7 += xd[g, 7] * w
        acc[0, c] = t0
        acc[1, c] = t1
        acc[2, c] = t2
        acc[3, c] = t3
        acc[4, c] = t4
        acc[5, c] = t5
        acc[6, c] = t6
        acc[7, c] = t7
    for b in range(n_lanes):
        r = r_start + b
        for p in range(indptr[r], indptr[r + 1]):
            xd[indices[p], b] = 0.0


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


@nb.njit(parallel=True, nogil=True, cache=True)
def score_rows(indptr, indices, data, r0, r1, n_vars, c_ptr, c_genes, c_w, n_sets, n_ctrl,
               mu, sqrt_ratio, norm1, sig_zero, ctrl_norm):
    """First pass over rows ``r0:r1`` of a CSR chunk (W given as CSC: c_ptr, c_genes, c_w).

    Writes, for row ``r`` (output row ``r - r0``) and set ``s``: ``norm1[., s]`` the
    signature score after centring and cell-wise standardisation, ``sig_zero[., s]`` whether
    the raw signature score is exactly 0, and ``ctrl_norm[., s * n_ctrl + i]`` the
    standardised control scores (before the second centring).
    """
    k_cols = n_sets * (1 + n_ctrl)
    n_rows = r1 - r0
    n_groups = (n_rows + _GROUP - 1) // _GROUP
    for gg in nb.prange(n_groups):
        xd = np.zeros((n_vars, _LANES))
        acc = np.empty((_LANES, k_cols))
        cbuf = np.empty(n_ctrl)
        for lo in range(gg * _GROUP, min(n_rows, (gg + 1) * _GROUP), _LANES):
            n_lanes = min(n_rows, lo + _LANES) - lo
            _block_raw(indptr, indices, data, r0 + lo, n_lanes, c_ptr, c_genes, c_w, xd, acc)
            for b in range(n_lanes):
                rr = lo + b
                row = acc[b]
                for s in range(n_sets):
                    base = s * (1 + n_ctrl)
                    m, sd = _standardise_set(row, base, n_ctrl, mu, sqrt_ratio, cbuf)
                    raw = row[base]
                    sig_zero[rr, s] = raw == 0
                    norm1[rr, s] = ((raw - mu[base]) - m) / sd
                    o = s * n_ctrl
                    for i in range(n_ctrl):
                        ctrl_norm[rr, o + i] = (cbuf[i] - m) / sd
    return 0


@nb.njit(parallel=True, nogil=True, cache=True)
def colsum_min_update(ctrl_norm, n_rows, colsum, colmin):
    """colsum[j] += ctrl_norm[r, j] in row order; colmin[j] = min(...).

    Parallel over blocks of columns; each column is summed over rows in row order.
    """
    n_cols = ctrl_norm.shape[1]
    width = 512
    for cb in nb.prange((n_cols + width - 1) // width):
        c0 = cb * width
        c1 = min(n_cols, c0 + width)
        for r in range(n_rows):
            for j in range(c0, c1):
                v = ctrl_norm[r, j]
                colsum[j] += v
                if v < colmin[j]:
                    colmin[j] = v
    return 0


@nb.njit(cache=True, inline="always")
def _count_le(srt, value, table, e0, inv_w):
    """Number of entries of the sorted ``srt`` that are <= value (exact).

    ``table[g]`` is the count of entries <= ``e0 + g / inv_w`` (g = 0..G); it narrows the
    binary search to three buckets around the value's bucket.
    """
    n = srt.shape[0]
    if n == 0 or value < srt[0]:
        return 0
    if value >= srt[n - 1]:
        return n
    n_buckets = table.shape[0] - 1
    g = np.int64((value - e0) * inv_w)
    if g < 0:
        g = 0
    if g > n_buckets - 1:
        g = n_buckets - 1
    lo = table[max(g - 1, 0)] if g > 0 else 0
    hi = table[min(g + 2, n_buckets)]
    if g + 2 >= n_buckets:
        hi = n
    # guard against rounding of the bucket index: fall back to the full range
    if (lo > 0 and srt[lo - 1] > value) or (hi < n and srt[hi] <= value):
        lo = 0
        hi = n
    while lo < hi:
        mid = (lo + hi) >> 1
        if srt[mid] <= value:
            lo = mid + 1
        else:
            hi = mid
    return lo


@nb.njit(parallel=True, nogil=True, cache=True)
def null_positions(indptr, indices, data, r0, r1, n_vars, c_ptr, c_genes, c_w, n_sets,
                   n_ctrl, mu, sqrt_ratio, colmean, zero_value, sorted_final, tables, e0,
                   inv_w, pos):
    """Second pass: place every null (control) score of rows ``r0:r1`` among the sorted
    final signature scores.

    The null value of control i of set s is its standardised score minus the control's mean
    over cells, or ``zero_value[s]`` when its raw score is exactly 0 (scDRS). ``pos[., s *
    n_ctrl + i]`` receives the number of final scores of set s that are <= the null value
    (``tables``, ``e0``, ``inv_w``: per-set bucket tables, see :func:`_count_le`).
    """
    k_cols = n_sets * (1 + n_ctrl)
    n_rows = r1 - r0
    n_groups = (n_rows + _GROUP - 1) // _GROUP
    for gg in nb.prange(n_groups):
        xd = np.zeros((n_vars, _LANES))
        acc = np.empty((_LANES, k_cols))
        cbuf = np.empty(n_ctrl)
        for lo in range(gg * _GROUP, min(n_rows, (gg + 1) * _GROUP), _LANES):
            n_lanes = min(n_rows, lo + _LANES) - lo
            _block_raw(indptr, indices, data, r0 + lo, n_lanes, c_ptr, c_genes, c_w, xd, acc)
            for b in range(n_lanes):
                rr = lo + b
                row = acc[b]
                for s in range(n_sets):
                    base = s * (1 + n_ctrl)
                    m, sd = _standardise_set(row, base, n_ctrl, mu, sqrt_ratio, cbuf)
                    srt = sorted_final[s]
                    tab = tables[s]
                    o = s * n_ctrl
                    for i in range(n_ctrl):
                        if row[base + 1 + i] == 0:
                            t = zero_value[s]
                        else:
                            t = (cbuf[i] - m) / sd - colmean[o + i]
                        pos[rr, o + i] = _count_le(srt, t, tab, e0[s], inv_w[s])
    return 0


@nb.njit(parallel=True, nogil=True, cache=True)
def hist_update(pos, n_rows, n_sets, n_ctrl, hist):
    """hist[s, pos] += 1 for every null score (integer counts: order-free). Parallel over s."""
    for s in nb.prange(n_sets):
        o = s * n_ctrl
        for r in range(n_rows):
            for i in range(n_ctrl):
                hist[s, pos[r, o + i]] += 1
    return 0
