"""Reference oracles for universae's tests, in numpy + h5py (Debian: python3-numpy, python3-h5py).

Version 1. Used by tests/golden and tests/e2e, run with /usr/bin/python3 (the pyenv python3 on
PATH has no numpy). Everything here is written from METHODS.md and DESIGN.md §4 independently
of the C++ code, so the tests compare two implementations.

    write_sae(path, W_enc, b_enc, W_dec, b_dec, **attrs)   an SAE file, format v1, as h5py writes it
    max_cosine(A, B)                                       METHODS.md §3 in float64
"""
import h5py
import numpy as np

VERSION = 1


def write_sae(path, W_enc, b_enc, W_dec, b_dec, architecture="topk", k=None, seed=0, dtype=np.float32, **extra):
    """Writes an SAE file in universae format v1 with h5py (not with universae)."""
    n_latents, d_in = W_dec.shape
    with h5py.File(path, "w") as f:
        f["W_enc"] = np.asarray(W_enc, dtype=dtype)
        f["b_enc"] = np.asarray(b_enc, dtype=dtype)
        f["W_dec"] = np.asarray(W_dec, dtype=dtype)
        f["b_dec"] = np.asarray(b_dec, dtype=dtype)
        f.attrs["format"] = "universae-sae"
        f.attrs["format_version"] = 1
        f.attrs["architecture"] = architecture
        f.attrs["d_in"] = d_in
        f.attrs["n_latents"] = n_latents
        if k is not None:
            f.attrs["k"] = k
        f.attrs["seed"] = seed
        f.attrs["hookpoint"] = "golden"
        f.attrs["model"] = "numpy"
        f.attrs["apply_b_dec_to_input"] = True
        for key, value in extra.items():
            f.attrs[key] = value
        f.attrs["complete"] = True


def unit_rows(M):
    M = np.asarray(M, dtype=np.float64)
    norms = np.linalg.norm(M, axis=1, keepdims=True)
    return np.divide(M, norms, out=np.zeros_like(M), where=norms > 0)  # zero rows: cosine 0


def max_cosine(A, B):
    """max_cos_ab, argmax_ab, max_cos_ba, argmax_ba, mcs_ab, mcs_ba (lowest-index argmax)."""
    S = unit_rows(A) @ unit_rows(B).T
    return dict(max_cos_ab=S.max(axis=1), argmax_ab=S.argmax(axis=1),
                max_cos_ba=S.max(axis=0), argmax_ba=S.argmax(axis=0),
                mcs_ab=S.max(axis=1).mean(), mcs_ba=S.max(axis=0).mean(), S=S)


def unambiguous(S, axis):
    """Mask of rows (axis=1) or columns (axis=0) whose best value beats the runner-up by > 1e-5,
    where any correct implementation must agree on the argmax."""
    top2 = -np.sort(-S, axis=axis).take([0, 1], axis=axis)
    gap = top2.take(0, axis=axis) - top2.take(1, axis=axis)
    return gap > 1e-5


def hungarian(A, B, tau=0.7, A_enc=None, B_enc=None):
    """METHODS.md §4 with scipy: decoder (A, B) and, if given, encoder rows matched separately.
    Returns the match of every A row (-1 when A is the larger SAE and the row is unmatched), the
    matched cosines, the objective, and the shared/equal fractions over the smaller SAE."""
    from scipy.optimize import linear_sum_assignment

    def match(X, Y):
        S = unit_rows(X) @ unit_rows(Y).T
        r, c = linear_sum_assignment(S, maximize=True)
        m = np.full(X.shape[0], -1, dtype=np.int64)
        cos = np.full(X.shape[0], np.nan)
        m[r], cos[r] = c, S[r, c]
        return m, cos, S[r, c].sum(), S

    out = dict(decoder=match(A, B))
    if A_enc is not None:
        out["encoder"] = match(A_enc, B_enc)
        (dm, dc, _, _), (em, ec, _, _) = out["decoder"], out["encoder"]
        both = (dm >= 0) & (em >= 0)
        n_small = min(A.shape[0], B.shape[0])
        out["shared_fraction"] = np.sum(both & (dc > tau) & (ec > tau)) / n_small
        out["equal_fraction"] = np.sum(both & (dm == em)) / n_small
    return out


def n_seed_overlap(decoders, encoders, tau=0.7):
    """N-seed overlap (METHODS.md §4) with scipy matchings: for each base SAE, how many others each
    latent is shared with; the mean histogram (fractions); and the fraction shared with none of the
    first m others (others in ensemble order), averaged over bases."""
    S = len(decoders)
    shared = {}
    for a in range(S):
        for b in range(a + 1, S):
            h = hungarian(decoders[a], decoders[b], tau, encoders[a], encoders[b])
            (dm, dc, _, _), (em, ec, _, _) = h["decoder"], h["encoder"]
            shared[a, b] = (dm >= 0) & (em >= 0) & (dc > tau) & (ec > tau)
            nb = decoders[b].shape[0]
            dec_b, enc_b = np.full(nb, -2.0), np.full(nb, -2.0)
            dec_b[dm[dm >= 0]], enc_b[em[em >= 0]] = dc[dm >= 0], ec[em >= 0]
            shared[b, a] = (dec_b > tau) & (enc_b > tau)
    hist = np.zeros((S, S), dtype=np.int64)
    unique = np.zeros(S - 1)
    for base in range(S):
        others = [o for o in range(S) if o != base]
        count = sum(shared[base, o].astype(np.int64) for o in others)
        hist[base] = np.bincount(count, minlength=S)
        anyshared = np.zeros(decoders[base].shape[0], dtype=bool)
        for m, o in enumerate(others):
            anyshared |= shared[base, o]
            unique[m] += np.mean(~anyshared) / S
    mean = np.mean(hist / np.array([d.shape[0] for d in decoders])[:, None], axis=0)
    return hist, mean, unique


def cca_similarity(acts1, acts2):
    """Mean canonical correlation, google/svcca cca_core.get_cca_similarity's algorithm with
    epsilon = 0: acts are (neurons, datapoints); covariances, Σxx^-1/2 Σxy Σyy^-1/2, its singular values."""
    x = acts1 - acts1.mean(axis=1, keepdims=True)
    y = acts2 - acts2.mean(axis=1, keepdims=True)
    n = x.shape[1]
    sxx, syy, sxy = x @ x.T / (n - 1), y @ y.T / (n - 1), x @ y.T / (n - 1)

    def inv_sqrt(m):
        w, v = np.linalg.eigh(m)
        return v @ np.diag(1.0 / np.sqrt(w)) @ v.T

    rho = np.linalg.svd(inv_sqrt(sxx) @ sxy @ inv_sqrt(syy), compute_uv=False)
    return np.clip(rho, 0, 1).mean()


def svcca(X, Y, variance=0.99):
    """SVCCA (METHODS.md §6): each side reduced to the fewest SVD directions explaining `variance`,
    then CCA. X, Y: (pairs, dims)."""
    def reduce(M):
        c = M - M.mean(axis=0)
        u, s, vt = np.linalg.svd(c, full_matrices=False)
        k = int(np.searchsorted(np.cumsum(s ** 2) / np.sum(s ** 2), variance) + 1)
        return (c @ vt[:k].T).T  # (k, pairs)
    return cca_similarity(reduce(X), reduce(Y))


def rsa(X, Y):
    """Spearman between the upper triangles of the row-Pearson matrices (scipy.stats.spearmanr)."""
    from scipy.stats import spearmanr
    iu = np.triu_indices(X.shape[0], k=1)
    return spearmanr(np.corrcoef(X)[iu], np.corrcoef(Y)[iu]).correlation


def linear_cka(X, Y):
    x, y = X - X.mean(axis=0), Y - Y.mean(axis=0)
    return np.linalg.norm(x.T @ y) ** 2 / (np.linalg.norm(x.T @ x) * np.linalg.norm(y.T @ y))


def mutual_knn(X, Y, k=10):
    def knn(M):
        u = unit_rows(M)
        s = u @ u.T
        np.fill_diagonal(s, -np.inf)
        return [set(np.argsort(-row, kind="stable")[:k]) for row in s]
    a, b = knn(X), knn(Y)
    return np.mean([len(p & q) / k for p, q in zip(a, b)])
