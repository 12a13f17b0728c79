#!/usr/bin/env python3
"""Independent numpy/scipy port of the scoring code of Lan et al. 2024.

Paper: "Sparse Autoencoders Reveal Universal Feature Spaces Across Large Language Models"
(Lan, Torr, Meek, Khakzar, Krueger, Barez; arXiv:2410.06981).
Code:  github.com/wlg1/univ_feat_geom, snapshot dbc2dde5f8ecc9fffc2ca5317a697d59e3419aa6.

The functions below port what the *code* does, not what the paper's prose says; every place where the
two differ is marked "PAPER vs CODE".  Source files referred to (paths inside that repository):

  NB_SCORES_PY  = main_results_nbs/getScores_pythia.ipynb        (the whole-space results, Pythia)
  NB_SCORES_GEM = main_results_nbs/getScores_gemma.ipynb         (the whole-space results, Gemma)
  NB_SEM_PY     = main_results_nbs/getSemanticScores_pythia.ipynb (semantic subspaces, Pythia)
  NB_SEM_GEM    = main_results_nbs/getSemanticScores_gemma.ipynb  (semantic subspaces, Gemma)
  (the same notebooks exported as .py live in _old_code/nbs_as_py/_main_results/)
  RP_EXPM       = run_pipeline/run_expm_fns.py   (later CLI pipeline, function run_expm)
  RP_CORR       = run_pipeline/correlation_fns.py
  RP_SIM        = run_pipeline/sim_fns.py         (SVCCA/RSA, copied from google/svcca and mklabunde/resi)
  RP_RAND       = run_pipeline/get_rand_fns.py
  RP_INTERP     = run_pipeline/interpret_fns.py

Conventions of this port
  * acts_a: (T, n_a) activations of SAE A, acts_b: (T, n_b); T = batch * seq_len tokens flattened
    row-major (position p <-> (p // seq_len, p % seq_len)), exactly as the code's
    ``orig.reshape(B*S, n)``.  Lan et al. use ``sae.pre_acts`` (= relu(W_enc(x - b_dec) + b_enc),
    the dense ReLU *before* TopK) for the EleutherAI Pythia TopK SAEs, and ``sae.encode`` (the SAE's
    codes) for the sae_lens Gemma SAEs.  Padded positions are included.
  * W_a: (n_a, d_a), W_b: (n_b, d_b): decoder matrices, one row per latent (``sae.W_dec``).
  * token_strings: list of ``batch`` lists of ``seq_len`` strings, token_strings[b][s] =
    ``tokenizer.decode(input_ids[b, s])`` (one id decoded alone, special tokens kept).
  * Randomness: every randomised function accepts explicit index arrays (perms / subsets) so a C++
    implementation can be compared deterministically; otherwise a seed reproduces the *kind* of RNG
    the code uses (Python ``random.shuffle`` / legacy ``np.random.choice``), which the code never seeds.

Run ``/usr/bin/python3 tests/golden/lan2024_reference.py`` for the self-test (exit code 0 on success).
"""

from __future__ import annotations

import random
import sys
from collections import Counter
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import scipy.stats

SOURCE_REPO = "wlg1/univ_feat_geom"
SOURCE_COMMIT = "dbc2dde5f8ecc9fffc2ca5317a697d59e3419aa6"

# ----------------------------------------------------------------------------------------------
# Constants copied from the code
# ----------------------------------------------------------------------------------------------

#: NB_SCORES_PY run_expm: ``junk_words``.  Exact whole-string comparison against decoded tokens.
#: '\\n' is the two characters backslash + n; '\n' a real newline.  Pythia's pad token is set to EOS,
#: so padding decodes to '<|endoftext|>' (in the list).  No BOS is added by the Pythia tokenizer.
NONCONCEPT_WORDS_PYTHIA: Tuple[str, ...] = (
    '.', '\\n', '\n', '', ' ', '-', '<bos>', ',', '!', '?', '<|endoftext|>', '|bos|')

#: NB_SCORES_GEM run_expm: as above plus '<pad>'.  NOTE: that notebook sets
#: ``tokenizer.pad_token = tokenizer.eos_token`` so Gemma padding decodes to '<eos>', which is NOT
#: in the list (only the shared-token requirement can remove such latents).
NONCONCEPT_WORDS_GEMMA: Tuple[str, ...] = NONCONCEPT_WORDS_PYTHIA + ('<pad>',)

#: RP_EXPM run_expm: ``nonconc_words`` (overrides the argument inside the function); same set as Gemma.
NONCONCEPT_WORDS_RUN_PIPELINE: Tuple[str, ...] = (
    '.', '\\n', '\n', '', ' ', '-', ',', '!', '?', '<|endoftext|>', '<bos>', '|bos|', '<pad>')

#: NB_SEM_PY / NB_SEM_GEM ``keywords`` dict (cell "concept keywords"), verbatim, including duplicates.
KEYWORDS: Dict[str, List[str]] = {
    'Time': [
        "day", "night", "week", "month", "year", "hour", "minute", "second", "now", "soon",
        "later", "early", "late", "morning", "evening", "noon", "midnight", "dawn", "dusk", "past",
        "present", "future", "before", "after", "yesterday", "today", "tomorrow", "next", "previous", "soon",
        "instant", "era", "age", "decade", "century", "millennium",
        "moment", "pause", "wait", "begin", "start", "end", "finish", "stop", "continue",
        "forever", "constant", "frequent",
        "occasion", "season", "spring", "summer", "autumn", "fall", "winter", "anniversary", "deadline",
        "schedule", "calendar", "clock", "duration", "interval", "epoch", "generation", "period", "cycle",
        "timespan", "shift", "quarter", "term", "phase", "lifetime", "century", "minute", "timeline", "delay",
        "prompt", "timely", "recurrent", "daily", "weekly", "monthly", "yearly", "annual", "biweekly",
        "timeframe"],
    'Calendar': [
        "day", "night", "week", "month", "year", "hour", "minute", "second",
        "morning", "evening", "noon", "midnight", "dawn", "dusk",
        "yesterday", "today", "tomorrow",
        "decade", "century", "millennium",
        "season", "spring", "summer", "autumn", "fall", "winter",
        "calendar", "clock",
        "century", "minute",
        "daily", "weekly", "monthly", "yearly", "annual", "biweekly", "timeframe"],
    'People/Roles': [
        "man", "girl", "boy", "kid", "dad", "mom", "son", "sis", "bro",
        "chief", "priest", "king", "queen", "duke", "lord", "friend", "clerk", "coach",
        "nurse", "doc", "maid", "clown", "guest", "peer",
        "punk", "nerd", "jock", "chief"],
    'Nature': [
        "tree", "grass", "stone", "rock", "cliff", "hill",
        "dirt", "sand", "mud", "wind", "storm", "rain", "cloud", "sun",
        "moon", "leaf", "branch", "twig", "root", "bark", "seed",
        "tide", "lake", "pond", "creek", "sea", "wood", "field",
        "shore", "snow", "ice", "flame", "fire", "fog", "dew", "hail",
        "sky", "earth", "glade", "cave", "peak", "ridge", "dust", "air",
        "mist", "heat"],
    'Emotions': [
        "joy", "glee", "pride", "grief", "fear", "hope", "love", "hate", "pain", "shame",
        "bliss", "rage", "calm", "shock", "dread", "guilt", "peace", "trust", "scorn", "doubt",
        "hurt", "wrath", "laugh", "cry", "smile", "frown", "gasp", "blush", "sigh", "grin",
        "woe", "spite", "envy", "glow", "thrill", "mirth", "bored", "cheer", "charm", "grace",
        "shy", "brave", "proud", "glad", "mad", "sad", "tense", "free", "kind"],
    'MonthNames': [
        "January", "February", "March", "April", "May", "June", "July", "August", "September",
        "October", "November", "December"],
    'Countries': [
        "USA", "Canada", "Brazil", "Mexico", "Germany", "France", "Italy", "Spain", "UK", "Australia",
        "China", "Japan", "India", "Russia", "Korea", "Argentina", "Egypt", "Iran", "Turkey"],
    'Biology': [
        "gene", "DNA", "RNA", "virus", "bacteria", "fungus",
        "brain", "lung", "blood", "bone", "skin", "muscle", "nerve", "vein", "organ",
        "evolve", "enzyme", "protein", "lipid", "membrane", "antibody", "antigen",
        "ligand", "substrate", "receptor", "cell", "chromosome", "nucleus", "cytoplasm"],
}

SimFn = Callable[[np.ndarray, np.ndarray], float]


# ----------------------------------------------------------------------------------------------
# 1. Activation correlation and the many-to-1 mapping
# ----------------------------------------------------------------------------------------------

def lan_normalize(acts: np.ndarray, ddof: int = 1, eps: float = 1e-8) -> np.ndarray:
    """Port of RP_CORR ``normalize_byChunks`` (also inline in NB_SEM_* ``batched_correlation``).

    ``(x - mean) / (std + 1e-8)`` per column, where ``std`` is torch's default **unbiased** std
    (ddof=1).  Chunking in the original does not change the result.  A constant column becomes 0.
    """
    acts = np.asarray(acts, dtype=np.float64)
    mean = acts.mean(axis=0, keepdims=True)
    std = acts.std(axis=0, ddof=ddof, keepdims=True)
    return (acts - mean) / (std + eps)


def lan_correlation_matrix(acts_a: np.ndarray, acts_b: np.ndarray, ddof: int = 1,
                           eps: float = 1e-8) -> np.ndarray:
    """Port of the matrix inside RP_CORR / NB_* ``batched_correlation``: (n_a, n_b).

    ``corr = normalized_A.T @ normalized_B / T``.  CODE DETAIL: the std is unbiased (ddof=1) but the
    sum is divided by T, so corr = Pearson * (T-1)/T (and the +1e-8 in the denominators); e.g. at
    T = 30,000 the factor is 0.99997.  A zero-variance column gives 0 with everything.  The original
    runs in float32 on GPU; this port uses float64.  Pass ddof=0, eps=0 for plain population Pearson.
    """
    za = lan_normalize(acts_a, ddof, eps)
    zb = lan_normalize(acts_b, ddof, eps)
    return za.T @ zb / za.shape[0]


def lan_batched_correlation(acts_a: Optional[np.ndarray] = None, acts_b: Optional[np.ndarray] = None,
                            corr: Optional[np.ndarray] = None, ddof: int = 1,
                            eps: float = 1e-8) -> Tuple[np.ndarray, np.ndarray]:
    """Port of ``batched_correlation(reshaped_activations_A, reshaped_activations_B)`` (RP_CORR, NB_*).

    Returns ``(max_corr_inds, max_corr_vals)``, both of length **n_b** (the second argument):
    ``max_corr_inds[j] = argmax_i corr[i, j]`` (an A latent index, ``torch.max(dim=0)``: first
    maximum on ties) and ``max_corr_vals[j]`` its (signed) value.

    DIRECTION: every **B** latent gets its most correlated **A** latent; several B latents may share
    one A latent.  The code calls this "manyA_1B" (RP_EXPM) and the paper says Pythia-70m/Gemma-1 (A)
    are the "many" side, but in the code the repeated index is the A latent, i.e. many B -> one A.
    PAPER vs CODE: §3 "for each feature in model A, we find its highest correlated feature in model B";
    the code does the opposite (for each B, the best A).  Give either the activations or ``corr``
    (n_a, n_b).
    """
    if corr is None:
        corr = lan_correlation_matrix(acts_a, acts_b, ddof, eps)
    corr = np.asarray(corr)
    inds = np.argmax(corr, axis=0)            # numpy argmax: first maximum, like torch.max(dim=0)
    vals = corr[inds, np.arange(corr.shape[1])]
    return inds.astype(np.int64), vals


# ----------------------------------------------------------------------------------------------
# 2. Top-activating tokens and the non-concept filter
# ----------------------------------------------------------------------------------------------

def lan_top_positions(acts: np.ndarray, k: int = 5) -> np.ndarray:
    """Port of ``highest_activating_tokens`` (RP_INTERP, NB_*): top-k flat positions per latent.

    ``feature_acts[:, :, f].reshape(-1).topk(k)`` over all batch*seq positions, **padding included**,
    from the same activations as the correlation (pre_acts for Pythia, encode for Gemma).
    Returns (n, k) int array of flat positions, in decreasing activation order.
    CODE DETAIL: ``torch.topk`` breaks ties in an unspecified order; this matters for latents with
    fewer than k non-zero activations (the remaining slots are zero-activation positions).  This port
    breaks ties by the earlier position (stable sort), which is what a deterministic C++ version
    should do; it cannot reproduce torch's arbitrary choice.
    """
    acts = np.asarray(acts)
    order = np.argsort(-acts, axis=0, kind='stable')[:k]     # (k, n)
    return order.T.copy()


def lan_store_top_toks(positions: Sequence[int], token_strings: Sequence[Sequence[str]]) -> List[str]:
    """Port of ``store_top_toks`` of NB_SCORES_* / RP_INTERP (used by the non-concept filter).

    One ``tokenizer.decode(batch_tokens[b, s])`` string per top position, **no escaping** (the
    '\\n' replacement is commented out in these files; it is active only in the semantic notebooks'
    ``store_top_toks``/``store_top_seqs``).
    """
    seq_len = len(token_strings[0])
    return [token_strings[int(p) // seq_len][int(p) % seq_len] for p in positions]


def lan_top_token_labels(acts: np.ndarray, token_strings: Sequence[Sequence[str]],
                         k: int = 5) -> List[List[str]]:
    """Top-k token strings of every latent (``highest_activating_tokens`` + ``store_top_toks``)."""
    pos = lan_top_positions(acts, k)
    return [lan_store_top_toks(pos[f], token_strings) for f in range(pos.shape[0])]


def lan_nonconcept_keep(top_a_labels: Sequence[str], top_b_labels: Sequence[str],
                        nonconcept_words: Sequence[str] = NONCONCEPT_WORDS_PYTHIA) -> bool:
    """Per-pair test inside NB_SCORES_* / RP_EXPM ``run_expm`` (the "filter" block).

    Keep the pair iff no non-concept word occurs (exact string equality with a whole decoded token)
    among the 5 top tokens of the A latent **or** of the B latent, **and**
    ``len(set(top_A_labels) & set(top_B_labels)) > 0`` (the two latents share at least one top
    token string).  Strings are compared, never token ids: e.g. '\n\n', ' .', '<eos>' are not removed.
    """
    for w in nonconcept_words:
        if w in top_a_labels or w in top_b_labels:
            return False
    return len(set(top_a_labels).intersection(set(top_b_labels))) > 0


def lan_nonconcept_filter(max_corr_inds: Sequence[int], top_tokens_a: Sequence[Sequence[str]],
                          top_tokens_b: Sequence[Sequence[str]],
                          nonconcept_words: Sequence[str] = NONCONCEPT_WORDS_PYTHIA,
                          manyA_1B: bool = True,
                          run_pipeline_for_else_bug: bool = False) -> Tuple[List[int], List[int]]:
    """Port of the "filter" loop of NB_SCORES_* ``run_expm`` (and RP_EXPM ``run_expm``).

    Iterates ``for feat_B, feat_A in enumerate(max_corr_inds)`` -- i.e. B latents in increasing index
    -- and keeps (feat_A, feat_B) if :func:`lan_nonconcept_keep`.  ``top_tokens_a[i]`` / ``top_tokens_b[j]``
    are the 5 top token strings of A latent i / B latent j (see :func:`lan_top_token_labels`).
    Returns (filt_A, filt_B) in that order.

    ``manyA_1B=False`` is RP_EXPM's other branch (``batched_correlation(B, A)``: max_corr_inds is then
    indexed by A and holds B latents).

    ``run_pipeline_for_else_bug=True`` reproduces RP_EXPM exactly: there the ``else:`` after the loop
    is attached to the ``for`` (a for-else), the loop never ``break``s, so the else always runs and
    overwrites the result with the unfiltered mapping
    (``filt_corr_ind_A = max_corr_inds; filt_corr_ind_B = list(range(len(max_corr_inds)))``):
    the non-concept filter of run_pipeline/ is a no-op.  (In the manyA_1B=False branch these
    overwritten lists are even swapped in meaning.)  The notebooks have no such else.
    """
    filt_a: List[int] = []
    filt_b: List[int] = []
    for corr_ind_feat, corr_val_feat in enumerate(max_corr_inds):
        if manyA_1B:
            feat_b, feat_a = corr_ind_feat, int(corr_val_feat)
        else:
            feat_a, feat_b = corr_ind_feat, int(corr_val_feat)
        if lan_nonconcept_keep(top_tokens_a[feat_a], top_tokens_b[feat_b], nonconcept_words):
            filt_a.append(feat_a)
            filt_b.append(feat_b)
    if run_pipeline_for_else_bug:
        filt_a = [int(x) for x in max_corr_inds]
        filt_b = list(range(len(max_corr_inds)))
    return filt_a, filt_b


def lan_one_to_one_first(filt_a: Sequence[int], filt_b: Sequence[int], max_corr_inds: Sequence[int],
                         manyA_1B: bool = True) -> Tuple[List[int], List[int]]:
    """Port of the ``if oneToOne_bool:`` block of NB_SCORES_* / RP_EXPM ``run_expm``.

    Literal port::

        kept_modA_feats = [f for f, c in Counter(max_corr_inds).most_common() if c == 1]
        for ind_A, ind_B in zip(filt_A, filt_B):
            if ind_A in kept_modA_feats: keep
            elif ind_A not in seen: seen.add(ind_A); keep

    ``Counter`` is taken over the full (unfiltered) mapping, but an A latent with count 1 there can
    occur at most once in the filtered list, so the rule is exactly: **keep the first pair of every A
    latent in the filtered list's order (= lowest B index), drop later ones** -- not the most
    correlated one.  PAPER vs CODE: App. E speaks of "removing many-to-1 mappings"; the code keeps
    one (the first) B per A.  With manyA_1B=False the roles of A and B swap (dedupe on B).
    """
    kept = set(f for f, c in Counter(int(x) for x in max_corr_inds).most_common() if c == 1)
    out_a: List[int] = []
    out_b: List[int] = []
    seen = set()
    for ind_a, ind_b in zip(filt_a, filt_b):
        key = ind_a if manyA_1B else ind_b
        if key in kept:
            out_a.append(ind_a)
            out_b.append(ind_b)
        elif key not in seen:
            seen.add(key)
            out_a.append(ind_a)
            out_b.append(ind_b)
    return out_a, out_b


def lan_low_corr_cut(filt_a: Sequence[int], filt_b: Sequence[int], max_corr_vals: Sequence[float],
                     threshold: float = 0.1,
                     manyA_1B: bool = True) -> Tuple[List[int], List[int], List[float]]:
    """Port of the "low correlation filtering" block of NB_SCORES_* / RP_EXPM ``run_expm``.

    Keep a pair iff ``max_corr_vals[ind_B] > 0.1`` (strict; the B latent's max correlation, which is
    the pair's correlation).  It runs **after** the non-concept filter and after the 1-1 step, so an
    A latent whose first B has corr <= 0.1 is lost even if a later B had a higher one.
    (The semantic-subspace code has no such cut; _old_code/modal scripts use ``val > 0``.)
    """
    out_a, out_b, out_v = [], [], []
    for ind_a, ind_b in zip(filt_a, filt_b):
        val = float(max_corr_vals[ind_b] if manyA_1B else max_corr_vals[ind_a])
        if val > threshold:
            out_a.append(ind_a)
            out_b.append(ind_b)
            out_v.append(val)
    return out_a, out_b, out_v


def lan_pair_latents(max_corr_inds: Sequence[int], max_corr_vals: Sequence[float],
                     top_tokens_a: Optional[Sequence[Sequence[str]]] = None,
                     top_tokens_b: Optional[Sequence[Sequence[str]]] = None,
                     one_to_one: bool = True,
                     nonconcept_words: Optional[Sequence[str]] = NONCONCEPT_WORDS_PYTHIA,
                     corr_threshold: float = 0.1,
                     run_pipeline_for_else_bug: bool = False) -> Dict[str, object]:
    """The whole pairing of NB_SCORES_* ``run_expm``: filter -> 1-1 (first B per A) -> corr > 0.1.

    ``nonconcept_words=None`` skips the filter (then filt = the full mapping in B order).
    Returns pairs_a, pairs_b (rows of W_a / W_b to pair, in B-increasing order), vals and the counts
    the notebooks report (mean_actv_corr, num_feat_after_rmv_kw, num_feat_1_to_1, num_feat_kept,
    mean_actv_corr_filt).
    """
    max_corr_inds = [int(x) for x in max_corr_inds]
    out: Dict[str, object] = {"mean_actv_corr": float(np.mean(max_corr_vals))}
    if nonconcept_words is None:
        fa, fb = list(max_corr_inds), list(range(len(max_corr_inds)))
    else:
        fa, fb = lan_nonconcept_filter(max_corr_inds, top_tokens_a, top_tokens_b, nonconcept_words,
                                       True, run_pipeline_for_else_bug)
    out["num_feat_after_rmv_kw"] = len(fa)
    if one_to_one:
        fa, fb = lan_one_to_one_first(fa, fb, max_corr_inds)
        out["num_feat_1_to_1"] = len(fa)
    pa, pb, pv = lan_low_corr_cut(fa, fb, max_corr_vals, corr_threshold)
    out.update(pairs_a=pa, pairs_b=pb, vals=pv, num_feat_kept=len(pa),
               num_feat_A_unique=len(set(pa)),
               mean_actv_corr_filt=(float(np.mean(pv)) if pv else float('nan')))
    return out


# ----------------------------------------------------------------------------------------------
# 3. SVCCA (google/svcca cca_core + Lan's PCA cut) and RSA (mklabunde/resi)
# ----------------------------------------------------------------------------------------------

def lan_top_k_pca_comps(singular_values: np.ndarray, threshold: float = 0.99) -> int:
    """Port of RP_SIM ``top_k_pca_comps`` (identical in all notebooks).

    ::

        total_variance = sum(s**2); cumulative = cumsum(s**2 / total_variance)
        return argmax(cumulative >= threshold * total_variance) + 1

    CODE BUG: the cumulative sum is normalised (ends at 1) but compared with the *unnormalised*
    ``0.99 * total_variance``.  When total_variance > 1/0.99 (always for hundreds of unit-norm
    decoder rows) nothing satisfies it, argmax of an all-False array is 0, and **k = 1**.  Only
    when total_variance <= 1/0.99 ~= 1.0101 does it cut for real, at the first k whose cumulative
    variance fraction is >= 0.99 * total_variance.  PAPER vs CODE: the paper describes keeping informative SVD
    directions; in practice one direction is kept.
    """
    s = np.asarray(singular_values, dtype=np.float64)
    total_variance = np.sum(s ** 2)
    explained = (s ** 2) / total_variance
    cumulative = np.cumsum(explained)
    return int(np.argmax(cumulative >= threshold * total_variance) + 1)


def _positivedef_matrix_sqrt(array: np.ndarray) -> np.ndarray:
    """google/svcca ``positivedef_matrix_sqrt`` (eigh, sqrt of eigenvalues)."""
    w, v = np.linalg.eigh(array)
    wsqrt = np.sqrt(w)
    return np.dot(v, np.dot(np.diag(wsqrt), np.conj(v).T))


def lan_get_cca_similarity(acts1: np.ndarray, acts2: np.ndarray, epsilon: float = 0.0,
                           threshold: float = 0.98) -> Dict[str, object]:
    """Port of ``get_cca_similarity`` (RP_SIM, verbatim copy of google/svcca cca_core.py @1f3fbf1).

    acts: (num_neurons, num_datapoints).  np.cov (ddof=1) of the stacked inputs; sigma_xx, sigma_yy
    divided by their max |entry|, sigma_xy by sqrt(xmax*ymax); ``remove_small``: drop neurons whose
    rescaled variance < epsilon; add epsilon*I; pinv; matrix inverse square roots via eigh;
    ``s = |svd(invsqrt_xx @ sigma_xy @ invsqrt_yy)|``.  ``cca_coef1 = s`` (all min(kx, ky) values;
    the ``sum_threshold`` trimming only affects the unused "mean" entry).
    Asserts ``acts1.shape[0] < acts1.shape[1]`` like the original.
    """
    acts1 = np.asarray(acts1)
    acts2 = np.asarray(acts2)
    assert acts1.shape[1] == acts2.shape[1], "dimensions don't match"
    assert acts1.shape[0] < acts1.shape[1], "input must be number of neurons by datapoints"
    numx = acts1.shape[0]
    covariance = np.cov(acts1, acts2)
    sxx = covariance[:numx, :numx].copy()
    sxy = covariance[:numx, numx:].copy()
    syy = covariance[numx:, numx:].copy()
    xmax = np.max(np.abs(sxx))
    ymax = np.max(np.abs(syy))
    sxx /= xmax
    syy /= ymax
    sxy /= np.sqrt(xmax * ymax)
    x_idxs = np.abs(np.diagonal(sxx)) >= epsilon
    y_idxs = np.abs(np.diagonal(syy)) >= epsilon
    if not np.any(x_idxs) or not np.any(y_idxs):
        return {"cca_coef1": np.asarray(0.0), "x_idxs": x_idxs, "y_idxs": y_idxs}
    sxx = sxx[x_idxs][:, x_idxs]
    sxy = sxy[x_idxs][:, y_idxs]
    syy = syy[y_idxs][:, y_idxs]
    sxx = sxx + epsilon * np.eye(sxx.shape[0])
    syy = syy + epsilon * np.eye(syy.shape[0])
    invsqrt_xx = _positivedef_matrix_sqrt(np.linalg.pinv(sxx))
    invsqrt_yy = _positivedef_matrix_sqrt(np.linalg.pinv(syy))
    arr = np.dot(invsqrt_xx, np.dot(sxy, invsqrt_yy))
    s = np.abs(np.linalg.svd(arr, compute_uv=False))
    return {"cca_coef1": s, "x_idxs": x_idxs, "y_idxs": y_idxs}


def lan_svcca_details(X: np.ndarray, Y: np.ndarray, threshold: float = 0.99,
                      dtype=np.float64) -> Dict[str, object]:
    """Port of RP_SIM ``svcca(R, Rp, "nd")`` -> ``_svcca_original(R.T, Rp.T)``; returns k1, k2 too.

    X: (n, d_a), Y: (n, d_b), row r of X paired with row r of Y (decoder rows of the pairs).
    acts = X.T (d, n); centre each model dimension over the n pairs; thin SVD; k from
    :func:`lan_top_k_pca_comps` (k = 1 in practice); ``svacts = diag(s[:k]) @ V[:k]`` (k, n);
    ``get_cca_similarity(svacts1, svacts2, epsilon=1e-10)``; score = mean(cca_coef1).
    With k1 = k2 = 1 the score is |Pearson(PC1 scores of X, PC1 scores of Y)| / (1 + 1e-10).
    CODE DETAIL: the original SVD runs in the weights' dtype (float32); this port uses ``dtype``.
    """
    acts1 = np.asarray(X, dtype=dtype).T
    acts2 = np.asarray(Y, dtype=dtype).T
    c1 = acts1 - np.mean(acts1, axis=1, keepdims=True)
    c2 = acts2 - np.mean(acts2, axis=1, keepdims=True)
    _, s1, v1 = np.linalg.svd(c1, full_matrices=False)
    _, s2, v2 = np.linalg.svd(c2, full_matrices=False)
    k1 = lan_top_k_pca_comps(s1, threshold)
    k2 = lan_top_k_pca_comps(s2, threshold)
    sv1 = np.dot(s1[:k1] * np.eye(k1), v1[:k1])
    sv2 = np.dot(s2[:k2] * np.eye(k2), v2[:k2])
    res = lan_get_cca_similarity(sv1, sv2, epsilon=1e-10)
    return {"score": float(np.mean(res["cca_coef1"])), "k1": k1, "k2": k2,
            "cca_coef": np.asarray(res["cca_coef1"])}


def lan_svcca(X: np.ndarray, Y: np.ndarray, threshold: float = 0.99) -> float:
    """Port of RP_SIM / NB_* ``svcca(R, Rp, "nd")`` (see :func:`lan_svcca_details`)."""
    return lan_svcca_details(X, Y, threshold)["score"]


def lan_rsa(X: np.ndarray, Y: np.ndarray) -> float:
    """Port of RP_SIM / NB_* ``representational_similarity_analysis(R, Rp, "nd")`` (defaults
    inner="correlation", outer="spearman"; from mklabunde/resi).

    Each row (one latent's decoder vector) is centred over its own d entries; S = 1 - sklearn cosine
    distance of the centred rows = Pearson correlation between rows (sklearn clips the distance to
    [0, 2]; a zero row has similarity 0; the diagonal is dropped anyway); ``squareform(S,
    checks=False)`` takes the strict upper triangle (i < j, row-major); score =
    ``scipy.stats.spearmanr(S, Sp).statistic`` (average ranks for ties).
    PAPER vs CODE: §3 says the RDM is computed "using Euclidean Distance" (and Pearson inner /
    Spearman outer); the code uses Pearson-correlation similarity, no Euclidean distance.
    Not invariant to rotations of the model basis (row centring), unlike SVCCA.
    """
    def rsm_upper(R: np.ndarray) -> np.ndarray:
        R = np.asarray(R, dtype=np.float64)
        R = R - R.mean(axis=1, keepdims=True)
        norms = np.linalg.norm(R, axis=1)
        norms[norms == 0.0] = 1.0                       # sklearn.preprocessing.normalize
        Rn = R / norms[:, None]
        S = 1.0 - np.clip(1.0 - Rn @ Rn.T, 0.0, 2.0)
        iu = np.triu_indices(S.shape[0], k=1)
        return S[iu]
    return float(scipy.stats.spearmanr(rsm_upper(X), rsm_upper(Y)).statistic)


# ----------------------------------------------------------------------------------------------
# 4. Permutation tests
# ----------------------------------------------------------------------------------------------

def lan_pvalue(null_scores: Sequence[float], observed: float) -> float:
    """The code's p-value (NB_SCORES_* ``svcca_rand_pval``/``rsa_rand_pval``, NB_SEM_GEM
    ``rand_shuff_pval``): ``np.mean(np.array(rand_scores) >= paired_score)`` -- no +1 correction,
    so it can be exactly 0.
    """
    return float(np.mean(np.asarray(null_scores) >= observed))


def lan_python_shuffles(n: int, num_runs: int, seed: Optional[int] = None) -> np.ndarray:
    """The permutations ``shuffle_rand`` would draw: ``random.shuffle(list(range(n)))`` num_runs
    times from one Python ``random`` stream (the code uses the unseeded global one)."""
    rng = random.Random(seed)
    perms = []
    for _ in range(num_runs):
        idx = list(range(n))
        rng.shuffle(idx)
        perms.append(idx)
    return np.asarray(perms, dtype=np.int64).reshape(num_runs, n)


def lan_shuffle_rand(X: np.ndarray, Y: np.ndarray, sim_fn: SimFn, num_runs: int = 100,
                     perms: Optional[np.ndarray] = None, seed: Optional[int] = None) -> List[float]:
    """Port of ``shuffle_rand`` (RP_RAND, NB_*) = "Test 1" (random re-pairing).

    For each run: ``row_idxs = list(range(num_feats)); random.shuffle(row_idxs);
    score = sim_fn(X, Y[row_idxs])`` -- X stays fixed, Y's rows are permuted.  Returns the list of
    null scores.  Pass ``perms`` (num_runs, n) to fix the permutations; otherwise they come from
    :func:`lan_python_shuffles` (seed). num_runs: 100 for the whole-space scores (NB_SCORES_*),
    1000 for semantic subspaces (NB_SEM_*; _old_code v7a uses 100 when > 100 pairs).
    """
    n = np.asarray(Y).shape[0]
    if perms is None:
        perms = lan_python_shuffles(n, num_runs, seed)
    return [float(sim_fn(X, np.asarray(Y)[np.asarray(p)])) for p in perms]


def lan_score_rand(W_a: np.ndarray, W_b: np.ndarray, num_feats: int, sim_fn: SimFn, num_runs: int = 100,
                   subsets: Optional[Sequence[Tuple[np.ndarray, np.ndarray]]] = None,
                   seed: Optional[int] = None, return_mean: bool = False):
    """Port of ``score_rand`` (RP_RAND, NB_*) -- the only "random subsets" baseline the code has.

    Each run: ``rand_modA_feats = np.random.choice(range(n_a), size=num_feats, replace=False)``,
    likewise for B, and ``sim_fn(W_a[rand_A], W_b[rand_B])``: two random subsets paired **row by row
    in draw order, with no correlation at all** (an exception just retries the run).  The notebooks'
    version returns only the mean (``return_mean=True``), RP_RAND returns the list.  In the published
    notebooks it is called only by unused/old code (NB_SEM_PY's old ``run_expm`` as
    "svcca_unpaired"); RP_EXPM has it commented out.
    PAPER vs CODE ("Test 2"): the paper's Test 2 draws subsets of the subspace sizes and pairs them by
    a correlation matrix between the two subsets; no public code does that (see
    :func:`paper_test2_random_subsets`).  ``subsets``: explicit list of (idx_a, idx_b) per run;
    otherwise a legacy ``np.random.RandomState(seed)`` reproduces np.random.choice's draws.
    """
    scores = []
    if subsets is None:
        rs = np.random.RandomState(seed)
        subsets = []
        for _ in range(num_runs):
            ia = rs.choice(W_a.shape[0], size=num_feats, replace=False)
            ib = rs.choice(W_b.shape[0], size=num_feats, replace=False)
            subsets.append((ia, ib))
    for ia, ib in subsets:
        scores.append(float(sim_fn(np.asarray(W_a)[np.asarray(ia)], np.asarray(W_b)[np.asarray(ib)])))
    return float(np.mean(scores)) if return_mean else scores


def lan_score_rand_corr(W_a: np.ndarray, W_b: np.ndarray, num_feats: int, global_inds: Sequence[int],
                        sim_fn: SimFn, num_runs: int = 100,
                        b_subsets: Optional[Sequence[np.ndarray]] = None,
                        seed: Optional[int] = None) -> List[float]:
    """Port of ``score_rand_corr`` (NB_SEM_*; called only in _old_code semantic notebooks, commented
    out in the final ones): a random subset of B latents of size num_feats drawn from the **whole**
    SAE B, each paired with its **global** argmax A latent (``global_inds`` = the full-space
    ``max_corr_inds``), scored.  This is "random subsets of the already-paired whole mapping" (no
    1-1 step, no filter) -- a different test from the paper's Test 2.
    """
    gi = np.asarray(global_inds)
    if b_subsets is None:
        rs = np.random.RandomState(seed)
        b_subsets = [rs.choice(W_b.shape[0], size=num_feats, replace=False) for _ in range(num_runs)]
    return [float(sim_fn(np.asarray(W_a)[gi[np.asarray(ib)]], np.asarray(W_b)[np.asarray(ib)]))
            for ib in b_subsets]


# ----------------------------------------------------------------------------------------------
# 5. Semantic subspaces (NB_SEM_PY / NB_SEM_GEM ``run_semantic_subspace_expms``)
# ----------------------------------------------------------------------------------------------

def _sem_escape(tok: str) -> str:
    # NB_SEM_*: tokenizer.decode([id]).replace("\n", "\\n").replace("<|BOS|>", "|BOS|")
    return tok.replace("\n", "\\n").replace("<|BOS|>", "|BOS|")


def lan_store_top_seqs(positions: Sequence[int],
                       token_strings: Sequence[Sequence[str]]) -> List[Tuple[str, str]]:
    """Port of NB_SEM_* ``store_top_seqs``: one (seq, topTok) per top position.

    Window: ``range(max(s - 2, 0), min(s + 2, seq_len))`` -- i.e. tokens s-2, s-1, s, s+1
    (**not ±2**: Python's range excludes s+2), within the same sequence.  Each token decoded alone,
    newline -> the two characters '\\n', '<|BOS|>' -> '|BOS|', concatenated with no separator.
    topTok = the escaped token at s.
    """
    seq_len = len(token_strings[0])
    out = []
    for p in positions:
        b, s = int(p) // seq_len, int(p) % seq_len
        seq = ""
        top_tok = ""
        for i in range(max(s - 2, 0), min(s + 2, seq_len)):
            t = _sem_escape(token_strings[b][i])
            if i == s:
                top_tok = t
            seq += t
        out.append((seq, top_tok))
    return out


def lan_top_seqs_all(acts: np.ndarray, token_strings: Sequence[Sequence[str]],
                     k: int = 5) -> List[List[Tuple[str, str]]]:
    """``fList_model_X_seqs`` of NB_SEM_*: for every latent, store_top_seqs of its top-5 positions
    (``highest_activating_tokens`` on the same pre_acts/encode activations)."""
    pos = lan_top_positions(acts, k)
    return [lan_store_top_seqs(pos[f], token_strings) for f in range(pos.shape[0])]


def lan_find_indices_with_keyword_bySeqs(fList_seqs: Sequence[Sequence[Tuple[str, str]]],
                                         keyword: str) -> List[int]:
    """Port of NB_SEM_* ``find_indices_with_keyword_bySeqs``.

    A latent matches ``keyword`` if for at least one of its top-5 samples:
      1. ``topTok.replace(' ', '').lower() == keyword.lower()`` -- the **max-activating token itself**
         is the keyword (only ' ' is removed, case-insensitive), and
      2. some piece of ``seq.split(' ')`` (the 4-token window, split on single spaces), after
         removing '.', ',', '?', '!' and the two-character '\\n', equals the keyword
         case-insensitively (a whole-word test: ' birth'+'day' gives 'birthday', no match; other
         punctuation such as ';', ':', quotes, brackets or "'s" is not stripped, so 'day;' fails).
    Returns latent indices in increasing order.
    PAPER vs CODE: the paper says a latent is included if a keyword "appears at least once" in its
    top-5 tokens; the code additionally requires the keyword to be the top token of that sample and
    a whole word of the window.
    """
    kw = keyword.lower()
    out = []
    for feat_ind, lst in enumerate(fList_seqs):
        for seq, top_tok in lst:
            if kw != top_tok.replace(' ', '').lower():
                continue
            hit = False
            for word in seq.split(' '):
                word = word.replace('.', '').replace(',', '').replace('?', '').replace('!', '') \
                           .replace('\\n', '')
                if kw == word.lower():
                    hit = True
                    break
            if hit:
                out.append(feat_ind)
                break
    return out


def lan_semantic_latents(fList_seqs_a, fList_seqs_b, keywords: Sequence[str],
                         order: str = "python_set") -> Tuple[List[int], List[int]]:
    """The keyword-latent sets of NB_SEM_* ``run_semantic_subspace_expms``, found in A and in B
    **independently** (no use of the cross-model mapping)::

        mixed_A, mixed_B = set(), set()
        for kw in keywords: mixed_B.update(find(fList_B, kw)); mixed_A.update(find(fList_A, kw))
        mixed_A, mixed_B = list(mixed_A), list(mixed_B)

    ``order="python_set"`` reproduces CPython's ``list(set)`` order exactly (it decides which B is
    "first" in the 1-1 step); ``order="sorted"`` is the portable alternative a C++ port can use
    (CODE DETAIL: the set order is hash-table order, not sorted, for large latent ids).
    """
    sa, sb = set(), set()
    for kw in keywords:
        sb.update(lan_find_indices_with_keyword_bySeqs(fList_seqs_b, kw))
        sa.update(lan_find_indices_with_keyword_bySeqs(fList_seqs_a, kw))
    if order == "python_set":
        return list(sa), list(sb)
    if order == "sorted":
        return sorted(sa), sorted(sb)
    raise ValueError(order)


def lan_subset_pairs(acts_a: np.ndarray, acts_b: np.ndarray, subset_a: Sequence[int],
                     subset_b: Sequence[int]) -> Optional[Tuple[List[int], List[int]]]:
    """Pairing of a semantic subspace in NB_SEM_* ``run_semantic_subspace_expms``.

    Requires > 2 latents on each side (else None, the code stores None).  Correlation is
    **recomputed on the subset columns only** (``batched_correlation(acts_A[:, mixed_A],
    acts_B[:, mixed_B])``, same normalisation as the full one); each B of the subset takes its most
    correlated A of the subset; 1-1 = first B per A in the subset order (Counter/seen code as in
    :func:`lan_one_to_one_first`); **no non-concept filter and no correlation threshold**.  Needs > 2
    pairs after that (else None).  Returns (original A indices, original B indices).
    """
    subset_a = list(subset_a)
    subset_b = list(subset_b)
    if len(subset_a) <= 2 or len(subset_b) <= 2:
        return None
    inds, _ = lan_batched_correlation(np.asarray(acts_a)[:, subset_a], np.asarray(acts_b)[:, subset_b])
    fa, fb = lan_one_to_one_first([int(x) for x in inds], list(range(len(inds))), inds)
    orig_a = [subset_a[i] for i in fa]
    orig_b = [subset_b[j] for j in fb]
    if len(orig_a) <= 2 or len(orig_b) <= 2:
        return None
    return orig_a, orig_b


def lan_semantic_scores(acts_a: np.ndarray, acts_b: np.ndarray, W_a: np.ndarray, W_b: np.ndarray,
                        fList_seqs_a, fList_seqs_b, keywords: Sequence[str], num_runs: int = 1000,
                        perms_svcca: Optional[np.ndarray] = None, perms_rsa: Optional[np.ndarray] = None,
                        seed: Optional[int] = None, order: str = "python_set") -> Dict[str, object]:
    """One concept category of NB_SEM_GEM ``run_semantic_subspace_expms`` (map_type '1To1').

    keyword latents (independently in A and B) -> :func:`lan_subset_pairs` -> paired SVCCA and RSA
    of ``W_a[orig_A]`` vs ``W_b[orig_B]`` -> Test 1 (``shuffle_rand``, num_runs = 1000) -> mean and
    p = mean(null >= paired).  (NB_SEM_PY computes the shuffles but has the mean/p-value lines
    commented out; NB_SEM_GEM and _old_code v7a store them.)  The code draws the SVCCA and the RSA
    permutations separately from one unseeded stream; pass ``perms_svcca`` / ``perms_rsa`` to fix
    them.  Test 2 is not in the code (see :func:`paper_test2_random_subsets`).
    """
    mixed_a, mixed_b = lan_semantic_latents(fList_seqs_a, fList_seqs_b, keywords, order)
    out: Dict[str, object] = {"mixed_A": mixed_a, "mixed_B": mixed_b}
    pairs = lan_subset_pairs(acts_a, acts_b, mixed_a, mixed_b)
    if pairs is None:
        out.update(num_unq_pairs=None, paired_SVCCA_1To1=None, paired_RSA_1To1=None)
        return out
    pa, pb = pairs
    X, Y = np.asarray(W_a)[pa], np.asarray(W_b)[pb]
    out.update(pairs_a=pa, pairs_b=pb, num_unq_pairs=len(set(pa)))
    rng_seed = seed
    for name, fn, perms in (("SVCCA", lan_svcca, perms_svcca), ("RSA", lan_rsa, perms_rsa)):
        paired = fn(X, Y)
        null = lan_shuffle_rand(X, Y, fn, num_runs, perms=perms, seed=rng_seed)
        if rng_seed is not None:
            rng_seed += 1
        out[f"paired_{name}_1To1"] = paired
        out[f"rand_shuff_mean_{name}_1To1"] = float(np.mean(null))
        out[f"rand_shuff_pval_{name}_1To1"] = lan_pvalue(null, paired)
        out[f"null_{name}"] = null
    return out


def paper_test2_random_subsets(acts_a: np.ndarray, acts_b: np.ndarray, W_a: np.ndarray, W_b: np.ndarray,
                               size_a: int, size_b: int, sim_fn: SimFn, num_runs: int = 1000,
                               subsets: Optional[Sequence[Tuple[np.ndarray, np.ndarray]]] = None,
                               seed: Optional[int] = None) -> List[float]:
    """**Paper prose, not code**: Test 2 as described in Lan et al. §3 ("mappings between randomly
    selected feature subsets of the same sizes as the semantic subspaces ... uses a correlation
    matrix only between the two subsets").  No function in the public repository implements it.

    Each run draws size_a A latents and size_b B latents (uniform, without replacement; sizes of the
    keyword sets ``mixed_A``/``mixed_B``), pairs them exactly like a subspace
    (:func:`lan_subset_pairs`: recomputed correlation, first B per A, no filter) and scores the pairs.
    Runs for which pairing yields <= 2 pairs give NaN.  ``subsets``: explicit (idx_a, idx_b) per run.
    p-value in the code's style: :func:`lan_pvalue` (drop NaN runs first).
    """
    if subsets is None:
        rs = np.random.RandomState(seed)
        subsets = [(rs.choice(W_a.shape[0], size=size_a, replace=False),
                    rs.choice(W_b.shape[0], size=size_b, replace=False)) for _ in range(num_runs)]
    scores = []
    for ia, ib in subsets:
        pairs = lan_subset_pairs(acts_a, acts_b, [int(i) for i in ia], [int(j) for j in ib])
        if pairs is None:
            scores.append(float('nan'))
            continue
        scores.append(float(sim_fn(np.asarray(W_a)[pairs[0]], np.asarray(W_b)[pairs[1]])))
    return scores


# ----------------------------------------------------------------------------------------------
# 6. Self-test
# ----------------------------------------------------------------------------------------------

def _check(cond: bool, msg: str) -> None:
    if not cond:
        raise AssertionError(msg)
    print(f"  ok  {msg}")


def _independent_cca(X: np.ndarray, Y: np.ndarray, k1: int, k2: int) -> np.ndarray:
    """Textbook SVCCA for the checks: project centred data on top-k PCs, QR, singular values."""
    Xc = X - X.mean(axis=0)
    Yc = Y - Y.mean(axis=0)
    Ux, sx, _ = np.linalg.svd(Xc, full_matrices=False)
    Uy, sy, _ = np.linalg.svd(Yc, full_matrices=False)
    Px = Ux[:, :k1] * sx[:k1]
    Py = Uy[:, :k2] * sy[:k2]
    Qx, _ = np.linalg.qr(Px)
    Qy, _ = np.linalg.qr(Py)
    return np.linalg.svd(Qx.T @ Qy, compute_uv=False)


def selftest() -> int:
    rng = np.random.default_rng(12345)
    print("lan2024_reference self-test")

    # --- correlation / mapping --------------------------------------------------------------
    batch, seq_len = 20, 50
    T = batch * seq_len
    n_a, n_b, d_a, d_b = 30, 45, 12, 20
    base = np.maximum(rng.normal(size=(T, n_a)) - 1.0, 0.0)          # sparse ReLU-like activations
    truth = rng.integers(0, n_a, size=n_b)                            # B latent j copies A latent truth[j]
    acts_a = base
    acts_b = np.maximum(base[:, truth] + 0.05 * rng.normal(size=(T, n_b)), 0.0)
    acts_b[:, 7] = 0.0                                                # a dead B latent
    C = lan_correlation_matrix(acts_a, acts_b)
    _check(C.shape == (n_a, n_b), "correlation matrix shape (n_a, n_b)")
    with np.errstate(invalid='ignore', divide='ignore'):
        ref = np.corrcoef(acts_a.T, acts_b.T)[:n_a, n_a:] * (T - 1) / T
    ok_cols = np.ones(n_b, bool)
    ok_cols[7] = False
    _check(np.allclose(C[:, ok_cols], ref[:, ok_cols], atol=1e-6), "corr = Pearson*(T-1)/T (ddof=1 std, /T)")
    _check(np.all(C[:, 7] == 0.0), "zero-variance latent has corr 0")
    inds, vals = lan_batched_correlation(acts_a, acts_b)
    _check(inds.shape == (n_b,) and vals.shape == (n_b,), "mapping has one A index per B latent")
    _check(np.all(inds[ok_cols] == truth[ok_cols]), "each B latent maps to the A latent it copies")
    _check(inds[7] == 0 and vals[7] == 0.0, "all-equal column -> first index (argmax ties)")
    i2, v2 = lan_batched_correlation(corr=C)
    _check(np.array_equal(i2, inds) and np.allclose(v2, vals), "mapping from a precomputed matrix")

    # --- tokens, non-concept filter, 1-1, 0.1 cut ------------------------------------------
    vocab = [" the", " day", " cat", "day", " sun", " run", "\n", ".", ",", " blue", " king", " sea"]
    tok_ids = rng.integers(0, len(vocab), size=(batch, seq_len))
    token_strings = [[vocab[t] for t in row] for row in tok_ids]
    top_a = lan_top_token_labels(acts_a, token_strings)
    top_b = lan_top_token_labels(acts_b, token_strings)
    _check(len(top_a) == n_a and all(len(x) == 5 for x in top_a), "5 top-token strings per latent")
    pos = lan_top_positions(acts_a, 5)
    _check(np.all(np.diff(acts_a[pos[0], 0]) <= 0), "top positions in decreasing activation order")
    _check(lan_nonconcept_keep([" cat"] * 5, [" cat", " sea", " sun", " sun", " sun"]),
           "pair with shared token and no non-concept token kept")
    _check(not lan_nonconcept_keep([" cat"] * 4 + ["\n"], [" cat"] * 5), "newline in A's top-5 -> dropped")
    _check(not lan_nonconcept_keep([" cat"] * 5, [" sea"] * 5), "no shared top token -> dropped")
    _check(lan_nonconcept_keep([" cat", "\n\n"], [" cat"]), "'\\n\\n' is not a non-concept string")
    _check(not lan_nonconcept_keep([" cat", "<|endoftext|>"], [" cat"]), "'<|endoftext|>' dropped")
    _check(lan_nonconcept_keep([" cat", "<eos>"], [" cat"], NONCONCEPT_WORDS_GEMMA),
           "Gemma pad '<eos>' is not in the list")

    fa, fb = lan_nonconcept_filter(inds, top_a, top_b)
    _check(fb == sorted(fb), "filter keeps B-increasing order")
    bug_a, bug_b = lan_nonconcept_filter(inds, top_a, top_b, run_pipeline_for_else_bug=True)
    _check(bug_a == list(inds) and bug_b == list(range(n_b)), "run_pipeline for-else bug: filter is a no-op")

    # 1-1 literal port == "first occurrence per A"
    for trial in range(50):
        m = rng.integers(0, 8, size=40)
        keep = rng.random(40) < 0.6
        la = [int(x) for x, k in zip(m, keep) if k]
        lb = [j for j, k in enumerate(keep) if k]
        oa, ob = lan_one_to_one_first(la, lb, m)
        seen, ea, eb = set(), [], []
        for a, b in zip(la, lb):
            if a not in seen:
                seen.add(a)
                ea.append(a)
                eb.append(b)
        assert (oa, ob) == (ea, eb)
    print("  ok  1-1 step == keep first B (lowest index) per A, 50 random cases")

    vals_toy = np.array([0.5, 0.05, 0.1, 0.9])
    ca, cb, cv = lan_low_corr_cut([0, 1, 2, 3], [0, 1, 2, 3], vals_toy)
    _check(cb == [0, 3], "corr cut is strict: 0.1 dropped, uses max_corr_vals[B]")
    # order matters: first B of A=0 has corr 0.05 -> A lost although later B has 0.9
    res = lan_pair_latents([0, 0], [0.05, 0.9], nonconcept_words=None, one_to_one=True)
    _check(res["pairs_a"] == [], "1-1 before the 0.1 cut: A lost when its first B is weak")
    res = lan_pair_latents(inds, vals, top_a, top_b, one_to_one=True)
    _check(len(set(res["pairs_a"])) == len(res["pairs_a"]) and all(v > 0.1 for v in res["vals"]),
           "pipeline output: unique A latents, all corr > 0.1")

    # --- SVCCA ------------------------------------------------------------------------------
    n = 60
    X = rng.normal(size=(n, d_a))
    X /= np.linalg.norm(X, axis=1, keepdims=True)                     # unit decoder rows
    Q, _ = np.linalg.qr(rng.normal(size=(d_a, d_a)))
    det = lan_svcca_details(X, X)
    _check(det["k1"] == 1 and det["k2"] == 1, "unit-norm rows: PCA cut keeps k = 1 (threshold bug)")
    _check(abs(det["score"] - 1.0) < 1e-8, "SVCCA(X, X) = 1")
    _check(abs(lan_svcca(X, X @ Q) - 1.0) < 1e-8, "SVCCA(X, X Q) = 1 for a rotation Q")
    Y = rng.normal(size=(n, d_b))
    Y /= np.linalg.norm(Y, axis=1, keepdims=True)
    Xc, Yc = X - X.mean(0), Y - Y.mean(0)
    pc1x = Xc @ np.linalg.svd(Xc, full_matrices=False)[2][0]
    pc1y = Yc @ np.linalg.svd(Yc, full_matrices=False)[2][0]
    r = abs(np.corrcoef(pc1x, pc1y)[0, 1])
    _check(abs(lan_svcca(X, Y) - r / (1 + 1e-10)) < 1e-9, "k = 1: SVCCA = |Pearson(PC1 scores)|")
    # general path: total variance <= 1/0.99 makes the cut a real one
    Xs = rng.normal(size=(n, d_a)) * np.linspace(2.0, 0.05, d_a)
    Ys = Xs @ rng.normal(size=(d_a, d_b)) + 0.3 * rng.normal(size=(n, d_b))
    Xs /= np.sqrt(np.sum((Xs - Xs.mean(0)) ** 2))                     # total variance = 1
    Ys /= np.sqrt(np.sum((Ys - Ys.mean(0)) ** 2))
    det = lan_svcca_details(Xs, Ys)
    _check(det["k1"] > 1 and det["k2"] > 1, f"total variance 1: cut keeps k1={det['k1']}, k2={det['k2']}")
    ind = _independent_cca(Xs, Ys, det["k1"], det["k2"])
    _check(np.allclose(np.sort(det["cca_coef"]), np.sort(ind), atol=1e-6),
           "general-k SVCCA == textbook CCA of the top-k PC projections")

    # --- RSA --------------------------------------------------------------------------------
    _check(abs(lan_rsa(X, X) - 1.0) < 1e-12, "RSA(X, X) = 1")
    _check(abs(lan_rsa(X, 3.0 * X + 2.0) - 1.0) < 1e-12, "RSA invariant to scale and constant shift")
    _check(abs(lan_rsa(X, X[:, rng.permutation(d_a)]) - 1.0) < 1e-12, "RSA invariant to column permutation")
    iu = np.triu_indices(n, 1)
    ref = scipy.stats.spearmanr(np.corrcoef(X)[iu], np.corrcoef(Y)[iu]).statistic
    _check(abs(lan_rsa(X, Y) - ref) < 1e-12, "RSA == spearman(upper(corrcoef rows X), upper(corrcoef rows Y))")
    print(f"  info RSA(X, X Q) = {lan_rsa(X, X @ Q):.4f} (row centring: not rotation invariant)")

    # --- permutation tests ------------------------------------------------------------------
    perms = lan_python_shuffles(n, 20, seed=7)
    _check(perms.shape == (20, n) and all(sorted(p) == list(range(n)) for p in perms), "perms are permutations")
    rnd = random.Random(7)
    idx = list(range(n))
    rnd.shuffle(idx)
    _check(list(perms[0]) == idx, "seeded perms == random.shuffle(list(range(n)))")
    null = lan_shuffle_rand(X, Y, lan_rsa, perms=perms)
    _check(np.allclose(null, [lan_rsa(X, Y[p]) for p in perms]), "Test 1 null == sim(X, Y[perm])")
    _check(lan_pvalue([0.1, 0.5, 0.7, 0.9], 0.7) == 0.5, "p = mean(null >= observed)")
    _check(lan_pvalue([0.1, 0.2], 0.9) == 0.0, "p can be exactly 0")
    sr = lan_score_rand(X, Y, 10, lan_svcca, num_runs=5, seed=3)
    rs = np.random.RandomState(3)
    ia = rs.choice(n, size=10, replace=False)
    ib = rs.choice(n, size=10, replace=False)
    _check(len(sr) == 5 and abs(sr[0] - lan_svcca(X[ia], Y[ib])) < 1e-12, "score_rand: random A/B subsets, row-paired")
    src = lan_score_rand_corr(rng.normal(size=(n_a, d_a)), rng.normal(size=(n_b, d_b)), 8, inds,
                              lan_rsa, num_runs=4, seed=1)
    _check(len(src) == 4, "score_rand_corr runs")

    # --- semantic subspaces -----------------------------------------------------------------
    ts = [["The", " sunny", " day", " was", " hot"],
          [" birth", "day", " party", "!", "\n"],
          [" Day", ".", " x", " y", " z"],
          [" a", " day", ";", " b", " c"]]
    s0 = lan_store_top_seqs([2], ts)[0]
    _check(s0 == ("The sunny day was", " day"), "window is tokens s-2..s+1 (4 tokens), topTok at s")
    s1 = lan_store_top_seqs([5 + 1], ts)[0]
    _check(s1 == (" birthday party", "day"), "window clipped at sequence start")
    f = [[s0], [s1], lan_store_top_seqs([10], ts), lan_store_top_seqs([16], ts),
         lan_store_top_seqs([1], ts)]
    hits = lan_find_indices_with_keyword_bySeqs(f, "day")
    _check(hits == [0, 2], "keyword: top token must be the keyword and a whole word ('birthday', 'day;' fail)")
    _check(lan_store_top_seqs([9], ts)[0] == (" party!\\n", "\\n"), "newline escaped to '\\\\n'")

    # end-to-end semantic run on synthetic data: give some latents keyword top tokens
    kw_vocab = [" day", " night", " cat", " sun", " the"]
    tok = rng.integers(0, len(kw_vocab), size=(batch, seq_len))
    tstr = [[kw_vocab[t] for t in row] for row in tok]
    day_pos = np.flatnonzero(tok.reshape(-1) == 0)
    night_pos = np.flatnonzero(tok.reshape(-1) == 1)
    A2 = 0.01 * rng.random((T, 12))
    B2 = 0.01 * rng.random((T, 14))
    for j in range(4):
        A2[day_pos[j * 5:(j + 1) * 5], j] += 5.0
        A2[night_pos[j * 5:(j + 1) * 5], 4 + j] += 5.0
    for j in range(5):
        B2[day_pos[j * 4:(j + 1) * 4], j] += 5.0
        B2[night_pos[j * 3:(j + 1) * 3], 5 + j] += 5.0
    cat_pos = np.flatnonzero(tok.reshape(-1) == 2)                    # the other latents fire on ' cat'
    for j in range(8, 12):
        A2[cat_pos[j * 5:(j + 1) * 5], j] += 5.0
    for j in range(10, 14):
        B2[cat_pos[j * 5:(j + 1) * 5], j] += 5.0
    fa2, fb2 = lan_top_seqs_all(A2, tstr), lan_top_seqs_all(B2, tstr)
    ma, mb = lan_semantic_latents(fa2, fb2, ["day", "night"], order="sorted")
    _check(ma == list(range(8)) and mb == list(range(10)), "keyword latents found in A and B independently")
    Wa2, Wb2 = rng.normal(size=(12, d_a)), rng.normal(size=(14, d_b))
    sc = lan_semantic_scores(A2, B2, Wa2, Wb2, fa2, fb2, ["day", "night"], num_runs=50, seed=11)
    pa = sc["pairs_a"]
    _check(len(pa) == len(set(pa)) and len(pa) >= 3, "semantic pairs: unique A latents (first B per A)")
    _check(0.0 <= sc["rand_shuff_pval_SVCCA_1To1"] <= 1.0 and len(sc["null_RSA"]) == 50, "semantic Test 1 runs")
    t2 = paper_test2_random_subsets(A2, B2, Wa2, Wb2, len(ma), len(mb), lan_svcca, num_runs=5, seed=2)
    _check(len(t2) == 5, "paper-prose Test 2 runs")

    print("all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(selftest())
