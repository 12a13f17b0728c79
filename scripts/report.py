#!/usr/bin/python3
"""The HTML report of `universae report` (h5py + matplotlib + pandas from Debian): one page over one
or many results files (a sweep's tasks and its across-task comparisons), with the papers' figures.

    /usr/bin/python3 scripts/report.py --out DIR RESULTS.h5 [RESULTS.h5 ...]

writes DIR/index.html, DIR/pairs.csv (one row per compared pair) and DIR/*.png. `universae report`
checks the inputs, runs this into DIR.partial and renames it, so a failed report leaves nothing.
The page uses only relative links: open DIR/index.html from disk, no server needed.
"""
import argparse
import html
import math
import os
import re
import sys

import h5py
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402



def attr(group, name, default=np.nan):
    value = group.attrs.get(name, default)
    return value.decode() if isinstance(value, bytes) else value


def save(fig, out, png, title=None, rect=None):
    """Finishes a figure: → (file name, no reason to skip). rect: tight_layout's box (room for a long suptitle)."""
    if title:
        fig.suptitle(title)
    fig.tight_layout(rect=rect)
    fig.savefig(os.path.join(out, png), dpi=110)
    plt.close(fig)
    return png, None


def labels_for(paths):
    """A short label per results file: its directory below the inputs' common directory (a sweep's
    task id, across_<key>/...), without the file name."""
    dirs = [os.path.dirname(os.path.abspath(p)) for p in paths]
    if len(dirs) == 1:
        return [os.path.basename(dirs[0]) or dirs[0]]
    common = os.path.commonpath(dirs)
    labels = [os.path.relpath(d, common) for d in dirs]
    return labels if len(set(labels)) == len(labels) else [os.path.relpath(p) for p in paths]


def short_hook(h):
    return h.replace(".hook_", ".").replace("blocks.", "L")


def layer_of(hookpoint):
    m = re.search(r"(?:blocks|layers)\.(\d+)", hookpoint or "")
    return int(m.group(1)) if m else -1


MODEL_SUFFIXES = (".bin", ".gguf", ".safetensors", ".pt", ".pth", ".ckpt")


def model_label(path):
    """A model's short name: a model file's stem (stories260K.bin → stories260K), a Hugging Face
    directory's name; "" for no path (results without `activations_model`)."""
    if not path:
        return ""
    trimmed = path.rstrip("/\\")
    name = os.path.basename(trimmed) or trimmed
    if path.endswith(("/", "\\")) or os.path.isdir(trimmed):
        return name
    stem, ext = os.path.splitext(name)
    if ext.lower() in MODEL_SUFFIXES:
        name = stem
    if name in ("model", "pytorch_model", "consolidated") and os.path.dirname(trimmed):
        name = os.path.basename(os.path.dirname(trimmed))  # .../<model dir>/model.safetensors
    return name


def summary_columns(f, path):
    """[(name, object, attribute)] of the file's /summary_columns (universae writes it with every results file)."""
    if "summary_columns" not in f:
        sys.exit(f"report: {path} has no /summary_columns (written by a universae before 0.2): compare again to rewrite it")
    c = f["summary_columns"].attrs
    text = [[v.decode() if isinstance(v, bytes) else str(v) for v in c[k]] for k in ("name", "object", "attribute")]
    return list(zip(*text))


def summary_object(f, pair_group, obj, a, b):
    """The group holding a summary column: below the pair's group, or absolute with {a}/{b} the SAEs' names
    ("/saes/{a}")."""
    if obj.startswith("/"):
        path = obj.replace("{a}", a).replace("{b}", b)
        return f[path] if path in f else None
    if not obj:
        return pair_group
    return pair_group[obj] if obj in pair_group else None


def load(paths):
    """→ (pairs DataFrame, saes DataFrame, overlap records, {(results, pair): matched decoder cosines},
    training-curve records)."""
    pair_rows, sae_rows, overlaps, matched_cos, curves = [], [], [], {}, []
    stability = []
    for path, label in zip(paths, labels_for(paths)):
        with h5py.File(path, "r") as f:
            columns = summary_columns(f, path)
            saes = {}
            for name, g in f.get("saes", {}).items():
                info = {"results": label, "sae": name, "path": attr(g, "path", ""),
                        "architecture": attr(g, "architecture", ""), "n_latents": int(attr(g, "n_latents", 0)),
                        "k": int(attr(g, "k", 0)), "seed": int(attr(g, "seed", 0)),
                        "hookpoint": attr(g, "hookpoint", ""), "baseline": bool(attr(g, "baseline", False)),
                        # The model the SAE's activations came from (a cross-model study compares several).
                        "model_path": attr(g, "activations_model", "")}
                if not info["hookpoint"] and os.path.exists(info["path"]):  # results written before the attribute
                    with h5py.File(info["path"], "r") as s:
                        info["hookpoint"] = attr(s, "hookpoint", "")
                info["frequency"] = g["frequency"][:] if "frequency" in g else None
                saes[name] = info
                sae_rows.append(info)
            for pair, g in f.get("pairs", {}).items():
                a, b = attr(g, "a", pair.split("--")[0]), attr(g, "b", pair.split("--")[-1])
                sa, sb = saes.get(a, {}), saes.get(b, {})
                row = {"results": label, "pair": pair, "a": a, "b": b, "baseline": bool(attr(g, "baseline", False)),
                       "n_latents_a": sa.get("n_latents"), "n_latents_b": sb.get("n_latents"),
                       "k_a": sa.get("k"), "k_b": sb.get("k"),
                       "hookpoint_a": sa.get("hookpoint", ""), "hookpoint_b": sb.get("hookpoint", ""),
                       "model_a": sa.get("model_path", ""), "model_b": sb.get("model_path", ""),
                       # Why the pair has no weight-space statistics (SAEs of different models), else "".
                       "weight_space_skipped": attr(g, "weight_space_skipped", "")}
                # Every summary column the file declares (/summary_columns: name, object, attribute), so a
                # statistic added to universae's registry reaches pairs.csv without a change here.
                for name, obj, attribute in columns:
                    holder = summary_object(f, g, obj, a, b)
                    if holder is not None and attribute in holder.attrs:
                        value = holder.attrs[attribute]
                        row[name] = float(value) if not isinstance(value, (bytes, str)) else value
                if "lap" in g:
                    row["threshold"] = attr(g["lap"], "threshold")
                    if "decoder_cos" in g["lap"]:
                        matched_cos[(label, pair)] = g["lap"]["decoder_cos"][:]
                pair_rows.append(row)
            if "training" in f and "tokens" in f["training"]:
                t = f["training"]
                first = next(iter(saes.values()), {})
                curves.append({"results": label, "tokens": t["tokens"][:],
                               "label": f"{short_hook(first.get('hookpoint', ''))} n={first.get('n_latents', '')}",
                               "hookpoint": first.get("hookpoint", ""), "n_latents": first.get("n_latents", 0),
                               **{k: t[k][:] for k in ("mean_cos_decoder", "shared_fraction", "decoder_mcs")}})
            for name, g in f.get("stability", {}).items():
                if name != "pairs" and "stable_fraction" in g:
                    stability.append({"results": label, "sae": name, "stable": g["stable_fraction"][:],
                                      "energy": g["energy"][:] if "energy" in g else None})
            if "overlap" in f:
                o = f["overlap"]
                overlaps.append({"results": label, "n_saes": int(attr(o, "n_saes", 0)),
                                 "unique_fraction": o["unique_fraction"][:], "histogram_mean": o["histogram_mean"][:]})
    # Model paths → labels (file stem or directory name); two paths with one label keep their paths.
    model_paths = sorted({r["model_path"] for r in sae_rows if r["model_path"]})
    labels = {p: model_label(p) for p in model_paths}
    for p in model_paths:
        if sum(1 for q in model_paths if labels[q] == labels[p]) > 1:
            labels[p] = p
    labels[""] = ""
    for r in sae_rows:
        r["model"] = labels[r["model_path"]]
    for r in pair_rows:
        r["model_a"], r["model_b"] = labels.get(r["model_a"], r["model_a"]), labels.get(r["model_b"], r["model_b"])
    saes_df = pd.DataFrame(sae_rows)
    return pd.DataFrame(pair_rows), saes_df, overlaps, matched_cos, curves, stability


def across_models(pairs):
    """Mask: pairs of SAEs of two different models (both known). Results without the models' names
    (written before `activations_model`) count as one model."""
    if pairs.empty or "model_a" not in pairs:
        return pd.Series(False, index=pairs.index, dtype=bool)
    return (pairs.model_a != "") & (pairs.model_b != "") & (pairs.model_a != pairs.model_b)


def seed_pairs(pairs):
    """Pairs of two trained SAEs of one configuration (the seed question): same size, k and hookpoint."""
    if pairs.empty:
        return pairs
    same = ((pairs.n_latents_a == pairs.n_latents_b) & (pairs.k_a == pairs.k_b) &
            (pairs.hookpoint_a == pairs.hookpoint_b) & ~across_models(pairs))
    return pairs[same & ~pairs.baseline]


def figure_sharing(pairs, out):
    """Shared fraction and mean Hungarian cosine against the number of latents and against k
    (Paulo & Belrose), random-init baselines dashed."""
    sp = seed_pairs(pairs)
    if sp.empty or "shared_fraction" not in sp:
        return None, "no seed pairs with a Hungarian matching"
    base = pairs[pairs.baseline] if "shared_fraction" in pairs else pairs.iloc[0:0]
    fig, axes = plt.subplots(2, 2, figsize=(11, 8))
    for row, (x, group, xlabel) in enumerate((("n_latents_a", "k_a", "number of latents"), ("k_a", "n_latents_a", "k"))):
        for col, (y, ylabel) in enumerate((("shared_fraction", "shared fraction (both cosines ≥ τ)"),
                                           ("mean_cos_decoder", "mean Hungarian-matched decoder cosine"))):
            ax = axes[row, col]
            for value, g in sp.groupby(group):
                s = g.groupby(x)[y].agg(["mean", "std", "count"]).reset_index()
                ax.errorbar(s[x], s["mean"], yerr=s["std"].fillna(0), marker="o", capsize=3,
                            label=f"{'k' if group == 'k_a' else 'n'} = {value}")
            if not base.empty and y in base:
                b = base.groupby(x)[y].mean().reset_index()
                ax.plot(b[x], b[y], "--", color="grey", marker="x", label="random init (baseline)")
            if sp[x].nunique() > 1 and sp[x].min() > 0:
                ax.set_xscale("log", base=2)
            ax.set_xlabel(xlabel)
            ax.set_ylabel(ylabel)
            ax.grid(alpha=0.3)
            ax.legend(fontsize=7)
    return save(fig, out, "sharing.png", "Seed pairs: how much is shared, by SAE size and sparsity (mean ± std over pairs)")


def figure_overlap(overlaps, out):
    """N-seed overlap (Paulo & Belrose): fraction of a base SAE's latents shared with none of the first
    m other seeds, and with exactly m of them."""
    if not overlaps:
        return None, "no results file compares three or more seeds (/overlap)"
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for o in overlaps:
        m = np.arange(1, len(o["unique_fraction"]) + 1)
        axes[0].plot(m, o["unique_fraction"], marker="o", label=o["results"])
        axes[1].plot(np.arange(len(o["histogram_mean"])), o["histogram_mean"], marker="o", label=o["results"])
    axes[0].set_xlabel("m other seeds")
    axes[0].set_ylabel("fraction of latents shared with none of them")
    axes[1].set_xlabel("m")
    axes[1].set_ylabel("fraction of latents shared with exactly m others")
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    return save(fig, out, "overlap.png", "N-seed overlap (mean over the choice of base SAE)")


def figure_training(curves, out):
    """Consistency over training (train.snapshot_every): per results file, the mean over its seed pairs of
    the matched decoder cosine, the shared fraction and the max decoder cosine against training tokens
    (band: the pairs' range); step 0 is the initialisations' similarity."""
    if not curves:
        return None, "no results file has snapshots (train.snapshot_every)"
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.5))
    hooks = sorted({c["hookpoint"] for c in curves}, key=layer_of)
    sizes = sorted({c["n_latents"] for c in curves})
    colours = plt.cm.viridis(np.linspace(0, 0.9, max(1, len(hooks))))
    styles = ["-", "--", ":", "-."]
    for c in curves:
        colour = colours[hooks.index(c["hookpoint"])]
        style = styles[sizes.index(c["n_latents"]) % len(styles)]
        for ax, key in zip(axes, ("mean_cos_decoder", "shared_fraction", "decoder_mcs")):
            v = np.asarray(c[key], dtype=float)
            if np.isnan(v).all():
                continue
            ax.plot(c["tokens"], np.nanmean(v, axis=0), style, color=colour, marker=".", label=c["label"])
            ax.fill_between(c["tokens"], np.nanmin(v, axis=0), np.nanmax(v, axis=0), color=colour, alpha=0.12)
    for ax, ylabel in zip(axes, ("mean Hungarian-matched decoder cosine", "shared fraction (both cosines ≥ τ)",
                                 "mean max decoder cosine (both directions)")):
        ax.set_xlabel("training tokens")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7, ncol=2)
    return save(fig, out, "training.png", "Seed pairs over training (mean over pairs; band: their range)")


def figure_stability(stability, out, limit=12):
    """Per SAE: the fraction of its latents shared with m of the other seeds, and the share of its
    reconstruction energy (Σ z² ‖W‖²) those latents carry."""
    if not stability:
        return None, "no results file has /stability (compare.hungarian with every seed pair matched)"
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for i, s in enumerate(stability[:limit]):
        levels = np.unique(s["stable"])
        label = f"{s['results']}: {s['sae']}" if len({r["results"] for r in stability}) > 1 else s["sae"]
        latents = [(s["stable"] == v).mean() for v in levels]
        axes[0].plot(levels, latents, marker="o", label=label)
        if s["energy"] is not None:
            energy = [s["energy"][s["stable"] == v].sum() / s["energy"].sum() for v in levels]
            axes[1].plot(levels, energy, marker="o", label=label)
    axes[0].set_ylabel("fraction of latents")
    axes[1].set_ylabel("share of reconstruction energy Σ z² ‖W‖²")
    for ax in axes:
        ax.set_xlabel("fraction of the other seeds sharing the latent")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6)
    return save(fig, out, "stability.png", "Per-latent stability across seeds")


def layer_matrix(pairs, column):
    """hookpoint × hookpoint: the mean score, the mean excess over chance (column_excess: the score minus
    its permutation null's mean; NaN where the results predate it) and the largest p-value of the pairs
    at those hookpoints."""
    hooks = sorted(set(pairs.hookpoint_a) | set(pairs.hookpoint_b), key=lambda h: (layer_of(h), h))
    index = {h: i for i, h in enumerate(hooks)}
    score = np.full((len(hooks), len(hooks)), np.nan)
    excess = np.full_like(score, np.nan)
    pval = np.full_like(score, np.nan)
    acc = {}
    for _, r in pairs.iterrows():
        if column not in r or pd.isna(r[column]):
            continue
        i, j = index[r.hookpoint_a], index[r.hookpoint_b]
        for key in {(i, j), (j, i)}:
            acc.setdefault(key, []).append((r[column], r.get(column + "_excess", np.nan), r.get(column + "_p", np.nan)))
    for (i, j), values in acc.items():
        score[i, j] = np.mean([v for v, _, _ in values])
        ex = [e for _, e, _ in values if not pd.isna(e)]
        excess[i, j] = np.mean(ex) if ex else np.nan
        pval[i, j] = np.nanmax([p for _, _, p in values]) if any(not pd.isna(p) for _, _, p in values) else np.nan
    return hooks, score, excess, pval


ABOVE_CHANCE = "above chance (score − permutation-null mean)"


def excess_limit(matrices):
    """The symmetric colour limit of excess heatmaps: the largest |excess| among them (a floor keeps an
    all-zero panel drawable)."""
    values = np.concatenate([np.abs(np.ravel(m)) for m in matrices] + [np.zeros(0)])
    values = values[~np.isnan(values)]
    return max(float(values.max()), 1e-3) if values.size else 1.0


def heatmap(ax, score, excess, pval, font, limit=None, aspect=None):
    """Draws a score matrix: coloured by the excess over chance (diverging, centred at 0, ±limit) when
    limit is given, else by the raw score (0..1); each cell annotated with score, excess and p.
    → the image (for the colour bar)."""
    if limit is not None:
        im = ax.imshow(excess, vmin=-limit, vmax=limit, cmap="RdBu_r", aspect=aspect)
    else:
        im = ax.imshow(score, vmin=0, vmax=1, cmap="viridis", aspect=aspect)
    for i in range(score.shape[0]):
        for j in range(score.shape[1]):
            if np.isnan(score[i, j]):
                continue
            text = f"{score[i, j]:.2f}"
            if limit is not None and not np.isnan(excess[i, j]):
                text += f"\n{excess[i, j]:+.2g}"
                dark = abs(excess[i, j]) > 0.6 * limit
            else:
                dark = limit is None and score[i, j] < 0.6
            if not np.isnan(pval[i, j]):
                text += f"\np={pval[i, j]:.2g}"
            ax.text(j, i, text, ha="center", va="center", fontsize=font, color="white" if dark else "black")
    return im


def has_excess(frame, column):
    """Whether the results give `column`'s excess over chance (column_excess; results files before it lack it)."""
    return column + "_excess" in frame and frame[column + "_excess"].notna().any()


def figure_layers(pairs, out):
    """Layer × layer SVCCA and RSA (Lan et al.), from the decoder pairing and, where the results have
    activations, from the activation pairing; each cell annotated with its p-value."""
    # Within one model only: a cross-model study's pairs (figure_models) would be averaged in otherwise.
    trained = (pairs[~pairs.baseline & (pairs.n_latents_a == pairs.n_latents_b) & ~across_models(pairs)]
               if not pairs.empty else pairs)
    # Only hookpoints some comparison paired with another hookpoint (a cross-layer study); the seed pairs
    # at those hookpoints fill the diagonal. Other studies' hookpoints stay out of the matrix.
    crossed = trained[trained.hookpoint_a != trained.hookpoint_b] if not trained.empty else trained
    hooks = set(crossed.hookpoint_a) | set(crossed.hookpoint_b)
    if len(hooks) < 2:
        if across_models(pairs).any():
            return None, "no comparison across hookpoints within one model (those across models are drawn below)"
        return None, "no comparison across hookpoints (run.compare_across = [\"data.hookpoint\"] makes them)"
    trained = trained[trained.hookpoint_a.isin(hooks) & trained.hookpoint_b.isin(hooks)]
    metrics = [(c, t) for c, t in (("svcca", "SVCCA (decoder pairing)"), ("rsa", "RSA (decoder pairing)"),
                                   ("activation_svcca", "SVCCA (activation pairing)"),
                                   ("activation_rsa", "RSA (activation pairing)"))
               if c in trained and trained[c].notna().any()]
    if not metrics:
        return None, "no SVCCA/RSA scores in the results"
    # One row of heatmaps per SAE size (pairs of equal size only), at most three sizes.
    sizes = sorted(trained.n_latents_a.unique())[:3]
    panels = [(n, c, f"{t}, n = {n}" if len(sizes) > 1 else t) for n in sizes for c, t in metrics]
    cols = len(metrics)
    rows = len(sizes)
    fig, axes = plt.subplots(rows, cols, figsize=(5.5 * cols, 5 * rows), squeeze=False)
    matrices = {(n, column): layer_matrix(trained[trained.n_latents_a == n], column) for n, column, _ in panels}
    # Colour by the excess over chance where the results have it (with few paired rows SVCCA's permutation
    # null has a high mean, so raw scores mostly measure the sample size); one symmetric limit per
    # statistic, so the sizes' rows compare.
    limits = {c: excess_limit([matrices[(n, c)][2] for n in sizes]) for c, _ in metrics if has_excess(trained, c)}
    for ax, (n, column, title) in zip(axes.flat, panels):
        hooks, score, excess, pval = matrices[(n, column)]
        im = heatmap(ax, score, excess, pval, 9 if len(hooks) <= 4 else 7, limits.get(column))
        short = [short_hook(h) for h in hooks]
        ax.set_xticks(range(len(hooks)), short, rotation=45, ha="right", fontsize=8)
        ax.set_yticks(range(len(hooks)), short, fontsize=8)
        ax.set_title(f"{title}\n{ABOVE_CHANCE}" if column in limits else title, fontsize=10)
        bar = fig.colorbar(im, ax=ax, fraction=0.046)
        if column in limits:
            bar.set_label("score − null mean", fontsize=8)
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    what = ("cells: score, its excess over chance, p = the largest permutation p-value" if limits
            else "p = the largest permutation p-value")
    return save(fig, out, "layers.png", f"Layer × layer similarity (mean over SAE pairs; {what})")


MODEL_METRICS = (("activation_svcca", "SVCCA (activation pairing)", "activation_svcca_p"),
                 ("activation_rsa", "RSA (activation pairing)", "activation_rsa_p"),
                 ("max_corr", "mean max activation correlation", None))
MAX_MODEL_PAIRS = 6


def model_view(pairs):
    """The across-model comparisons: → (across pairs, models in order, [(M, N)] compared, [(M, N)] drawn,
    note), or None without any; M comes before N in the order. Models are ordered as the comparisons
    name them: a sweep names the earlier task's SAE first, so the grid's first model (the reference) is
    the one named first most often."""
    across = pairs[across_models(pairs) & ~pairs.baseline] if not pairs.empty else pairs
    if across.empty:
        return None
    first = across.model_a.value_counts()
    models = sorted(set(across.model_a) | set(across.model_b), key=lambda m: (-first.get(m, 0), m))
    rank = {m: i for i, m in enumerate(models)}
    present = {tuple(sorted((a, b), key=rank.get)) for a, b in zip(across.model_a, across.model_b)}
    present = sorted(present, key=lambda mn: (rank[mn[0]], rank[mn[1]]))
    shown, note = present, ""
    if len(shown) > MAX_MODEL_PAIRS:
        total = len(shown)
        shown = [mn for mn in shown if models[0] in mn][:MAX_MODEL_PAIRS]
        note = (f"{total} model pairs: only {len(shown)} with the reference model {models[0]} are drawn "
                "(every pair is in the tables below and in pairs.csv)")
    return across, models, present, shown, note


def model_cells(across, m, n):
    """The comparisons of models m and n oriented m → n: one row per (hookpoint of m, hookpoint of n),
    whichever side of the results file each SAE was on; the mean over the SAE pairs there, p = the
    largest p-value, `comparisons` = how many."""
    rows = []
    for _, r in across.iterrows():
        if (r.model_a, r.model_b) not in ((m, n), (n, m)):
            continue
        flip = r.model_a == n
        ab, ba = r.get("mean_max_corr_ab", np.nan), r.get("mean_max_corr_ba", np.nan)
        row = {"hook_m": r.hookpoint_b if flip else r.hookpoint_a, "hook_n": r.hookpoint_a if flip else r.hookpoint_b,
               "corr_mn": ba if flip else ab, "corr_nm": ab if flip else ba, "max_corr": (ab + ba) / 2,
               "activation_pairs": r.get("activation_pairs", np.nan), "comparisons": 1}
        for column, _, pcol in MODEL_METRICS[:2]:
            row[column], row[pcol] = r.get(column, np.nan), r.get(pcol, np.nan)
            row[column + "_excess"] = r.get(column + "_excess", np.nan)
        rows.append(row)
    cells = pd.DataFrame(rows)
    how = {c: ("max" if c.endswith("_p") else "sum" if c == "comparisons" else "mean")
           for c in cells.columns if c not in ("hook_m", "hook_n")}
    cells = cells.groupby(["hook_m", "hook_n"], as_index=False).agg(how)
    order = lambda h: (layer_of(h), h)  # noqa: E731
    return cells.sort_values(["hook_m", "hook_n"], key=lambda col: col.map(order)).reset_index(drop=True)


def seed_reference(pairs):
    """{(model, hookpoint): {metric: mean over that model's seed pairs there}}: the seed spread an
    across-model score is read against."""
    sp = seed_pairs(pairs)
    sp = sp[sp.model_a != ""] if not sp.empty else sp
    ref = {}
    for (model, hook), g in sp.groupby(["model_a", "hookpoint_a"]) if not sp.empty else ():
        values = {c: g[c].mean() if c in g else np.nan
                  for c in [m for m, _, _ in MODEL_METRICS[:2]] + [m + "_excess" for m, _, _ in MODEL_METRICS[:2]]}
        if "mean_max_corr_ab" in g and "mean_max_corr_ba" in g:
            values["max_corr"] = ((g.mean_max_corr_ab + g.mean_max_corr_ba) / 2).mean()
        else:
            values["max_corr"] = np.nan
        ref[(model, hook)] = values
    return ref


def seed_mean(ref, model, hooks, column):
    values = [ref[(model, h)].get(column, np.nan) for h in hooks if (model, h) in ref]
    values = [v for v in values if not pd.isna(v)]
    return np.mean(values) if values else np.nan


def figure_models(pairs, out):
    """Layer × layer across models (Lan et al.): for each pair of models M, N, M's hookpoints (rows)
    against N's (columns) by activation SVCCA, RSA and mean max correlation, each titled with the seed
    spread (the same statistic between two seeds of one model, mean over the layers shown)."""
    view = model_view(pairs)
    if view is None:
        return None, "no comparison across models"
    across, _, _, shown, note = view
    metrics = [(c, t, p) for c, t, p in MODEL_METRICS
               if (c == "max_corr" and "mean_max_corr_ab" in across) or (c in across and across[c].notna().any())]
    if not metrics:
        return None, "no activation statistics across models (compare with activations)"
    ref = seed_reference(pairs)
    cells = {mn: model_cells(across, *mn) for mn in shown}
    # SVCCA/RSA coloured by the excess over chance (score − permutation-null mean) where the results have
    # it: with tens to hundreds of activation-paired rows SVCCA's null mean is 0.7–0.9, so the raw scores
    # rank the cells mostly by their number of pairs. One symmetric limit per statistic over the drawn pairs.
    limits = {c: excess_limit([cells[mn][c + "_excess"].to_numpy(float) for mn in shown])
              for c, _, p in metrics if p and has_excess(across, c)}
    n_hooks = max(max(c.hook_m.nunique(), c.hook_n.nunique()) for c in cells.values())
    side = max(3.6, 0.85 * n_hooks + 1.8)
    font = 10 if n_hooks <= 3 else 8 if n_hooks <= 6 else 6
    if limits:
        font = 9 if n_hooks <= 3 else 7 if n_hooks <= 6 else 5  # three lines a cell
    fig, axes = plt.subplots(len(shown), len(metrics), figsize=(1.3 * side * len(metrics), 1.15 * side * len(shown) + 0.6),
                             squeeze=False)
    for row, (m, n) in enumerate(shown):
        c = cells[(m, n)]
        hooks_m = sorted(set(c.hook_m), key=lambda h: (layer_of(h), h))
        hooks_n = sorted(set(c.hook_n), key=lambda h: (layer_of(h), h))
        for ax, (column, title, pcol) in zip(axes[row], metrics):
            score = np.full((len(hooks_m), len(hooks_n)), np.nan)
            excess = np.full_like(score, np.nan)
            pval = np.full_like(score, np.nan)
            for _, r in c.iterrows():
                i, j = hooks_m.index(r.hook_m), hooks_n.index(r.hook_n)
                score[i, j] = r[column]
                excess[i, j] = r.get(column + "_excess", np.nan)
                pval[i, j] = r[pcol] if pcol else np.nan
            im = heatmap(ax, score, excess, pval, font, limits.get(column), aspect="auto")
            ax.set_xticks(range(len(hooks_n)), [short_hook(h) for h in hooks_n], rotation=30, ha="right", fontsize=9)
            ax.set_yticks(range(len(hooks_m)), [short_hook(h) for h in hooks_m], fontsize=9)
            ax.set_xlabel(n, fontsize=10)
            if ax is axes[row][0]:
                ax.set_ylabel(m, fontsize=10)
            if column in limits:  # the seed spread above chance too, the raw score beside it
                lines = [f"{label}: {seed_mean(ref, model, hooks, column + '_excess'):+.2g} "
                         f"(score {seed_mean(ref, model, hooks, column):.2f})"
                         for label, model, hooks in ((m, m, hooks_m), (n, n, hooks_n))
                         if not np.isnan(seed_mean(ref, model, hooks, column + "_excess"))]
                head = f"{title}\n{ABOVE_CHANCE}"
            else:
                lines = [f"{label}: {v:.2f}" for label, v in
                         ((m, seed_mean(ref, m, hooks_m, column)), (n, seed_mean(ref, n, hooks_n, column)))
                         if not np.isnan(v)]
                head = title
            spread = "\n".join(lines)
            ax.set_title(f"{head}\nseed pairs (seed spread, mean over layers)\n{spread}" if spread else head,
                         fontsize=9)
            bar = fig.colorbar(im, ax=ax, fraction=0.046)
            if column in limits:
                bar.set_label("score − null mean", fontsize=8)
    cell = ("SVCCA/RSA cells: score, its excess over chance (the colour), p = the largest permutation p-value"
            if limits else "p = the largest permutation p-value")
    title = ("Across models: the row model's layer vs the column model's layer\n"
             f"(mean over SAE pairs; {cell})" + (f"\n{note}" if note else ""))
    height = fig.get_size_inches()[1]
    fig.suptitle(title, fontsize=11, y=1 - 0.1 / height, va="top")
    return save(fig, out, "models.png", rect=(0, 0, 1, 1 - (0.1 + 0.19 * title.count("\n")) / height))


def fmt(v, spec=".3f"):
    return "" if v is None or pd.isna(v) else format(v, spec)


def models_html(pairs):
    """One table per pair of models (every pair, not only the drawn ones), and why the weight-space
    statistics are absent across models."""
    view = model_view(pairs)
    if view is None:
        return ""
    across, _, present, _, _ = view
    ref = seed_reference(pairs)
    skipped = across[across.weight_space_skipped != ""] if "weight_space_skipped" in across else across.iloc[0:0]
    parts = ["<p>One table per pair of models M and N: each row is M's layer against N's layer (the mean over the "
             "SAE pairs there). Mean max corr M→N: each latent of M's SAE, its best activation correlation with N's "
             "latents, averaged. SVCCA and RSA of the activation-paired decoder rows, with the largest permutation "
             "p-value. Seed pairs: the same statistic between two seeds of one model at that layer (M's at M's "
             "layer / N's at N's layer), the spread an across-model score is read against.</p>"]
    if not skipped.empty:
        r = skipped.iloc[0]
        parts.append("<p>Weight-space statistics (decoder and encoder max cosine, the Hungarian matching and "
                     "shared fraction, SVCCA/RSA/CKA/mutual kNN of decoder-paired rows) are left out for SAEs of "
                     f"different models ({len(skipped)} of {len(across)} pairs); universae's reason, for "
                     f"<code>{html.escape(r.pair)}</code>: <q>{html.escape(r.weight_space_skipped)}</q>. "
                     "Only the activation statistics compare them.</p>")
    # With the excess over chance (score − permutation-null mean; results before it lack it) beside each score.
    excess = {c: has_excess(across, c) for c in ("activation_svcca", "activation_rsa")}
    if any(excess.values()):
        parts.append("<p>Beside each SVCCA and RSA score, in brackets with a sign: its excess over chance, the score "
                     "minus the mean of its permutation null. With tens to hundreds of paired rows SVCCA's null mean is "
                     "high (often 0.7 and more; RSA's is near 0), so the excess, not the raw score, says how much two "
                     "SAEs agree beyond chance; read it against the seed pairs' excess.</p>")
    for m, n in present:
        c = model_cells(across, m, n)
        em, en = html.escape(m), html.escape(n)
        sv = "SVCCA (excess; p)" if excess["activation_svcca"] else "SVCCA (p)"
        rs = "RSA (excess; p)" if excess["activation_rsa"] else "RSA (p)"
        head = ["M layer", "N layer", "activation pairs", "mean max corr M→N", "mean max corr N→M", sv, rs,
                "seed pairs: max corr (M / N)",
                f"seed pairs: {'SVCCA (excess)' if excess['activation_svcca'] else 'SVCCA'} (M / N)",
                f"seed pairs: {'RSA (excess)' if excess['activation_rsa'] else 'RSA'} (M / N)"]
        if (c.comparisons > 1).any():
            head.insert(2, "SAE pairs")
        body = []
        for _, r in c.iterrows():
            def seeds(column):
                values = [ref.get((model, hook), {}) for model, hook in ((m, r.hook_m), (n, r.hook_n))]
                a, b = (v.get(column, np.nan) for v in values)
                if pd.isna(a) and pd.isna(b):
                    return ""
                if not excess.get(column):
                    return f"{fmt(a)} / {fmt(b)}"
                ea, eb = (v.get(column + "_excess", np.nan) for v in values)
                return " / ".join(f"{fmt(v)} ({fmt(e, '+.3f')})" if not pd.isna(e) else fmt(v) for v, e in ((a, ea), (b, eb)))
            def scored(column, pcol):
                if pd.isna(r[column]):
                    return ""
                e = r.get(column + "_excess", np.nan)
                if excess.get(column) and not pd.isna(e):
                    return f"{fmt(r[column])} ({fmt(e, '+.3f')}; {fmt(r[pcol], '.2g')})"
                return f"{fmt(r[column])} ({fmt(r[pcol], '.2g')})"
            cells = [short_hook(r.hook_m), short_hook(r.hook_n), fmt(r.activation_pairs, ".0f"), fmt(r.corr_mn),
                     fmt(r.corr_nm), scored("activation_svcca", "activation_svcca_p"),
                     scored("activation_rsa", "activation_rsa_p"), seeds("max_corr"), seeds("activation_svcca"),
                     seeds("activation_rsa")]
            if (c.comparisons > 1).any():
                cells.insert(2, str(int(r.comparisons)))
            body.append("<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in cells) + "</tr>")
        parts.append(f"<h3>M = {em} vs N = {en}</h3><table><thead><tr>{''.join(f'<th>{h}</th>' for h in head)}</tr></thead>"
                     f"<tbody>{''.join(body)}</tbody></table>")
    return "".join(parts)


def figure_frequency(saes, out, limit=12):
    """Firing frequency of every trained SAE's latents (log10), dead latents counted in the legend."""
    have = saes[saes.frequency.notna() & ~saes.baseline] if not saes.empty else saes
    have = have.drop_duplicates("path")  # an SAE compared in several files (a sweep's across-task pairs) once
    if have.empty:
        return None, "no firing frequencies (compare with --activations, or SAE files trained by universae)"
    fig, ax = plt.subplots(figsize=(9, 4.5))
    paths = [os.path.abspath(p) for p in have.path]
    common = os.path.commonpath(paths) if len(paths) > 1 else os.path.dirname(paths[0])
    # One set of bins for every SAE, so the heights compare.
    logs = np.concatenate([np.log10(np.asarray(f)[np.asarray(f) > 0]) for f in have.head(limit).frequency] + [np.zeros(0)])
    bins = np.linspace(logs.min(), logs.max(), 41) if logs.size else 40
    for (_, s), path in zip(have.head(limit).iterrows(), paths):
        f = np.asarray(s.frequency)
        alive = f[f > 0]
        label = os.path.relpath(path, common) if s.path else s.sae  # the SAE file below the sweep's directory
        ax.hist(np.log10(alive), bins=bins, histtype="step", label=f"{label} ({int((f == 0).sum())} never fired on the compared tokens)")
    ax.set_xlabel("log10 firing frequency (fraction of tokens)")
    ax.set_ylabel("latents")
    if max(len(label) for label in ax.get_legend_handles_labels()[1]) > 40:
        # Long labels (a sweep's task ids) would cover the histograms: beside the axes instead.
        fig.set_size_inches(15, 4.5)
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1), borderaxespad=0)
    else:
        ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    title = "Firing frequency" + (f" (first {limit} of {len(have)} SAEs)" if len(have) > limit else "")
    ax.set_title(title)
    return save(fig, out, "frequency.png")


def figure_matched_vs_frequency(pairs, saes, matched_cos, out, limit=6):
    """Hungarian-matched decoder cosine of each latent of A against how often it fires: are the
    shared features the frequent ones?"""
    sp = seed_pairs(pairs)
    if sp.empty or saes.empty:
        return None, "no seed pairs"
    freq = {(s.results, s.sae): s.frequency for _, s in saes.iterrows() if s.frequency is not None}
    chosen = [r for _, r in sp.iterrows() if (r.results, r.a) in freq and (r.results, r.pair) in matched_cos]
    if not chosen:
        return None, "no pair has both a matching and firing frequencies"
    fig, ax = plt.subplots(figsize=(9, 5))
    for r in chosen[:limit]:
        f = np.asarray(freq[(r.results, r.a)])
        cos = matched_cos[(r.results, r.pair)]
        alive = f > 0
        label = f"{r.results}/{r.pair}" if pairs.results.nunique() > 1 else r.pair
        ax.scatter(np.log10(f[alive]), cos[alive], s=5, alpha=0.5, label=label)
    tau = chosen[0].get("threshold", np.nan)
    if not pd.isna(tau):
        ax.axhline(tau, color="grey", linestyle="--", label=f"τ = {tau:g}")
    ax.set_xlabel("log10 firing frequency of the latent in A")
    ax.set_ylabel("Hungarian-matched decoder cosine")
    ax.legend(fontsize=7, markerscale=3)
    ax.grid(alpha=0.3)
    ax.set_title("Matched cosine vs firing frequency" + (f" (first {limit} of {len(chosen)} pairs)" if len(chosen) > limit else ""))
    return save(fig, out, "matched_vs_frequency.png")


def table_html(pairs):
    cols = [c for c in ("results", "pair", "decoder_mcs_ab", "decoder_mcs_ba", "mean_cos_decoder", "shared_fraction",
                        "certified", "svcca", "svcca_p", "rsa", "rsa_p", "mean_max_corr_ab", "activation_svcca", "activation_rsa")
            if c in pairs]
    if pairs.results.nunique() == 1:
        cols.remove("results")
    head = "".join(f"<th>{html.escape(c)}</th>" for c in cols)
    body = []
    for _, r in pairs.iterrows():
        cells = []
        for c in cols:
            v = r[c]
            text = "" if (isinstance(v, float) and math.isnan(v)) else (f"{v:.3g}" if isinstance(v, float) else str(v))
            cells.append(f"<td>{html.escape(text)}</td>")
        body.append(f"<tr{' class=baseline' if r.baseline else ''}>{''.join(cells)}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def write_page(out, paths, pairs, figures):
    figs = []
    for title, caption, (png, why), *extra in figures:  # extra: HTML after the figure (its tables)
        if png:
            figs.append(f"<h2>{html.escape(title)}</h2><p>{html.escape(caption)}</p><img src='{png}' alt='{html.escape(title)}'>")
        else:
            figs.append(f"<h2>{html.escape(title)}</h2><p class=skip>Not drawn: {html.escape(why)}.</p>")
        figs.extend(extra)
    inputs = "".join(f"<li><code>{html.escape(os.path.relpath(p))}</code></li>" for p in paths)
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>universae report</title>
<style>
body {{ font-family: sans-serif; margin: 2em auto; max-width: 1200px; color: #222; }}
table {{ border-collapse: collapse; font-size: 12px; }} th, td {{ border: 1px solid #ccc; padding: 3px 6px; text-align: right; }}
th {{ background: #f0f0f0; }} tr.baseline {{ color: #888; }} img {{ max-width: 100%; border: 1px solid #eee; }}
.skip {{ color: #a60; }} code {{ font-size: 12px; }} .scroll {{ overflow: auto; max-height: 40em; }}
</style></head><body>
<h1>Do these SAEs learn the same features?</h1>
<p>{len(pairs)} compared pairs from {len(paths)} results file(s). Every number is in <a href="pairs.csv">pairs.csv</a>;
baselines (random initialisation, --baseline) are grey. Definitions: METHODS.md (max cosine §3, certified Hungarian
matching and shared fraction §4, SVCCA/RSA/CKA/mutual kNN with permutation p-values §6, activation statistics §5).</p>
<details><summary>Inputs</summary><ul>{inputs}</ul></details>
<h2>Summary</h2>
<div class=scroll>{table_html(pairs) if not pairs.empty else "<p class=skip>No pairs.</p>"}</div>
{''.join(figs)}
</body></html>
"""
    with open(os.path.join(out, "index.html"), "w") as f:
        f.write(page)


EXCESS_CAPTION = ("SVCCA and RSA cells are coloured by the excess over chance (the score minus its permutation "
                  "null's mean; red above chance, blue below, white at chance) and annotated with score, excess and "
                  "p, where the results files give the excess; older results files are coloured by the raw score.")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="the report directory (created)")
    parser.add_argument("results", nargs="+", help="universae results files")
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    pairs, saes, overlaps, matched_cos, curves, stability = load(args.results)
    pairs.to_csv(os.path.join(args.out, "pairs.csv"), index=False)
    figures = [
        ("Sharing vs size and k", "Seed pairs (same size, k and hookpoint): the fraction of latents whose Hungarian "
         "match has decoder and encoder cosine ≥ τ, and the mean matched decoder cosine; dashed: random-init baseline.",
         figure_sharing(pairs, args.out)),
        ("Consistency over training", "Seed pairs of each configuration at every weight snapshot "
         "(train.snapshot_every), step 0 being the initialisations: the mean Hungarian-matched decoder cosine "
         "(Paulo & Belrose's pairwise dictionary mean correlation), the shared fraction, and the mean max decoder "
         "cosine; colour: hookpoint, line style: number of latents.", figure_training(curves, args.out)),
        ("Per-latent stability", "For each SAE, its latents grouped by the fraction of the other seeds that share "
         "them (left), and the share of the SAE's reconstruction energy each group carries (right; with "
         "activations): do the latents every seed learns carry more of the reconstruction than their number?",
         figure_stability(stability, args.out)),
        ("N-seed overlap", "For each base SAE, the fraction of its latents shared with none of the first m other "
         "seeds (left) and with exactly m of them (right).", figure_overlap(overlaps, args.out)),
        ("Layer × layer SVCCA and RSA", "Mean score over the SAE pairs at each pair of hookpoints; annotated with "
         "the largest permutation-test p-value among them. " + EXCESS_CAPTION, figure_layers(pairs, args.out)),
    ]
    if across_models(pairs).any():  # a cross-model study; other inputs get no section (nothing to say)
        figures.append(
            ("Across models: layer × layer", "For each pair of models M (rows) and N (columns): M's layer i against "
             "N's layer j by SVCCA and RSA of the activation-paired decoder rows and by the mean of both max "
             "activation correlations (M→N and N→M); each cell is the mean over the SAE pairs there, annotated with "
             "the largest permutation-test p-value. Each title gives the seed spread: the same statistic between "
             "two seeds of one model, mean over the layers shown. The tables give each cell with the seed pairs "
             "at the same layers. " + EXCESS_CAPTION, figure_models(pairs, args.out), models_html(pairs)))
    figures += [
        ("Firing frequency", "Histogram of log10 firing frequency per SAE; latents that never fired are counted "
         "in the legend.", figure_frequency(saes, args.out)),
        ("Matched cosine vs firing frequency", "Each point is a latent of A: how often it fires and how well its "
         "Hungarian match in B agrees.", figure_matched_vs_frequency(pairs, saes, matched_cos, args.out)),
    ]
    write_page(args.out, args.results, pairs, figures)
    drawn = sum(1 for _, _, (png, _), *_ in figures if png)
    print(f"report: {len(pairs)} pairs from {len(args.results)} file(s), {drawn} figures")
    return 0


if __name__ == "__main__":
    sys.exit(main())
