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


def save(fig, out, png, title=None):
    """Finishes a figure: → (file name, no reason to skip)."""
    if title:
        fig.suptitle(title)
    fig.tight_layout()
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


def layer_of(hookpoint):
    m = re.search(r"(?:blocks|layers)\.(\d+)", hookpoint or "")
    return int(m.group(1)) if m else -1


def summary_columns(f, path):
    """[(name, object, attribute)] of the file's /summary_columns (universae writes it with every results file)."""
    if "summary_columns" not in f:
        sys.exit(f"report: {path} has no /summary_columns (written by a universae before 0.2): compare again to rewrite it")
    c = f["summary_columns"].attrs
    text = [[v.decode() if isinstance(v, bytes) else str(v) for v in c[k]] for k in ("name", "object", "attribute")]
    return list(zip(*text))


def summary_object(f, pair_group, obj, a, b):
    """The group holding a summary column: below the pair's group, or absolute with {a}/{b} for the SAEs'."""
    if obj.startswith("/"):
        path = obj.replace("{a}", f"/saes/{a}").replace("{b}", f"/saes/{b}")
        return f[path] if path in f else None
    if not obj:
        return pair_group
    return pair_group[obj] if obj in pair_group else None


def load(paths):
    """→ (pairs DataFrame, saes DataFrame, overlap records, {(results, pair): matched decoder cosines})."""
    pair_rows, sae_rows, overlaps, matched_cos = [], [], [], {}
    for path, label in zip(paths, labels_for(paths)):
        with h5py.File(path, "r") as f:
            columns = summary_columns(f, path)
            saes = {}
            for name, g in f.get("saes", {}).items():
                info = {"results": label, "sae": name, "path": attr(g, "path", ""),
                        "architecture": attr(g, "architecture", ""), "n_latents": int(attr(g, "n_latents", 0)),
                        "k": int(attr(g, "k", 0)), "seed": int(attr(g, "seed", 0)),
                        "hookpoint": attr(g, "hookpoint", ""), "baseline": bool(attr(g, "baseline", False))}
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
                       "hookpoint_a": sa.get("hookpoint", ""), "hookpoint_b": sb.get("hookpoint", "")}
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
            if "overlap" in f:
                o = f["overlap"]
                overlaps.append({"results": label, "n_saes": int(attr(o, "n_saes", 0)),
                                 "unique_fraction": o["unique_fraction"][:], "histogram_mean": o["histogram_mean"][:]})
    saes_df = pd.DataFrame(sae_rows)
    return pd.DataFrame(pair_rows), saes_df, overlaps, matched_cos


def seed_pairs(pairs):
    """Pairs of two trained SAEs of one configuration (the seed question): same size, k and hookpoint."""
    if pairs.empty:
        return pairs
    same = ((pairs.n_latents_a == pairs.n_latents_b) & (pairs.k_a == pairs.k_b) &
            (pairs.hookpoint_a == pairs.hookpoint_b))
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


def layer_matrix(pairs, column):
    """hookpoint × hookpoint: the mean score and the largest p-value of the pairs at those hookpoints."""
    hooks = sorted(set(pairs.hookpoint_a) | set(pairs.hookpoint_b), key=lambda h: (layer_of(h), h))
    index = {h: i for i, h in enumerate(hooks)}
    score = np.full((len(hooks), len(hooks)), np.nan)
    pval = np.full((len(hooks), len(hooks)), np.nan)
    acc = {}
    for _, r in pairs.iterrows():
        if column not in r or pd.isna(r[column]):
            continue
        i, j = index[r.hookpoint_a], index[r.hookpoint_b]
        for key in {(i, j), (j, i)}:
            acc.setdefault(key, []).append((r[column], r.get(column + "_p", np.nan)))
    for (i, j), values in acc.items():
        score[i, j] = np.mean([v for v, _ in values])
        pval[i, j] = np.nanmax([p for _, p in values]) if any(not pd.isna(p) for _, p in values) else np.nan
    return hooks, score, pval


def figure_layers(pairs, out):
    """Layer × layer SVCCA and RSA (Lan et al.), from the decoder pairing and, where the results have
    activations, from the activation pairing; each cell annotated with its p-value."""
    trained = pairs[~pairs.baseline & (pairs.n_latents_a == pairs.n_latents_b)] if not pairs.empty else pairs
    # Only hookpoints some comparison paired with another hookpoint (a cross-layer study); the seed pairs
    # at those hookpoints fill the diagonal. Other studies' hookpoints stay out of the matrix.
    crossed = trained[trained.hookpoint_a != trained.hookpoint_b] if not trained.empty else trained
    hooks = set(crossed.hookpoint_a) | set(crossed.hookpoint_b)
    if len(hooks) < 2:
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
    for ax, (n, column, title) in zip(axes.flat, panels):
        hooks, score, pval = layer_matrix(trained[trained.n_latents_a == n], column)
        im = ax.imshow(score, vmin=0, vmax=1, cmap="viridis")
        short = [h.replace(".hook_", ".").replace("blocks.", "L") for h in hooks]
        ax.set_xticks(range(len(hooks)), short, rotation=45, ha="right", fontsize=8)
        ax.set_yticks(range(len(hooks)), short, fontsize=8)
        for i in range(len(hooks)):
            for j in range(len(hooks)):
                if not np.isnan(score[i, j]):
                    p = "" if np.isnan(pval[i, j]) else f"\np={pval[i, j]:.2g}"
                    ax.text(j, i, f"{score[i, j]:.2f}{p}", ha="center", va="center", fontsize=7,
                            color="white" if score[i, j] < 0.6 else "black")
        ax.set_title(title)
        fig.colorbar(im, ax=ax, fraction=0.046)
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    return save(fig, out, "layers.png", "Layer × layer similarity (mean over SAE pairs; p = the largest permutation p-value)")


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
        ax.hist(np.log10(alive), bins=bins, histtype="step", label=f"{label} ({int((f == 0).sum())} never fired)")
    ax.set_xlabel("log10 firing frequency (fraction of tokens)")
    ax.set_ylabel("latents")
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
    for title, caption, (png, why) in figures:
        if png:
            figs.append(f"<h2>{html.escape(title)}</h2><p>{html.escape(caption)}</p><img src='{png}' alt='{html.escape(title)}'>")
        else:
            figs.append(f"<h2>{html.escape(title)}</h2><p class=skip>Not drawn: {html.escape(why)}.</p>")
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


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="the report directory (created)")
    parser.add_argument("results", nargs="+", help="universae results files")
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    pairs, saes, overlaps, matched_cos = load(args.results)
    pairs.to_csv(os.path.join(args.out, "pairs.csv"), index=False)
    figures = [
        ("Sharing vs size and k", "Seed pairs (same size, k and hookpoint): the fraction of latents whose Hungarian "
         "match has decoder and encoder cosine ≥ τ, and the mean matched decoder cosine; dashed: random-init baseline.",
         figure_sharing(pairs, args.out)),
        ("N-seed overlap", "For each base SAE, the fraction of its latents shared with none of the first m other "
         "seeds (left) and with exactly m of them (right).", figure_overlap(overlaps, args.out)),
        ("Layer × layer SVCCA and RSA", "Mean score over the SAE pairs at each pair of hookpoints; annotated with "
         "the largest permutation-test p-value among them.", figure_layers(pairs, args.out)),
        ("Firing frequency", "Histogram of log10 firing frequency per SAE; latents that never fired are counted "
         "in the legend.", figure_frequency(saes, args.out)),
        ("Matched cosine vs firing frequency", "Each point is a latent of A: how often it fires and how well its "
         "Hungarian match in B agrees.", figure_matched_vs_frequency(pairs, saes, matched_cos, args.out)),
    ]
    write_page(args.out, args.results, pairs, figures)
    drawn = sum(1 for _, _, (png, _) in figures if png)
    print(f"report: {len(pairs)} pairs from {len(args.results)} file(s), {drawn} figures")
    return 0


if __name__ == "__main__":
    sys.exit(main())
