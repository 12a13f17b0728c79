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


# --- Activation statistics (METHODS.md §5) ---------------------------------------------------

def encode(x, sae):
    """The SAE's codes z (tokens, latents) in float64 from a dict of its file's arrays and attrs."""
    W_enc, b_enc, b_dec = (np.asarray(sae[k], dtype=np.float64) for k in ("W_enc", "b_enc", "b_dec"))
    xin = x - b_dec if sae.get("apply_b_dec_to_input", True) else x
    arch = sae["architecture"]
    if arch == "gated":
        gate = xin @ W_enc.T + b_enc
        mag = np.maximum(xin @ W_enc.T * np.exp(sae["r_mag"]) + sae["b_mag"], 0)
        return mag * (gate > 0)
    pre = xin @ W_enc.T + b_enc
    if arch == "relu":
        return np.maximum(pre, 0)
    if arch in ("jumprelu",) or (arch == "batchtopk" and "threshold" in sae):
        return pre * (pre > sae["threshold"])
    post = np.maximum(pre, 0)
    z = np.zeros_like(post)
    top = np.argsort(-post, axis=1, kind="stable")[:, : sae["k"]]
    rows = np.arange(len(post))[:, None]
    z[rows, top] = post[rows, top]
    return z


def dense_pre(x, sae):
    W_enc, b_enc, b_dec = (np.asarray(sae[k], dtype=np.float64) for k in ("W_enc", "b_enc", "b_dec"))
    xin = x - b_dec if sae.get("apply_b_dec_to_input", True) else x
    if sae["architecture"] == "gated":
        return np.maximum(xin @ W_enc.T * np.exp(sae["r_mag"]) + sae["b_mag"], 0)
    return np.maximum(xin @ W_enc.T + b_enc, 0)


def correlation(a, b):
    """Pearson correlation between the columns of a (T, n_a) and b (T, n_b); σ = 0 gives 0.
    The same quantity as np.corrcoef's off-diagonal block (population or sample σ cancel)."""
    ac, bc = a - a.mean(0), b - b.mean(0)
    sa, sb = np.sqrt((ac ** 2).mean(0)), np.sqrt((bc ** 2).mean(0))
    c = (ac.T @ bc) / len(a)
    with np.errstate(divide="ignore", invalid="ignore"):
        c = c / np.outer(sa, sb)
    c[~np.isfinite(c)] = 0
    c[sa <= 1e-12 * np.maximum(1, np.abs(a).max(0)), :] = 0
    c[:, sb <= 1e-12 * np.maximum(1, np.abs(b).max(0))] = 0
    return c


def mappings(c):
    """The four mappings of METHODS.md §5 from a correlation matrix c (n_a, n_b), as lists of (a, b)."""
    arg_ab, arg_ba = c.argmax(1), c.argmax(0)  # numpy: the lowest index among equal maxima
    many = [(int(arg_ba[j]), j) for j in range(c.shape[1])]
    best, first = {}, {}
    for a, b in many:
        if a not in first:
            first[a] = b
        if a not in best or c[a, b] > c[a, best[a]]:
            best[a] = b
    mutual = [(i, int(arg_ab[i])) for i in range(c.shape[0]) if arg_ba[arg_ab[i]] == i]
    return dict(many_to_one=many, one_to_one_best=sorted(best.items()), one_to_one_first=sorted(first.items()),
                mutual=mutual)


def top_positions(z, count=5):
    """Per latent the positions of its `count` largest z > 0 (ties: earlier position); -1 padding."""
    out = -np.ones((z.shape[1], count), dtype=np.int64)
    for i in range(z.shape[1]):
        fired = np.nonzero(z[:, i] > 0)[0]
        order = fired[np.lexsort((fired, -z[fired, i]))][:count]
        out[i, : len(order)] = order
    return out


NON_CONCEPT = {"", " ", "\n", "\\n", ".", ",", "!", "?", "-", "<s>", "</s>", "<unk>", "<pad>", "<bos>", "<eos>",
               "<|endoftext|>", "<|begin_of_text|>", "<|end_of_text|>"}


def piece(vocab, t):
    s = vocab[t]
    if len(s) == 6 and s.startswith("<0x") and s.endswith(">"):
        return chr(int(s[3:5], 16))
    return s


def non_concept_filter(pairs, strings_a, strings_b):
    """Lan et al.: drop a pair if either latent has a non-concept top token; keep it only if the two
    top-token sets share a string."""
    return [(a, b) for a, b in pairs
            if not (set(strings_a[a]) | set(strings_b[b])) & NON_CONCEPT and set(strings_a[a]) & set(strings_b[b])]
