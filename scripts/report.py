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
import json
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

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import report_browser  # noqa: E402

# Every figure's text at 10 pt or more; figures are drawn at most ~11 in wide, so the page (1200 px at
# 110 dpi) shows them near their drawn size.
plt.rcParams.update({"font.size": 11, "axes.titlesize": 11, "axes.labelsize": 11, "xtick.labelsize": 10,
                     "ytick.labelsize": 10, "legend.fontsize": 10, "figure.titlesize": 12})


def p_floor(permutations):
    """The smallest p-value a permutation test can give: 1/(permutations+1); NaN when unknown."""
    return 1.0 / (permutations + 1) if permutations and not pd.isna(permutations) else np.nan


def fmt_p(p, floor=np.nan):
    """A p-value for reading: "< 0.001" below 0.001, "≤ floor" at the permutation test's floor
    (1/(permutations+1)), else two significant digits; "" when absent."""
    if p is None or pd.isna(p):
        return ""
    if p < 0.001:
        return "< 0.001"
    if not pd.isna(floor) and p <= floor * (1 + 1e-9):
        return f"≤ {floor:.2g}"
    return f"{p:.2g}"


def p_text(p, floor=np.nan):
    """"p = 0.059", "p < 0.001", "p ≤ 0.0099"; "" without a p-value."""
    text = fmt_p(p, floor)
    if not text:
        return ""
    return f"p {text}" if text[0] in "<≤" else f"p = {text}"


def attr(group, name, default=np.nan):
    value = group.attrs.get(name, default)
    return value.decode() if isinstance(value, bytes) else value


def save(fig, out, png, title=None, rect=None):
    """Finishes a figure: → (file name, no reason to skip). rect: tight_layout's box (room for a long suptitle)."""
    if title:
        fig.suptitle(title)
    if fig.get_layout_engine() is None:  # figures laid out as constrained (heatmaps with colour bars) already are
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


# The SAE's quality as the results file records it (/saes/<name>: spliced into the model) and as its own
# file does (held-out FVU and L0, tokens trained).
RESULTS_QUALITY = ("explained_variance", "splice_fvu", "splice_l0", "ce_loss_score", "kl_div_score", "splice_tokens")
SAE_FILE_QUALITY = ("fvu", "l0", "train_tokens", "dead_fraction")


def sae_quality(g, path):
    """{attribute: value} of an SAE's quality (NaN where absent), and where its firing frequency came
    from (`frequency_source`: "activations", the compared tokens, or "sae_file", its held-out tokens)."""
    quality = {name: float(attr(g, name)) for name in RESULTS_QUALITY}
    quality.update({name: np.nan for name in SAE_FILE_QUALITY})
    if path and os.path.isfile(path):
        try:
            with h5py.File(path, "r") as s:
                quality.update({name: float(attr(s, name)) for name in SAE_FILE_QUALITY})
        except OSError:  # not an HDF5 file (a sparsify or SAELens SAE): its quality stays unknown
            pass
    quality["frequency_source"] = attr(g, "frequency_source", "")
    return quality


def permutations_of(pair_group):
    """The number of permutations of the pair's permutation tests (the largest any of them ran); NaN without one."""
    counts = []
    pair_group.visititems(lambda _, obj: counts.append(obj.attrs["permutations"])
                          if isinstance(obj, h5py.Group) and "permutations" in obj.attrs else None)
    return float(max(counts)) if counts else np.nan


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
                info.update(sae_quality(g, info["path"]))
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
                row["permutations"] = permutations_of(g)
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
                overlaps.append({"results": label, "n_saes": int(attr(o, "n_saes", 0)), "threshold": attr(o, "threshold"),
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


def baseline_pairs(pairs):
    """The pairs of a trained SAE with its random-init (or other --baseline) SAE, within one model."""
    return pairs[pairs.baseline & ~across_models(pairs)] if not pairs.empty else pairs


def with_means(pairs):
    """The pairs with the two directions' means: decoder_mcs (decoder MCS a→b, b→a) and max_corr (mean max
    activation correlation a→b, b→a), where the results have them."""
    pairs = pairs.copy()
    for name, (ab, ba) in (("decoder_mcs", ("decoder_mcs_ab", "decoder_mcs_ba")),
                           ("max_corr", ("mean_max_corr_ab", "mean_max_corr_ba"))):
        if ab in pairs and ba in pairs:
            pairs[name] = (pairs[ab] + pairs[ba]) / 2
    return pairs


def thresholds(pairs):
    """"τ = 0.7" (the shared fraction's cosine threshold, compare.shared_threshold) or "" when unknown."""
    values = sorted(pairs.threshold.dropna().unique()) if "threshold" in pairs else []
    return "τ = " + " / ".join(f"{v:g}" for v in values) if values else ""


# The statistics drawn against their baselines: (column, label), in two groups.
STATISTIC_GROUPS = (
    ("Decoder weights: max cosine, Hungarian matching, matched rows as representations",
     (("decoder_mcs", "MCS"), ("mean_cos_decoder", "matched\ncosine"), ("shared_fraction", "shared\nfraction"),
      ("svcca", "SVCCA"), ("rsa", "RSA"), ("cka", "CKA"), ("mutual_knn", "mutual\nkNN"))),
    ("Activations: max correlation, activation-paired rows as representations",
     (("max_corr", "max\ncorrelation"), ("activation_svcca", "SVCCA"), ("activation_rsa", "RSA"),
      ("activation_cka", "CKA"), ("activation_mutual_knn", "mutual\nkNN"))))


def null_means(frame, column):
    """Each pair's permutation-null mean (score − excess), or None without a permutation null."""
    if column + "_excess" not in frame or frame[column + "_excess"].isna().all():
        return None
    return (frame[column] - frame[column + "_excess"]).dropna()


def statistic_points(ax, i, values, nulls, offset, colour, marker):
    """One statistic of one kind of pair at x = i + offset: each pair a point, their mean a bar, the
    permutation-null means a dotted bar."""
    jitter = np.linspace(-0.06, 0.06, len(values)) if len(values) > 1 else np.zeros(1)
    ax.scatter(i + offset + jitter, values, color=colour, marker=marker, s=36, zorder=3)
    ax.hlines(values.mean(), i + offset - 0.15, i + offset + 0.15, color=colour, lw=2.5, zorder=2)
    if nulls is not None and len(nulls):
        ax.hlines(nulls.mean(), i + offset - 0.15, i + offset + 0.15, color="black", lw=2, linestyles=":", zorder=4)


def statistics_panel(ax, seeds, base, stats, title):
    for i, (column, _) in enumerate(stats):
        for frame, offset, colour, marker in ((seeds, -0.18, "tab:blue", "o"), (base, 0.18, "grey", "x")):
            values = frame[column].dropna() if column in frame else frame.iloc[0:0]
            if len(values):
                statistic_points(ax, i, values, null_means(frame, column), offset, colour, marker)
    ax.set_xticks(range(len(stats)), [label for _, label in stats])
    ax.set_xlim(-0.6, len(stats) - 0.4)
    ax.set_ylim(min(0, ax.get_ylim()[0]), 1)
    ax.set_ylabel("score")
    ax.set_title(title)
    ax.grid(alpha=0.3, axis="y")


def figure_statistics(pairs, out):
    """Every statistic of the seed pairs against the random-init baseline's and against chance (the
    permutation-null mean, where the statistic has a permutation test)."""
    sp, base = with_means(seed_pairs(pairs)), with_means(baseline_pairs(pairs))
    if sp.empty:
        return None, "no seed pairs (two SAEs of one configuration)"
    groups = [(title, [(c, label) for c, label in stats if c in sp and sp[c].notna().any()])
              for title, stats in STATISTIC_GROUPS]
    groups = [(title, stats) for title, stats in groups if stats]
    fig, axes = plt.subplots(len(groups), 1, figsize=(10, 4.2 * len(groups) + 0.8), squeeze=False)
    for ax, (title, stats) in zip(axes[:, 0], groups):
        statistics_panel(ax, sp, base, stats, title)
    handles = [plt.Line2D([], [], color="tab:blue", marker="o", lw=2.5, label=f"seed pairs ({len(sp)}; bar: mean)"),
               plt.Line2D([], [], color="black", ls=":", lw=2, label="permutation-null mean (chance at this many rows)")]
    if not base.empty:
        handles.insert(1, plt.Line2D([], [], color="grey", marker="x", lw=2.5, label=f"random-init baseline ({len(base)})"))
    fig.legend(handles=handles, loc="lower center", ncol=len(handles), frameon=False)
    tau = thresholds(sp)
    title = ("Seed pairs against the random-init baseline and chance" if not base.empty else
             "Seed pairs against chance (no random-init baseline in the results: compare.baseline_random)")
    title += f"\nshared: both cosines ≥ {tau}" if tau else ""
    return save(fig, out, "statistics.png", title, rect=(0, 0.04, 1, 1))


SHARING_METRICS = (("shared_fraction", "shared fraction"), ("mean_cos_decoder", "mean matched decoder cosine"))


def varied_axes(sp):
    """The parameters the seed pairs vary: [(column, the other parameter's column, axis label)]."""
    return [(x, other, label) for x, other, label in (("n_latents_a", "k_a", "number of latents n"), ("k_a", "n_latents_a", "k"))
            if sp[x].nunique() > 1]


def clipped_errorbar(ax, x, mean, std, **style):
    """mean ± std with the bars clipped to [0, 1] (a fraction or cosine cannot leave it)."""
    std = std.fillna(0)
    low, high = np.clip(mean - std, 0, 1), np.clip(mean + std, 0, 1)
    ax.errorbar(x, mean, yerr=[mean - low, high - mean], capsize=3, **style)


def sharing_panel(ax, sp, base, x, other, y, hooks):
    """One line per (hookpoint, value of the other parameter) and the hookpoint's baseline, dashed."""
    colours = plt.cm.tab10(np.arange(10))
    markers = "osD^v"
    name = "k" if other == "k_a" else "n"
    others = sorted(sp[other].unique())
    for (hook, value), g in sp.groupby(["hookpoint_a", other]):
        s = g.groupby(x)[y].agg(["mean", "std"]).reset_index()
        parts = ([short_hook(hook)] if len(hooks) > 1 else []) + ([f"{name} = {value}"] if len(others) > 1 else [])
        label = ", ".join(parts) or "seed pairs"
        # Colour: the hookpoint (or, at one hookpoint, the other parameter); marker: the other parameter.
        colour = colours[(hooks.index(hook) if len(hooks) > 1 else others.index(value)) % 10]
        clipped_errorbar(ax, s[x], s["mean"], s["std"], color=colour,
                         marker=markers[others.index(value) % len(markers)], label=label)
    for hook, g in base.groupby("hookpoint_a") if y in base else ():
        if hook in hooks:
            b = g.groupby(x)[y].mean()
            label = f"random init, {short_hook(hook)}" if len(hooks) > 1 else "random init (baseline)"
            colour = colours[hooks.index(hook) % 10] if len(hooks) > 1 else "grey"
            ax.plot(b.index, b.values, "--x", color=colour, alpha=0.8, label=label)
    values = sorted(sp[x].unique())
    ax.set_xscale("log", base=2)
    ax.set_xticks(values, [str(int(v)) for v in values])
    ax.minorticks_off()
    ax.set_ylim(0, min(1, max(0.05, ax.get_ylim()[1])))
    ax.grid(alpha=0.3)


def one_configuration(sp):
    """"n = 512 and k = 8 (at blocks.2.hook_resid_post)": what every seed pair shares."""
    hooks = sp.hookpoint_a.unique()
    r = sp.iloc[0]
    return f"n = {r.n_latents_a} and k = {r.k_a} (at {hooks[0] if len(hooks) == 1 else f'{len(hooks)} hookpoints'})"


def figure_sharing(pairs, out):
    """Shared fraction and mean Hungarian cosine of the seed pairs against the number of latents and
    against k (Paulo & Belrose), where the sweep varies them: one line per hookpoint, random-init
    baselines dashed."""
    sp = seed_pairs(pairs)
    if sp.empty or "shared_fraction" not in sp:
        return None, "no seed pairs with a Hungarian matching"
    varied = varied_axes(sp)
    if not varied:
        return None, (f"every seed pair has {one_configuration(sp)}: nothing to draw against n or k; the seed "
                      "pairs against the random-init baseline are in “Every statistic against its baselines” above")
    base = baseline_pairs(pairs)
    hooks = sorted(sp.hookpoint_a.unique(), key=lambda h: (layer_of(h), h))
    fig, axes = plt.subplots(len(varied), 2, figsize=(11, 4.6 * len(varied)), squeeze=False)
    for row, (x, other, xlabel) in enumerate(varied):
        for col, (y, ylabel) in enumerate(SHARING_METRICS):
            sharing_panel(axes[row, col], sp, base, x, other, y, hooks)
            axes[row, col].set_xlabel(xlabel)
            axes[row, col].set_ylabel(ylabel)
        axes[row, 0].legend(ncol=2 if len(hooks) * 2 > 6 else 1)
    tau = thresholds(sp)
    title = f"Seed pairs: how much is shared{f' (both cosines ≥ {tau})' if tau else ''}; mean ± std over pairs"
    return save(fig, out, "sharing.png", title)


def chance_sharing(pairs, results):
    """The fraction of latents a trained SAE shares with an untrained one (the random-init baselines'
    shared fraction, those of `results` where it has any): the chance level of "shared"; NaN without one."""
    base = baseline_pairs(pairs)
    if base.empty or "shared_fraction" not in base:
        return np.nan
    own = base[base.results == results].shared_fraction.dropna()
    return float(own.mean()) if len(own) else float(base.shared_fraction.dropna().mean())


def overlap_chance(axes, chance, others):
    """The overlap a latent would have if each other seed shared it by chance alone, independently with
    probability `chance`: (1 − chance)^m shared with none of m; binomial for exactly m of them."""
    m = np.arange(1, others + 1)
    axes[0].plot(m, (1 - chance) ** m, ":", color="black", lw=2,
                 label=f"chance (random-init shared fraction {chance:.3f})")
    exact = np.arange(others + 1)
    pmf = [math.comb(others, j) * chance ** j * (1 - chance) ** (others - j) for j in exact]
    axes[1].hlines(pmf, exact - 0.45, exact + 0.45, color="black", lw=2, linestyles=":", label="chance (binomial)")


def figure_overlap(overlaps, pairs, out, limit=6):
    """N-seed overlap (Paulo & Belrose): fraction of a base SAE's latents shared with none of the first
    m other seeds (line), and with exactly m of them (bars), against chance from the random-init baseline."""
    if not overlaps:
        return None, "no results file compares three or more seeds (/overlap)"
    shown = overlaps[:limit]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.8))
    width = 0.8 / len(shown)
    for i, o in enumerate(shown):
        label = o["results"] if len(overlaps) > 1 else f"{o['n_saes']} seeds"
        m = np.arange(1, len(o["unique_fraction"]) + 1)
        axes[0].plot(m, o["unique_fraction"], marker="o", label=label)
        exact = np.arange(len(o["histogram_mean"]))
        axes[1].bar(exact + (i - (len(shown) - 1) / 2) * width, o["histogram_mean"], width, label=label)
    chance = chance_sharing(pairs, shown[0]["results"]) if len(shown) == 1 else chance_sharing(pairs, None)
    if not np.isnan(chance):
        overlap_chance(axes, chance, max(o["n_saes"] for o in shown) - 1)
    axes[0].set_xlabel("m other seeds")
    axes[0].set_ylabel("fraction shared with none of them")
    axes[1].set_xlabel("m other seeds")
    axes[1].set_ylabel("fraction shared with exactly m")
    for ax in axes:
        ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
        ax.set_ylim(0, 1.02)
        ax.grid(alpha=0.3)
        ax.legend(loc="best")
    taus = sorted({o["threshold"] for o in shown if not pd.isna(o["threshold"])})
    tau = f"; shared: both cosines ≥ τ = {' / '.join(f'{t:g}' for t in taus)}" if taus else ""
    more = f"; first {limit} of {len(overlaps)} results files" if len(overlaps) > limit else ""
    return save(fig, out, "overlap.png", f"N-seed overlap (mean over the choice of base SAE{tau}{more})")


def figure_training(curves, pairs, out):
    """Consistency over training (train.snapshot_every): per results file, the mean over its seed pairs of
    the matched decoder cosine, the shared fraction and the max decoder cosine against training tokens
    (band: the pairs' range); step 0 is the initialisations' similarity. Dashed: the trained SAEs against
    an untrained one (random-init baseline, at the end of training)."""
    if not curves:
        return None, "no results file has snapshots (train.snapshot_every)"
    fig, axes = plt.subplots(1, 3, figsize=(11, 4.6))
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
    base = with_means(baseline_pairs(pairs))
    for ax, key in zip(axes, ("mean_cos_decoder", "shared_fraction", "decoder_mcs")):
        if key in base and base[key].notna().any():
            ax.axhline(base[key].mean(), color="grey", ls="--", label="random init (baseline)")
    for ax, ylabel in zip(axes, ("mean matched decoder cosine", "shared fraction", "MCS (both directions)")):
        ax.xaxis.set_major_formatter(matplotlib.ticker.EngFormatter(sep=""))
        ax.set_xlabel("training tokens")
        ax.set_ylabel(ylabel)
        ax.set_ylim(0, 1)
        ax.grid(alpha=0.3)
    axes[0].legend()
    tau = thresholds(pairs)
    return save(fig, out, "training.png", "Seed pairs over training (mean over pairs; band: their range"
                + (f"; shared: both cosines ≥ {tau})" if tau else ")"))


def read_log(path):
    """train_log.jsonl as a DataFrame (one row per logged step and seed); lines that do not parse (a run
    killed mid-line) are skipped. None when nothing parses."""
    rows = []
    with open(path) as f:
        for line in f:
            try:
                rows.append(json.loads(line))
            except ValueError:
                continue
    frame = pd.DataFrame([r for r in rows if isinstance(r, dict)])
    return frame if not frame.empty and {"tokens", "seed"} <= set(frame.columns) else None


def sae_file_log(path, name):
    """An SAE file's /train/metrics (the same rows as train_log.jsonl) as a DataFrame, or None."""
    try:
        with h5py.File(path, "r") as s:
            if "train/metrics" not in s or "train/columns" not in s:
                return None
            columns = [c.decode() if isinstance(c, bytes) else str(c) for c in s["train/columns"][:]]
            return pd.DataFrame(s["train/metrics"][:], columns=columns)
    except OSError:
        return None


def train_logs(paths, saes):
    """[{results, seed, frame}]: the training log beside each results file (train_log.jsonl, written in the
    run's output directory), one record per seed; without any, the trained SAE files' /train/metrics."""
    logs = []
    for path, label in zip(paths, labels_for(paths)):
        log = os.path.join(os.path.dirname(os.path.abspath(path)), "train_log.jsonl")
        frame = read_log(log) if os.path.isfile(log) else None
        for seed, g in frame.groupby("seed") if frame is not None else ():
            logs.append({"results": label, "seed": f"seed {int(seed)}", "frame": g.sort_values("tokens")})
    trained = saes[~saes.baseline].drop_duplicates("path") if not saes.empty else saes
    for _, s in trained.iterrows() if not logs else ():
        frame = sae_file_log(s.path, s.sae) if s.path and os.path.isfile(s.path) else None
        if frame is not None and "tokens" in frame:
            logs.append({"results": s.results, "seed": s.sae, "frame": frame.sort_values("tokens")})
    return logs


# The training log's columns drawn, (column, axis label); those but FVU, L0 and dead fraction only where
# not all zero.
LOG_PANELS = (("loss", "loss"), ("fvu", "FVU (training batches)"), ("l0", "L0 (active latents per token)"),
              ("dead_fraction", "dead fraction of latents"), ("aux_loss", "auxiliary (AuxK) loss"),
              ("sparsity_loss", "sparsity loss (λ × penalty)"), ("lr", "learning rate"))


def log_panels(logs):
    """The LOG_PANELS the logs have something to show in, an even number of them (the learning rate fills in)."""
    def shown(column):
        values = [log["frame"][column] for log in logs if column in log["frame"]]
        return bool(values) and any((v.fillna(0) != 0).any() for v in values)
    always = ("fvu", "l0", "dead_fraction")
    panels = [p for p in LOG_PANELS if p[0] != "lr" and (p[0] in always or shown(p[0]))]
    if len(panels) % 2 and shown("lr"):
        panels.append(LOG_PANELS[-1])
    return panels


def log_legend(shown, runs, colours, styles):
    """The training curves' legend: a line per seed in one run; else a colour per run and a style per seed."""
    seeds = list(dict.fromkeys(log["seed"] for log in shown if log["results"] == runs[0]))
    if len(runs) == 1:
        return [plt.Line2D([], [], color=colours[i % 10], ls=styles[i % 4], label=s) for i, s in enumerate(seeds)]
    return ([plt.Line2D([], [], color=colours[i % 10], label=run) for i, run in enumerate(runs)] +
            [plt.Line2D([], [], color="black", ls=styles[i % 4], label=s) for i, s in enumerate(seeds)])


def figure_train_logs(logs, out, limit=8):
    """Training curves: loss terms, FVU, L0 and dead fraction against training tokens, one line per seed
    (colour: the run, or the seed in one run; line style: the seed)."""
    if not logs:
        return None, ("no training log: no train_log.jsonl beside the results files (universae writes it in the "
                      "run's output directory) and no /train/metrics in the SAE files")
    runs = list(dict.fromkeys(log["results"] for log in logs))
    shown = [log for log in logs if log["results"] in runs[:limit]]
    panels = log_panels(shown)
    rows = math.ceil(len(panels) / 2)
    fig, axes = plt.subplots(rows, 2, figsize=(11, 3.8 * rows + 0.9), squeeze=False)  # resized for the legend
    colours = plt.cm.tab10(np.arange(10))
    styles = ["-", "--", ":", "-."]
    for log in shown:
        seed = [x["seed"] for x in shown if x["results"] == log["results"]].index(log["seed"])
        colour = colours[(runs.index(log["results"]) if len(runs) > 1 else seed) % 10]
        for ax, (column, _) in zip(axes.flat, panels):
            if column in log["frame"]:
                ax.plot(log["frame"]["tokens"], log["frame"][column], styles[seed % 4], color=colour)
    for ax, (column, ylabel) in zip(axes.flat, panels):
        ax.set_ylim(0, max(ax.get_ylim()[1], 0.05 if column == "dead_fraction" else 0))
        ax.xaxis.set_major_formatter(matplotlib.ticker.EngFormatter(sep=""))
        ax.set_xlabel("training tokens")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
    handles = log_legend(shown, runs[:limit], colours, styles)
    ncol = min(4 if len(runs) == 1 else 2, len(handles))
    fig.legend(handles=handles, loc="lower center", ncol=ncol, frameon=False)
    more = f" (first {limit} of {len(runs)} runs)" if len(runs) > limit else ""
    legend = 0.3 * math.ceil(len(handles) / ncol) + 0.1  # inches below the panels
    fig.set_size_inches(11, 3.8 * rows + 0.5 + legend)
    return save(fig, out, "train_logs.png", f"Training curves{more}", rect=(0, legend / (3.8 * rows + 0.5 + legend), 1, 1))


def figure_stability(stability, out, limit=12):
    """Per SAE: the fraction of its latents shared with a given fraction of the other seeds, and the share
    of its reconstruction energy (Σ z² ‖W‖²) those latents carry (grouped bars, one per SAE)."""
    if not stability:
        return None, "no results file has /stability (compare.hungarian with every seed pair matched)"
    shown = stability[:limit]
    levels = sorted(set(np.concatenate([np.unique(s["stable"]) for s in shown])))
    width = 0.8 / len(shown)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.6))
    for i, s in enumerate(shown):
        label = f"{s['results']}: {s['sae']}" if len({r["results"] for r in stability}) > 1 else s["sae"]
        at = np.array([levels.index(v) for v in np.unique(s["stable"])]) + (i - (len(shown) - 1) / 2) * width
        axes[0].bar(at, [(s["stable"] == v).mean() for v in np.unique(s["stable"])], width, label=label)
        if s["energy"] is not None:
            energy = [s["energy"][s["stable"] == v].sum() / s["energy"].sum() for v in np.unique(s["stable"])]
            axes[1].bar(at, energy, width, label=label)
    axes[0].set_ylabel("fraction of latents")
    axes[1].set_ylabel("share of reconstruction energy")
    for ax in axes:
        ax.set_xticks(range(len(levels)), [f"{v:.2g}" for v in levels])
        ax.set_xlabel("fraction of the other seeds sharing the latent")
        ax.set_ylim(0, 1)
        ax.grid(alpha=0.3, axis="y")
    rows = math.ceil(len(shown) / 3)  # the legend's, below the panels
    fig.set_size_inches(11, 4.6 + 0.3 * rows)
    fig.legend(*axes[0].get_legend_handles_labels(), loc="lower center", ncol=min(3, len(shown)), frameon=False)
    more = f" (first {limit} of {len(stability)} SAEs)" if len(stability) > limit else ""
    return save(fig, out, "stability.png", f"Per-latent stability across seeds{more}; energy: Σ z² ‖W‖²",
                rect=(0, (0.3 * rows + 0.15) / (4.6 + 0.3 * rows), 1, 1))


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


def signed(excess):
    """An excess over chance with its sign, to two decimals (three below 0.01)."""
    if abs(excess) < 0.0005:
        return "±0.000"
    return f"{excess:+.3f}" if abs(excess) < 0.01 else f"{excess:+.2f}"


def at_floor(p, floor):
    """Whether a p-value is the smallest its permutation test can give (or below 0.001)."""
    return p < 0.001 or (not pd.isna(floor) and p <= floor * (1 + 1e-9))


def p_caption(pvals, floor):
    """(whether to print p in the cells, what to say of p once): p-values at the permutation test's floor
    say only "as far above chance as the test can tell", so cells print p only where it is above it."""
    values = np.concatenate([np.ravel(p) for p in pvals] + [np.zeros(0)])
    values = values[~np.isnan(values)]
    if not values.size:
        return False, ""
    smallest = "p < 0.001" if pd.isna(floor) or floor < 0.001 else f"p ≤ {floor:.2g}"
    if all(at_floor(p, floor) for p in values):
        return False, f"every {smallest} (the permutation test's floor)"
    return True, f"p printed where above the floor; elsewhere {smallest}"


def cell_text(score, excess, p, floor, show_p, lines):
    """A heatmap cell's lines: the score, its excess over chance, and p where it says something."""
    parts = [f"{score:.2f}"]
    if not np.isnan(excess):
        parts.append(signed(excess))
    if show_p and not np.isnan(p) and not at_floor(p, floor):
        parts.append(p_text(p, floor))
    return "\n".join(parts[:lines])


def heatmap(ax, score, excess, pval, limit=None, aspect=None, floor=np.nan, show_p=True, lines=3):
    """Draws a score matrix: coloured by the excess over chance (diverging, centred at 0, ±limit) when
    limit is given, else by the raw score (0..1); each cell annotated (10 pt) with up to `lines` lines of
    score, excess and p (p only where above the permutation test's floor). → the image (for the colour bar)."""
    if limit is not None:
        im = ax.imshow(excess, vmin=-limit, vmax=limit, cmap="RdBu_r", aspect=aspect)
    else:
        im = ax.imshow(score, vmin=0, vmax=1, cmap="viridis", aspect=aspect)
    for i in range(score.shape[0]):
        for j in range(score.shape[1]):
            if np.isnan(score[i, j]) or lines < 1:
                continue
            if limit is not None and not np.isnan(excess[i, j]):
                dark = abs(excess[i, j]) > 0.6 * limit
            else:
                dark = limit is None and score[i, j] < 0.6
            text = cell_text(score[i, j], excess[i, j] if limit is not None else np.nan, pval[i, j], floor, show_p, lines)
            ax.text(j, i, text, ha="center", va="center", fontsize=10, color="white" if dark else "black")
    return im


def has_excess(frame, column):
    """Whether the results give `column`'s excess over chance (column_excess; results files before it lack it)."""
    return column + "_excess" in frame and frame[column + "_excess"].notna().any()


LAYER_METRICS = (("svcca", "SVCCA (decoder pairing)"), ("rsa", "RSA (decoder pairing)"),
                 ("activation_svcca", "SVCCA (activation pairing)"), ("activation_rsa", "RSA (activation pairing)"))


def layer_pairs(pairs):
    """→ (the trained pairs of equal size within one model at hookpoints some comparison paired with
    another hookpoint, None), or (None, why there are none)."""
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
    return trained[trained.hookpoint_a.isin(hooks) & trained.hookpoint_b.isin(hooks)], None


def baseline_line(pairs, hooks, n, column):
    """"random init: 0.91 (+0.02)": the random-init baselines' mean score (and excess) at these
    hookpoints and size, or "" without any."""
    base = baseline_pairs(pairs)
    if base.empty or column not in base:
        return ""
    base = base[base.hookpoint_a.isin(hooks) & (base.n_latents_a == n)]
    scores = base[column].dropna()
    if scores.empty:
        return ""
    excess = base[column + "_excess"].dropna() if column + "_excess" in base else scores.iloc[0:0]
    return f"random init: {scores.mean():.2f}" + (f" ({signed(excess.mean())})" if len(excess) else "")


def chance_line(score, excess):
    """"chance (null mean) 0.43–0.63": the range of the cells' permutation-null means (score − excess)."""
    null = (score - excess)[~np.isnan(score - excess)]
    if not null.size:
        return ""
    low, high = (f"{v + 0.0:.2f}".replace("-0.00", "0.00") for v in (null.min(), null.max()))
    return f"chance (null mean) {low}" + (f"–{high}" if high != low else "")


def layer_panel(fig, ax, matrix, title, limit, floor, show_p, baseline):
    hooks, score, excess, pval = matrix
    n = len(hooks)
    lines = 3 if n <= 4 else 2 if n <= 6 else 1 if n <= 9 else 0
    im = heatmap(ax, score, excess, pval, limit, floor=floor, show_p=show_p, lines=lines)
    short = [short_hook(h) for h in hooks]
    ax.set_xticks(range(n), short, rotation=30, ha="right")
    ax.set_yticks(range(n), short)
    ax.set_xlabel("hookpoint of SAE B")
    if ax.get_subplotspec().is_first_col():  # the right column's would run into the colour bar on its left
        ax.set_ylabel("hookpoint of SAE A")
    notes = [chance_line(score, excess) if limit is not None else "", baseline]
    ax.set_title("\n".join([title] + [t for t in notes if t]))
    bar = fig.colorbar(im, ax=ax, fraction=0.046)
    bar.set_label("score − null mean" if limit is not None else "score")


def figure_layers(pairs, out):
    """Layer × layer SVCCA and RSA (Lan et al.), from the decoder pairing and, where the results have
    activations, from the activation pairing: a grid of heatmaps, two a row, each titled with chance
    (the permutation-null means) and the random-init baseline."""
    trained, why = layer_pairs(pairs)
    if trained is None:
        return None, why
    metrics = [(c, t) for c, t in LAYER_METRICS if c in trained and trained[c].notna().any()]
    if not metrics:
        return None, "no SVCCA/RSA scores in the results"
    # Panels per SAE size (pairs of equal size only), at most three sizes.
    sizes = sorted(trained.n_latents_a.unique())[:3]
    panels = [(n, c, f"{t}, n = {n}" if len(sizes) > 1 else t) for n in sizes for c, t in metrics]
    matrices = {(n, column): layer_matrix(trained[trained.n_latents_a == n], column) for n, column, _ in panels}
    # Colour by the excess over chance where the results have it (with few paired rows SVCCA's permutation
    # null has a high mean, so raw scores mostly measure the sample size); one symmetric limit per
    # statistic, so the sizes' panels compare.
    limits = {c: excess_limit([matrices[(n, c)][2] for n in sizes]) for c, _ in metrics if has_excess(trained, c)}
    floor = p_floor(trained.permutations.min()) if "permutations" in trained else np.nan
    show_p, p_note = p_caption([m[3] for m in matrices.values()], floor)
    rows = math.ceil(len(panels) / 2)
    fig, axes = plt.subplots(rows, 2, figsize=(11, 4.9 * rows + 0.6), squeeze=False, layout="constrained")
    for ax, (n, column, title) in zip(axes.flat, panels):
        hooks = matrices[(n, column)][0]
        layer_panel(fig, ax, matrices[(n, column)], title, limits.get(column), floor, show_p,
                    baseline_line(pairs, hooks, n, column))
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    what = "cells: score, its excess over chance (the colour)" if limits else "cells: score"
    title = f"Layer × layer similarity (mean over SAE pairs; {what})" + (f"\n{p_note}" if p_note else "")
    return save(fig, out, "layers.png", title)


def size_pairs(pairs):
    """The trained pairs at one hookpoint within one model that have a decoder MCS, at hookpoints where
    some pair compares two sizes; empty without any."""
    if pairs.empty or "decoder_mcs_ab" not in pairs:
        return pairs.iloc[0:0]
    same = pairs[~pairs.baseline & ~across_models(pairs) & (pairs.hookpoint_a == pairs.hookpoint_b)]
    same = same[same.decoder_mcs_ab.notna()]
    hooks = set(same[same.n_latents_a != same.n_latents_b].hookpoint_a)
    return same[same.hookpoint_a.isin(hooks)]


def mcs_matrix(sp, base, hook):
    """→ (sizes, [sizes × sizes + 1] matrix): mean decoder MCS of the row size's latents into the column
    size's SAE (A → B), the last column the random-init baseline of the row's size."""
    at = sp[sp.hookpoint_a == hook]
    sizes = sorted(set(at.n_latents_a) | set(at.n_latents_b))
    acc = {}
    for _, r in at.iterrows():
        acc.setdefault((r.n_latents_a, r.n_latents_b), []).append(r.decoder_mcs_ab)
        acc.setdefault((r.n_latents_b, r.n_latents_a), []).append(r.decoder_mcs_ba)
    for _, r in base[base.hookpoint_a == hook].iterrows() if "decoder_mcs_ab" in base else ():
        acc.setdefault((r.n_latents_a, "random"), []).append(r.decoder_mcs_ab)
    columns = sizes + ["random"]
    matrix = np.array([[np.nanmean(acc[(a, b)]) if (a, b) in acc else np.nan for b in columns] for a in sizes])
    return sizes, matrix


def mcs_panel(fig, ax, sizes, matrix, hook):
    im = ax.imshow(matrix, vmin=0, vmax=1, cmap="viridis")
    for (i, j), v in np.ndenumerate(matrix):
        if not np.isnan(v):
            ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=10, color="white" if v < 0.6 else "black")
    ax.axvline(len(sizes) - 0.5, color="white", lw=4)
    ax.set_xticks(range(len(sizes) + 1), [str(n) for n in sizes] + ["random\ninit"])
    ax.set_yticks(range(len(sizes)), [str(n) for n in sizes])
    ax.set_xlabel("latents of SAE B")
    ax.set_ylabel("latents of SAE A")
    ax.set_title(short_hook(hook))
    fig.colorbar(im, ax=ax, fraction=0.046).set_label("mean max decoder cosine A → B")


def figure_mcs_sizes(pairs, out):
    """Size × size decoder MCS (Gerovitch & Parker-Sartori): per hookpoint, the mean over A's latents of the
    max cosine to B's decoder rows, for every pair of SAE sizes, beside the random-init baseline."""
    sp = size_pairs(pairs)
    if sp.empty:
        return None, ("no pairs of SAEs of different sizes at one hookpoint (run.compare_across = "
                      "[\"sae.n_latents\"] makes them)")
    base = baseline_pairs(pairs)
    hooks = sorted(set(sp.hookpoint_a), key=lambda h: (layer_of(h), h))
    matrices = [mcs_matrix(sp, base, h) for h in hooks]
    width = max(len(sizes) for sizes, _ in matrices) + 1
    cols = 1 if len(hooks) == 1 else 2
    rows = math.ceil(len(hooks) / cols)
    side = min(5.5, 0.75 * width + 2.2)
    fig, axes = plt.subplots(rows, cols, figsize=(side * cols, 0.85 * side * rows + 0.5), squeeze=False,
                             layout="constrained")
    for ax, hook, (sizes, matrix) in zip(axes.flat, hooks, matrices):
        mcs_panel(fig, ax, sizes, matrix, hook)
    for ax in list(axes.flat)[len(hooks):]:
        ax.axis("off")
    return save(fig, out, "mcs_sizes.png", "Decoder MCS between SAE sizes (row: A, column: B; mean over pairs)")


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
               "activation_pairs": r.get("activation_pairs", np.nan), "comparisons": 1,
               "permutations": r.get("permutations", np.nan)}
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
    cell_lines = 3 if n_hooks <= 3 else 2 if n_hooks <= 5 else 1 if n_hooks <= 8 else 0  # at 10 pt
    floor = p_floor(across.permutations.min()) if "permutations" in across else np.nan
    show_p, p_note = p_caption([cells[mn][p].to_numpy(float) for mn in shown for _, _, p in metrics if p], floor)
    # At most 11 in wide: the page shows it near its drawn size, so the 10-pt text stays 10 pt.
    fig, axes = plt.subplots(len(shown), len(metrics), figsize=(min(11, 1.3 * side * len(metrics)),
                                                                1.2 * side * len(shown) + 0.6), squeeze=False)
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
            im = heatmap(ax, score, excess, pval, limits.get(column), aspect="auto", floor=floor, show_p=show_p,
                         lines=cell_lines)
            ax.set_xticks(range(len(hooks_n)), [short_hook(h) for h in hooks_n], rotation=30, ha="right")
            ax.set_yticks(range(len(hooks_m)), [short_hook(h) for h in hooks_m])
            ax.set_xlabel(n, fontsize=10)
            if ax is axes[row][0]:
                ax.set_ylabel(m, fontsize=10)
            if column in limits:  # the seed spread above chance too, the raw score beside it
                lines = [f"{label}: {seed_mean(ref, model, hooks, column + '_excess'):+.2g} "
                         f"(score {seed_mean(ref, model, hooks, column):.2f})"
                         for label, model, hooks in ((m, m, hooks_m), (n, n, hooks_n))
                         if not np.isnan(seed_mean(ref, model, hooks, column + "_excess"))]
                head = title  # the colour bar says "score − null mean"
            else:
                lines = [f"{label}: {v:.2f}" for label, v in
                         ((m, seed_mean(ref, m, hooks_m, column)), (n, seed_mean(ref, n, hooks_n, column)))
                         if not np.isnan(v)]
                head = title
            spread = "\n".join(lines)
            ax.set_title(f"{head}\nseed pairs (mean over layers):\n{spread}" if spread else head,
                         fontsize=10)
            bar = fig.colorbar(im, ax=ax, fraction=0.046)
            if column in limits:
                bar.set_label("score − null mean", fontsize=10)
    cell = ("SVCCA/RSA cells: score and its excess over chance (the colour)" if limits else "cells: score")
    title = ("Across models: the row model's layer vs the column model's layer\n"
             f"(mean over SAE pairs; {cell})" + "".join(f"\n{t}" for t in (p_note, note) if t))
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
                    return f"{fmt(r[column])} ({fmt(e, '+.3f')}; {p_text(r[pcol], p_floor(r.permutations))})"
                return f"{fmt(r[column])} ({p_text(r[pcol], p_floor(r.permutations))})"
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


def frequency_tokens(saes):
    """Which tokens the SAEs' firing frequencies (and so "never fired") count: "on the compared tokens" (the
    activations the compare stage read) or "on the SAE's held-out tokens" (the SAE file's own frequency)."""
    sources = set(saes.frequency_source) if "frequency_source" in saes else set()
    if sources == {"sae_file"}:
        return "on the SAEs' held-out tokens"
    if sources == {"activations"}:
        return "on the compared tokens"
    return "on the compared tokens (or, without activations, the SAEs' held-out tokens)"


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
        ax.hist(np.log10(alive), bins=bins, histtype="step", label=f"{label}: {int((f == 0).sum())} never fired")
    ax.set_xlabel("log10 firing frequency (fraction of tokens)")
    ax.set_ylabel("latents")
    labels = ax.get_legend_handles_labels()[1]
    if max(len(label) for label in labels) > 40:
        # Long labels (a sweep's task ids) would cover the histograms: below the axes instead.
        rows = math.ceil(len(labels) / 2)
        fig.set_size_inches(11, 4.5 + 0.25 * rows)
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.18), ncol=2, frameon=False)
    else:
        ax.legend()
    ax.grid(alpha=0.3)
    tokens = frequency_tokens(have)
    title = (f"Firing frequency {tokens}" + (f" (first {limit} of {len(have)} SAEs)" if len(have) > limit else "")
             + "\nlegend: latents that never fired " + tokens.split(" (")[0])
    ax.set_title(title)
    return save(fig, out, "frequency.png")


MAX_POINT_LINKS = 4096  # links from the first pair's points to the latent browser's cards


def figure_matched_vs_frequency(pairs, saes, matched_cos, out, pair_ids, limit=6):
    """Hungarian-matched decoder cosine of each latent of A against how often it fires: are the
    shared features the frequent ones? The first pair's points (all, or MAX_POINT_LINKS spread over the
    cosines) link to their cards in the latent browser."""
    sp = seed_pairs(pairs)
    if sp.empty or saes.empty:
        return None, "no seed pairs"
    freq = {(s.results, s.sae): s.frequency for _, s in saes.iterrows() if s.frequency is not None}
    chosen = [r for _, r in sp.iterrows() if (r.results, r.a) in freq and (r.results, r.pair) in matched_cos]
    if not chosen:
        return None, "no pair has both a matching and firing frequencies"
    fig, ax = plt.subplots(figsize=(11, 5))
    several = pairs.results.nunique() > 1
    for r in chosen[:limit]:
        f = np.asarray(freq[(r.results, r.a)])
        cos = matched_cos[(r.results, r.pair)]
        alive = f > 0
        ax.scatter(np.log10(f[alive]), cos[alive], s=5, alpha=0.5, label=f"{r.results}/{r.pair}" if several else r.pair)
    # The chance level: the same A matched to an untrained SAE of its shape (random-init baseline).
    base = baseline_pairs(pairs)
    base = base[(base.results == chosen[0].results) & (base.a == chosen[0].a)] if not base.empty else base
    for _, r in base.head(1).iterrows():
        if (r.results, r.pair) in matched_cos:
            f, cos = np.asarray(freq[(r.results, r.a)]), matched_cos[(r.results, r.pair)]
            ax.scatter(np.log10(f[f > 0]), cos[f > 0], s=8, marker="x", color="grey", alpha=0.6,
                       label=f"{r.results}/{r.pair} (baseline)" if several else f"{r.pair} (baseline)")
    tau = chosen[0].get("threshold", np.nan)
    if not pd.isna(tau):
        ax.axhline(tau, color="black", linestyle="--", label=f"τ = {tau:g}")
    ax.set_xlabel("log10 firing frequency of the latent in A")
    ax.set_ylabel("Hungarian-matched decoder cosine")
    ax.legend(markerscale=3, loc="upper left", bbox_to_anchor=(1.01, 1), borderaxespad=0)
    ax.grid(alpha=0.3)
    ax.set_title("Matched cosine vs firing frequency" + (f" (first {limit} of {len(chosen)} pairs)" if len(chosen) > limit else ""))
    links = matched_point_links(fig, ax, chosen[0], freq, matched_cos, pair_ids)
    return (*save(fig, out, "matched_vs_frequency.png"), links)


def matched_point_links(fig, ax, r, freq, matched_cos, pair_ids):
    """Anchors over the first pair's points, each opening latent i of A beside its partner."""
    if (r.results, r.pair) not in pair_ids:
        return ""
    f, cos = np.asarray(freq[(r.results, r.a)]), matched_cos[(r.results, r.pair)]
    alive = np.flatnonzero((f > 0) & ~np.isnan(cos))
    if len(alive) > MAX_POINT_LINKS:  # a spread sample: every latent when few, else evenly over the cosines
        alive = alive[np.argsort(cos[alive], kind="stable")][np.linspace(0, len(alive) - 1, MAX_POINT_LINKS).astype(int)]
    fig.tight_layout()
    pid = pair_ids[(r.results, r.pair)]
    return report_browser.point_links(
        fig, ax, np.log10(f[alive]), cos[alive], [f"latents.html#pair={pid}&side=a&latent={i}" for i in alive],
        [f"{html.escape(r.a)} latent {i}: matched cosine {cos[i]:.3f}, frequency {f[i]:.2%}" for i in alive])


# The Run table's columns: (column of the saes frame, header, format).
RUN_COLUMNS = (("model", "model", "s"), ("hookpoint", "hookpoint", "s"), ("architecture", "architecture", "s"),
               ("n_latents", "n", ",d"), ("k", "k", "d"), ("train_tokens", "tokens trained", ",.0f"),
               ("fvu", "FVU (held-out)", ".4f"), ("l0", "L0 (held-out)", ".2f"), ("never_fired", "never fired", ".1%"),
               ("splice_fvu", "FVU (spliced)", ".4f"), ("splice_l0", "L0 (spliced)", ".2f"),
               ("explained_variance", "explained variance (spliced)", ".4f"), ("ce_loss_score", "CE score", ".4f"),
               ("kl_div_score", "KL score", ".4f"), ("splice_tokens", "tokens spliced", ",.0f"))


def run_rows(saes):
    """One row per trained SAE (an SAE compared in several results files once), named by its file below
    the SAE files' common directory; never_fired: the fraction of its latents with frequency 0."""
    if saes.empty:
        return saes
    trained = saes[~saes.baseline].copy()
    trained["has_frequency"] = trained.frequency.notna()
    trained = trained.sort_values("has_frequency", ascending=False, kind="stable").drop_duplicates("path")
    trained["never_fired"] = [np.mean(np.asarray(f) == 0) if f is not None else np.nan for f in trained.frequency]
    paths = [os.path.abspath(p) for p in trained.path if p]
    if len(paths) == len(trained) and len(set(paths)) > 1:
        common = os.path.commonpath(paths)
        trained["name"] = [os.path.relpath(p, common) for p in paths]
    else:
        trained["name"] = trained.sae
    return trained.sort_values("name")


def run_html(saes):
    """The Run table: each trained SAE's model, hookpoint, architecture, size, k, training tokens and
    quality (held-out FVU and L0 from its file, the spliced scores from the compare stage)."""
    rows = run_rows(saes)
    if rows.empty:
        return "<h2>Run</h2><p class=skip>No trained SAEs in the results.</p>"
    columns = [(c, h, f) for c, h, f in RUN_COLUMNS if c in rows and rows[c].replace("", np.nan).notna().any()]
    tokens = frequency_tokens(rows[rows.has_frequency])
    head = "<th>SAE</th>" + "".join(f"<th>{html.escape(h + (' ' + tokens if c == 'never_fired' else ''))}</th>"
                                    for c, h, _ in columns)
    body = "".join("<tr><td>" + html.escape(r["name"]) + "</td>" +
                   "".join(f"<td>{html.escape(fmt(r[c], f) if f != 's' else str(r[c]))}</td>" for c, _, f in columns)
                   + "</tr>" for _, r in rows.iterrows())
    return ("<h2>Run</h2><p>The trained SAEs. Held-out: the SAE file's own FVU and L0 on the activations held out "
            "from training (train.eval_tokens). Spliced (where the SAE files have it): each SAE put into the model in place of its activation on "
            "held-out text (train.splice_tokens; CE and KL scores: 1 means the model loses nothing). Never fired: the "
            f"latents with firing frequency 0 {html.escape(tokens)}.</p>"
            f"<div class=scroll><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>")


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
            if c.endswith("_p"):  # "< 0.001", "≤ 0.0099" at the permutation test's floor
                text = fmt_p(v, p_floor(r.get("permutations", np.nan)))
            else:
                text = "" if (isinstance(v, float) and math.isnan(v)) else (f"{v:.3g}" if isinstance(v, float) else str(v))
            cells.append(f"<td>{html.escape(text)}</td>")
        body.append(f"<tr{' class=baseline' if r.baseline else ''}>{''.join(cells)}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def write_page(out, paths, pairs, figures, run_table="", browser=""):
    figs = []
    for title, caption, (png, why, *links), *extra in figures:  # links: anchors over its points; extra: HTML after it
        if png:
            figs.append(f"<h2>{html.escape(title)}</h2><p>{html.escape(caption)}</p><div class=fig>"
                        f"<img src='{png}' alt='{html.escape(title)}'>{''.join(links)}</div>")
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
.fig {{ position: relative; display: inline-block; max-width: 100%; }} .fig img {{ display: block; }}
a.pt {{ position: absolute; width: 8px; height: 8px; margin: -4px 0 0 -4px; border-radius: 50%; }}
a.pt:hover {{ background: rgba(200, 0, 0, 0.7); }}
</style></head><body>
<h1>Do these SAEs learn the same features?</h1>
<p>{len(pairs)} compared pairs from {len(paths)} results file(s). Every number is in <a href="pairs.csv">pairs.csv</a>;
baselines (random initialisation, --baseline) are grey. Definitions: METHODS.md (max cosine §3, certified Hungarian
matching and shared fraction §4, SVCCA/RSA/CKA/mutual kNN with permutation p-values §6, activation statistics §5).</p>
<details><summary>Inputs</summary><ul>{inputs}</ul></details>
{run_table}
{browser}
<h2>Summary</h2>
<div class=scroll>{table_html(pairs) if not pairs.empty else "<p class=skip>No pairs.</p>"}</div>
{''.join(figs)}
</body></html>
"""
    with open(os.path.join(out, "index.html"), "w") as f:
        f.write(page)


def browser_html(pairs, pair_ids):
    """The latent browser's entry: a link per compared pair (seed pairs first; at most 40 listed)."""
    if not pair_ids:
        return ""
    order = list(pair_ids.items())  # as the browser lists them
    links = [f"<a href='latents.html#pair={pid}'>{html.escape(label + ': ' if len(pairs.results.unique()) > 1 else '')}"
             f"{html.escape(pair)}</a>" for (label, pair), pid in order[:40]]
    more = f" and {len(order) - 40} more (choose them in the browser)" if len(order) > 40 else ""
    return ("<h2>Latent browser</h2><p>Every compared pair's latents, matched and seed-specific, sortable, with each "
            "latent's top activating contexts beside its partner's, and a search by token: "
            f"<a href='latents.html'>latents.html</a>. Pairs: {', '.join(links)}{more}.</p>")


EXCESS_CAPTION = ("SVCCA and RSA cells are coloured by the excess over chance (the score minus its permutation "
                  "null's mean; red above chance, blue below, white at chance) and annotated with score and excess, "
                  "where the results files give the excess; older results files are coloured by the raw score. A cell "
                  "prints p only where it is above the permutation test's floor, 1/(permutations + 1): below it the "
                  "test cannot tell cells apart, and the figure's title says so once.")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="the report directory (created)")
    parser.add_argument("results", nargs="+", help="universae results files")
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    pairs, saes, overlaps, matched_cos, curves, stability = load(args.results)
    pairs.to_csv(os.path.join(args.out, "pairs.csv"), index=False)
    pair_ids = report_browser.write_browser(args.out, args.results, labels_for(args.results))
    figures = [
        ("Every statistic against its baselines", "Each statistic of the seed pairs (blue dots, one per pair; bar: "
         "their mean) against the same statistic between a trained SAE and an untrained one of its shape (grey "
         "crosses: the random-init baseline, compare.baseline_random) and, for the statistics with a permutation "
         "test, against chance: the mean of the permutation null (dotted black bar; the score of randomly "
         "re-paired rows, which for SVCCA is high with few rows). A statistic says something about the seeds where "
         "the blue points clear both. MCS and max correlation: the mean of both directions.",
         figure_statistics(pairs, args.out)),
        ("Sharing vs size and k", "Seed pairs (same size, k and hookpoint), drawn against the parameters the "
         "inputs vary (n and k, log2 axes): the fraction of latents whose Hungarian match has decoder and encoder "
         "cosine ≥ τ, and the mean matched decoder cosine; one line per hookpoint, error bars ± one standard "
         "deviation over the pairs (clipped to [0, 1]); dashed: the random-init baseline.",
         figure_sharing(pairs, args.out)),
        ("Training curves", "Each SAE's training as universae logged it (train_log.jsonl in the run's output "
         "directory, every train.log_every steps; else the SAE files' /train/metrics): FVU of the training batches "
         "(the reconstruction loss, normalised by the batch's variance), L0, the fraction of dead latents (none of "
         "the last train.dead_tokens tokens fired them) and, where not zero, the auxiliary (AuxK) and sparsity "
         "losses, against training tokens; one line per seed.", figure_train_logs(train_logs(args.results, saes), args.out)),
        ("Consistency over training", "Seed pairs of each configuration at every weight snapshot "
         "(train.snapshot_every), step 0 being the initialisations: the mean Hungarian-matched decoder cosine "
         "(Paulo & Belrose's pairwise dictionary mean correlation), the shared fraction, and the mean max decoder "
         "cosine; colour: hookpoint, line style: number of latents; dashed grey: the trained SAEs against an untrained "
         "one (random-init baseline).", figure_training(curves, pairs, args.out)),
        ("Per-latent stability", "For each SAE, its latents grouped by the fraction of the other seeds that share "
         "them (left), and the share of the SAE's reconstruction energy each group carries (right; with "
         "activations): do the latents every seed learns carry more of the reconstruction than their number?",
         figure_stability(stability, args.out)),
        ("N-seed overlap", "For each base SAE, the fraction of its latents shared with none of the first m other "
         "seeds (left) and with exactly m of them (right, bars), shared meaning both matched cosines ≥ τ. Dotted: "
         "chance, were each other seed to share a latent independently with the probability a trained SAE shares "
         "one with an untrained SAE of its shape (the random-init baselines' shared fraction).",
         figure_overlap(overlaps, pairs, args.out)),
        ("SAE size × size: decoder MCS", "Gerovitch & Parker-Sartori's question, do SAEs of different sizes learn "
         "the same features: per hookpoint, the mean over the latents of SAE A (rows: its size) of their max "
         "decoder cosine with SAE B (columns), averaged over the pairs of those sizes (the diagonal: seeds of one "
         "size). Below the diagonal a larger A is matched into a smaller B, so its latents find worse partners. "
         "Last column: the same statistic against an untrained SAE of A's size (random-init baseline).",
         figure_mcs_sizes(pairs, args.out)),
        ("Layer × layer SVCCA and RSA", "Mean score over the SAE pairs at each pair of hookpoints (p: the largest "
         "permutation-test p-value among them), a panel per statistic and SAE size, two a row. Each panel's title "
         "gives chance (the range of its cells' permutation-null means) and the random-init baseline at those "
         "hookpoints (its score and excess over chance). " + EXCESS_CAPTION, figure_layers(pairs, args.out)),
    ]
    if across_models(pairs).any():  # a cross-model study; other inputs get no section (nothing to say)
        figures.append(
            ("Across models: layer × layer", "For each pair of models M (rows) and N (columns): M's layer i against "
             "N's layer j by SVCCA and RSA of the activation-paired decoder rows and by the mean of both max "
             "activation correlations (M→N and N→M); each cell is the mean over the SAE pairs there (p: the largest "
             "permutation-test p-value among them). Each title gives the seed spread: the same statistic between "
             "two seeds of one model, mean over the layers shown. The tables give each cell with the seed pairs "
             "at the same layers. " + EXCESS_CAPTION, figure_models(pairs, args.out), models_html(pairs)))
    figures += [
        ("Firing frequency", "Histogram of log10 firing frequency per SAE on the compared tokens (the activations "
         "the compare stage read, compare.activations; without them, the SAE file's own frequency on its held-out "
         "tokens, as the title says); the legend counts the latents that never fired on those tokens.",
         figure_frequency(saes, args.out)),
        ("Matched cosine vs firing frequency", "Each point is a latent of A: how often it fires and how well its "
         "Hungarian match in B agrees; grey crosses: the same latents matched to an untrained SAE (random-init "
         "baseline), the level a match reaches by chance. Each point of the first pair opens that latent's card, beside "
         "its partner's, in the latent browser.", figure_matched_vs_frequency(pairs, saes, matched_cos, args.out, pair_ids)),
    ]
    write_page(args.out, args.results, pairs, figures, run_html(saes), browser_html(pairs, pair_ids))
    drawn = sum(1 for _, _, (png, *_), *_ in figures if png)
    print(f"report: {len(pairs)} pairs from {len(args.results)} file(s), {drawn} figures")
    return 0


if __name__ == "__main__":
    sys.exit(main())
