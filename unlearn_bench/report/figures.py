"""Figures rebuilt from run directories: forget-vs-retain Pareto plot (labelled points, cost as marker
size with its legend, the front through the rows that forget), line plots with error bands over seeds,
labelled heatmaps and per-example KLOM distributions. Every figure states n in its labels or title, names
its axes as the README does, and keeps its legends off the lines."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; experiments run headless on clusters
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd


def _save(fig, path: str | Path, tight: bool = True) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if tight:
        fig.tight_layout()
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)
    return path


def pareto_front(forget: np.ndarray, retain: np.ndarray) -> np.ndarray:
    """Indices of points no other point beats on both axes (lower forget accuracy, higher retain accuracy),
    ordered by forget accuracy."""
    f, r = np.asarray(forget, float), np.asarray(retain, float)
    keep = [i for i in range(len(f))
            if not np.any((f <= f[i]) & (r >= r[i]) & ((f < f[i]) | (r > r[i])))]
    return np.array(sorted(keep, key=lambda i: f[i]), dtype=int)


MARKERS = ("o", "s", "^", "v", "D", "P", "X", "<", ">", "h", "p", "d", "8", "H", "*")
# what the README and docs/metrics.md call the keys the figures plot
NAMES = {"acc/forget_train": "forget accuracy (D_f, At)", "acc/retain_train": "retain accuracy (D_r, Ag)",
         "acc/forget_test": "forget-class test accuracy", "acc/retain_test": "retain-class test accuracy",
         "acc/test": "test accuracy", "cost/unlearn_s": "unlearning time (s)",
         "cfg/method.h": "H, units perturbed", "cfg/method.n": "N, unseen images"}


def axis_name(key: str) -> str:
    """A key as the README names it, the key itself after it:
    "forget accuracy (D_f, At) [acc/forget_train]"."""
    name = NAMES.get(key)
    return f"{name} [{key.removeprefix('cfg/')}]" if name else key.removeprefix("cfg/")


def pareto_points(df: pd.DataFrame, forget: str = "acc/forget_train", retain: str = "acc/retain_test",
                  cost: str = "cost/unlearn_s", label: str = "method",
                  eligible: str | None = None) -> pd.DataFrame:
    """One point per ``label``: mean and std over its runs of forget and retain accuracy, mean cost, n = its
    runs (every run of the label, as a table row counts them) and ``ok``: whether ``eligible`` (a column,
    True where the row forgets) holds for it; labels without both means drop out."""
    df = df.copy()
    for c in (forget, retain, cost):
        df[c] = pd.to_numeric(df[c], errors="coerce") if c in df.columns else np.nan
    df["_ok"] = df[eligible].astype(bool) if eligible else ~df[label].astype(str).str.startswith("Original")
    g = df.groupby(label, sort=False).agg(f=(forget, "mean"), fs=(forget, "std"), r=(retain, "mean"),
                                          rs=(retain, "std"), c=(cost, "mean"), n=(forget, "size"),
                                          ok=("_ok", "all"))
    return g.dropna(subset=["f", "r"])


def _style(name: str, i: int) -> dict:
    """Original a black ring, Retrain a black star, every other point its own marker x colour pair
    (distinct for 30 points, then hollow for the next 30)."""
    if name.startswith("Original"):  # "Original forget=3": one per table row
        return {"marker": "o", "facecolor": "none", "edgecolor": "black", "color": "black", "scale": 3.0}
    if name.startswith("retrain"):
        return {"marker": "*", "facecolor": "black", "edgecolor": "black", "color": "black", "scale": 2.0}
    col = plt.cm.tab10(i % 10)
    hollow = (i // 30) % 2 == 1
    return {"marker": MARKERS[i % len(MARKERS)], "facecolor": "none" if hollow else col,
            "edgecolor": col if hollow else "black", "color": col, "scale": 1.0}


def cost_area(seconds) -> np.ndarray:
    """Marker area (points^2) for an unlearning time: grows with log seconds, the same scale in every
    figure, so the size legend reads off any point."""
    return 20 + 32 * np.log10(1 + np.clip(np.asarray(seconds, float), 0, None) / 0.01)


def _size_legend(ax, costs: pd.Series):
    """A legend of marker areas at the decades of unlearning time the points span (from 0.01 s)."""
    c = costs.dropna()
    c = c[c > 0]
    if c.empty:
        return None
    lo = max(int(np.floor(np.log10(c.min()))), -2)
    hi = max(int(np.ceil(np.log10(c.max()))), lo + 1)
    handles = [ax.scatter([], [], s=cost_area(10.0 ** e), marker="o", facecolor="lightgray", edgecolor="gray")
               for e in range(lo, hi + 1)]
    return ax.legend(handles, [f"{10.0 ** e:g} s" for e in range(lo, hi + 1)], fontsize=7, frameon=False,
                     loc="upper right", bbox_to_anchor=(1.0, -0.12), ncol=min(6, len(handles)),
                     title="marker area = unlearning time", title_fontsize=7)


def pareto(df: pd.DataFrame, path: str | Path, forget: str = "acc/forget_train",
           retain: str = "acc/retain_test", cost: str = "cost/unlearn_s", label: str = "method",
           title: str = "", eligible: str | None = None) -> Path:
    """Mean ± std over runs of forget vs retain accuracy per ``label`` (``pareto_points``; ``df`` has one
    row per run), each point named beside the plot with a leader line, since many methods land on one spot;
    labels are stacked in the order of the points' retain accuracy so none overlap. Marker area is the
    unlearning time (``cost_area``, with a size legend). The dashed Pareto front joins the points no other
    point beats on both axes among those that forget: ``eligible`` (a column, True where the row's forget
    accuracy is below the Original's beyond noise), else every point but the Original. The others say
    "does not forget" in their label."""
    g = pareto_points(df, forget, retain, cost, label, eligible)
    fig, ax = plt.subplots(figsize=(9.0, max(5.2, 0.26 * len(g) + 2.2)))
    if g.empty:
        ax.text(0.5, 0.5, "no runs with both metrics", ha="center", transform=ax.transAxes)
        return _save(fig, path)
    size = pd.Series(cost_area(g["c"].fillna(0)), index=g.index)
    order = sorted(range(len(g)), key=lambda i: (-g["r"].iloc[i], g["f"].iloc[i]))
    slots = np.linspace(0.98, 0.02, len(g)) if len(g) > 1 else np.array([0.5])
    others = 0
    for rank, i in enumerate(order):
        name, row = g.index[i], g.iloc[i]
        st = _style(str(name), others)
        if st["scale"] == 1.0:  # Original and Retrain keep their own style, the others take turns
            others += 1
        ax.scatter(row.f, row.r, s=size.iloc[i] * st["scale"], marker=st["marker"], facecolor=st["facecolor"],
                   edgecolor=st["edgecolor"], lw=1.0, zorder=4 if st["scale"] > 1 else 3)
        if row.n > 1:  # bars above the markers, dark and capped, so a spread is seen even under a big marker
            ax.errorbar(row.f, row.r, xerr=np.nan_to_num(row.fs), yerr=np.nan_to_num(row.rs), fmt="none",
                        ecolor="black", lw=1.6, capsize=4, capthick=1.6, zorder=6)
            ax.errorbar(row.f, row.r, xerr=np.nan_to_num(row.fs), yerr=np.nan_to_num(row.rs), fmt="none",
                        ecolor=st["color"], lw=0.8, capsize=3.5, zorder=7)
        keeps = "" if row.ok or str(name).startswith("Original") else ", does not forget"
        secs = f", {row.c:.2g} s" if row.c < 10 else f", {row.c:.0f} s"  # 0.36 s, 7.6 s, 120 s
        secs = secs if np.isfinite(row.c) and not str(name).startswith("Original") else ""
        text = f"{name} (n={int(row.n)}{secs}{keeps})"
        ax.annotate(text, xy=(row.f, row.r), xytext=(1.03, slots[rank]), textcoords="axes fraction",
                    va="center", fontsize=7, color=st["color"],
                    arrowprops={"arrowstyle": "-", "color": st["color"], "lw": 0.5, "alpha": 0.6})
    cand = np.flatnonzero(g["ok"].to_numpy())
    front = cand[pareto_front(g["f"].to_numpy()[cand], g["r"].to_numpy()[cand])] if cand.size else cand
    (line,) = ax.plot(g["f"].to_numpy()[front], g["r"].to_numpy()[front], "k--", lw=1.0, alpha=0.8,
                      marker="o", ms=13, mfc="none", mec="black", mew=0.8, zorder=2,
                      label="Pareto front among the rows that forget\n(forget accuracy below the Original's\n"
                            "beyond noise)")
    sizes = _size_legend(ax, g["c"][[not str(i).startswith("Original") for i in g.index]])
    if sizes is not None:  # a second legend below: keep this one when the front's is added
        ax.add_artist(sizes)
    ax.set(xlabel=f"{axis_name(forget)}, lower = more forgotten",
           ylabel=f"{axis_name(retain)}, higher = better kept",
           title=(title + ": " if title else "") + "mean ± std over runs, marker area = unlearning time")
    ax.legend(handles=[line], fontsize=7, frameon=False, loc="upper left", bbox_to_anchor=(0.0, -0.12))
    ax.margins(0.08)
    return _save(fig, path)


def _ticks(ax, values) -> None:
    """Ticks at exactly the swept values, printed as they were set (5, 20, 80), and no others, so a log
    axis neither hides them nor crowds them with its own labels."""
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator
    v = np.unique(np.asarray(values, float)[np.isfinite(np.asarray(values, float))])
    if v.size > 14:  # every other one stays readable
        v = v[:: int(np.ceil(v.size / 14))]
    ax.xaxis.set_major_locator(FixedLocator(v))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x:g}"))
    ax.xaxis.set_minor_locator(NullLocator())


def lines(df: pd.DataFrame, x: str, y: str | list[str], path: str | Path, hue: str | None = None,
          logx: bool = False, title: str = "", band: str = "std", chance: float | None = None,
          xlabel: str | None = None) -> Path:
    """Mean of ``y`` against ``x`` with a ±1 std band (``band="sem"`` for the standard error) over the
    runs at each x; one panel per y metric, one line per ``hue`` value. Ticks sit at the x values swept;
    ``chance`` draws the chance accuracy on the forget-accuracy panels; legends go below the panels, clear of
    every line."""
    ys = [y] if isinstance(y, str) else list(y)
    fig, axes = plt.subplots(1, len(ys), figsize=(4.6 * len(ys), 4.2), squeeze=False)
    d = df.copy()
    d[x] = pd.to_numeric(d[x], errors="coerce")
    groups = [(None, d)] if hue is None else list(d.groupby(hue, sort=True))
    for ax, m in zip(axes[0], ys):
        for name, g in groups:
            if m not in g.columns:
                continue
            num = g.assign(_y=pd.to_numeric(g[m], errors="coerce"))
            s = num.groupby(x)["_y"].agg(["mean", "std", "count"])
            s = s.dropna(subset=["mean"]).sort_index()
            if s.empty:
                continue
            spread = s["std"].fillna(0) / (np.sqrt(s["count"]) if band == "sem" else 1)
            lo, hi = int(s["count"].min()), int(s["count"].max())
            n = f"n={lo}" if lo == hi else f"n={lo}–{hi}"
            lab = f"{hue}={name}, {n}" if name is not None else f"{n} per point"
            ax.plot(s.index, s["mean"], marker="o", ms=3, label=lab)
            ax.fill_between(s.index, s["mean"] - spread, s["mean"] + spread, alpha=0.2)
        if logx:
            ax.set_xscale("log")
        if d[x].notna().any():
            _ticks(ax, d[x])
        if chance is not None and m.startswith("acc/forget"):
            ax.axhline(chance, color="gray", ls=":", lw=1.0,
                       label=f"chance, 1/{round(1 / chance)} = {chance:.2f}")
        ax.set(xlabel=xlabel or axis_name(x), ylabel=axis_name(m))
        handles, labels = ax.get_legend_handles_labels()
        if handles:
            ax.legend(fontsize=7, frameon=False, loc="upper center", bbox_to_anchor=(0.5, -0.2),
                      ncol=min(3, len(handles)))
        if not any(lab for lab in labels if not lab.startswith("chance")):
            ax.text(0.5, 0.5, "no finished runs", ha="center", va="center", transform=ax.transAxes,
                    fontsize=8)
    fig.suptitle(title or f"mean ± {band} over runs", fontsize=9)
    return _save(fig, path)


def heatmap(matrix, rows, cols, path: str | Path, title: str = "", fmt: str = "{:.2f}", cmap: str = "viridis",
            vmin: float | None = None, vmax: float | None = None, xlabel: str = "", ylabel: str = "") -> Path:
    """Annotated heatmap (cells show their value; NaN cells are left blank)."""
    m = np.asarray(matrix, dtype=float)
    fig, ax = plt.subplots(figsize=(0.6 * m.shape[1] + 2.5, 0.5 * m.shape[0] + 1.8))
    im = ax.imshow(np.ma.masked_invalid(m), cmap=cmap, vmin=vmin, vmax=vmax, aspect="auto")
    ax.set_xticks(range(len(cols)), [str(c) for c in cols], rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(len(rows)), [str(r) for r in rows], fontsize=8)
    if m.size <= 400:  # beyond that the numbers are unreadable anyway
        lo, hi = np.nanmin(m) if np.isfinite(m).any() else 0, np.nanmax(m) if np.isfinite(m).any() else 1
        for i in range(m.shape[0]):
            for j in range(m.shape[1]):
                if np.isfinite(m[i, j]):
                    dark = (m[i, j] - lo) / (hi - lo + 1e-12) < 0.5
                    ax.text(j, i, fmt.format(m[i, j]), ha="center", va="center", fontsize=7,
                            color="white" if dark else "black")
    fig.colorbar(im, ax=ax, fraction=0.046)
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
    return _save(fig, path)


def klom_boxes(per_method: dict[str, dict[str, np.ndarray]], null: float | None, path: str | Path,
               title: str = "") -> Path:
    """Per-example KLOM per method, one panel per part (forget / retain / test), as box plots over every
    example of every run; the dashed line is what two samples of one distribution score at the runs' N."""
    parts = [p for p in ("forget", "retain", "test") if any(p in d for d in per_method.values())]
    fig, axes = plt.subplots(1, len(parts), figsize=(1.2 + 0.55 * len(per_method) * len(parts), 3.6),
                             squeeze=False, sharey=True)
    for ax, part in zip(axes[0], parts):
        names = [m for m, d in per_method.items() if part in d]
        vals = [per_method[m][part][~np.isnan(per_method[m][part])] for m in names]
        ax.boxplot(vals, showfliers=False, widths=0.6)
        ax.set_xticks(range(1, len(names) + 1), [f"{m} ({len(v)} ex.)" for m, v in zip(names, vals)],
                      rotation=60, ha="right", fontsize=7)
        if null is not None:
            ax.axhline(null, color="k", ls="--", lw=0.8, label=f"one distribution vs itself ({null:.2f})")
        ax.axhline(np.log(1 / 1e-5), color="tab:red", ls=":", lw=0.8, label="ceiling (no overlap)")
        ax.set_title(f"KLOM on {part}", fontsize=9)
    axes[0, 0].set_ylabel("KL(unlearned || retrained), per example")
    # above the panels: a legend inside them would sit on the lines it explains
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, fontsize=7, frameon=False, loc="lower center", ncol=2,
               bbox_to_anchor=(0.5, 0.9))
    fig.subplots_adjust(top=0.8)
    fig.suptitle(title or "per-example KLOM (lower = closer to retraining)", fontsize=9, y=1.02)
    return _save(fig, path, tight=False)
