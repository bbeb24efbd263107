"""Figures rebuilt from run directories: forget-vs-retain Pareto plot (labelled points, cost as marker
size), line plots with error bands over seeds, labelled heatmaps and per-example KLOM distributions. Every
figure states n in its labels or title."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; experiments run headless on clusters
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd


def _save(fig, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
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


def pareto_points(df: pd.DataFrame, forget: str = "acc/forget_train", retain: str = "acc/retain_test",
                  cost: str = "cost/unlearn_s", label: str = "method") -> pd.DataFrame:
    """One point per ``label``: mean and std over its runs of forget and retain accuracy, mean cost, and n
    = its runs (every run of the label, as a table row counts them); labels without both means drop out."""
    df = df.copy()
    for c in (forget, retain, cost):
        df[c] = pd.to_numeric(df[c], errors="coerce") if c in df.columns else np.nan
    g = df.groupby(label, sort=False).agg(f=(forget, "mean"), fs=(forget, "std"), r=(retain, "mean"),
                                          rs=(retain, "std"), c=(cost, "mean"), n=(forget, "size"))
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


def pareto(df: pd.DataFrame, path: str | Path, forget: str = "acc/forget_train", retain: str = "acc/retain_test",
           cost: str = "cost/unlearn_s", label: str = "method", title: str = "") -> Path:
    """Mean ± std over runs of forget vs retain accuracy per ``label`` (``pareto_points``), each point
    named beside the plot with a leader line, since many methods land on one spot (forget 0, retain near
    the original's); labels are stacked in the order of the points' retain accuracy so none overlap.
    Marker area grows with log cost. ``df`` has one row per run."""
    g = pareto_points(df, forget, retain, cost, label)
    fig, ax = plt.subplots(figsize=(9.0, max(4.8, 0.26 * len(g) + 1.5)))
    if g.empty:
        ax.text(0.5, 0.5, "no runs with both metrics", ha="center", transform=ax.transAxes)
        return _save(fig, path)
    c = g["c"].fillna(0).clip(lower=0)
    size = 25 + 45 * np.log10(1 + c / max(c.min(), 1e-3))  # relative to the cheapest: seconds span decades
    order = sorted(range(len(g)), key=lambda i: (-g["r"].iloc[i], g["f"].iloc[i]))
    slots = np.linspace(0.98, 0.02, len(g)) if len(g) > 1 else np.array([0.5])
    others = 0
    for rank, i in enumerate(order):
        name, row = g.index[i], g.iloc[i]
        st = _style(str(name), others)
        if st["scale"] == 1.0:  # Original and Retrain keep their own style, the others take turns
            others += 1
        ax.errorbar(row.f, row.r, xerr=np.nan_to_num(row.fs), yerr=np.nan_to_num(row.rs), fmt="none",
                    ecolor=st["color"], alpha=0.8, lw=1.2, capsize=3, zorder=2)
        ax.scatter(row.f, row.r, s=size.iloc[i] * st["scale"], marker=st["marker"], facecolor=st["facecolor"],
                   edgecolor=st["edgecolor"], lw=1.0, zorder=4 if st["scale"] > 1 else 3)
        text = f"{name} (n={int(row.n)}" + (f", {row.c:.2g} s)" if np.isfinite(row.c) else ")")
        ax.annotate(text, xy=(row.f, row.r), xytext=(1.03, slots[rank]), textcoords="axes fraction",
                    va="center", fontsize=7, color=st["color"],
                    arrowprops={"arrowstyle": "-", "color": st["color"], "lw": 0.5, "alpha": 0.6})
    front = pareto_front(g["f"].to_numpy(), g["r"].to_numpy())
    ax.plot(g["f"].to_numpy()[front], g["r"].to_numpy()[front], "k--", lw=0.8, alpha=0.6, label="Pareto front")
    ax.set(xlabel=f"{forget} (lower = more forgotten)", ylabel=f"{retain} (higher = better kept)",
           title=title or "forget vs retain; marker size = unlearning cost")
    ax.legend(fontsize=7, frameon=False, loc="lower left")
    ax.margins(0.08)
    return _save(fig, path)


def lines(df: pd.DataFrame, x: str, y: str | list[str], path: str | Path, hue: str | None = None,
          logx: bool = False, title: str = "", band: str = "std") -> Path:
    """Mean of ``y`` against ``x`` with a ±1 std band (``band="sem"`` for the standard error) over the
    runs at each x; one panel per y metric, one line per ``hue`` value."""
    ys = [y] if isinstance(y, str) else list(y)
    fig, axes = plt.subplots(1, len(ys), figsize=(4.6 * len(ys), 3.6), squeeze=False)
    d = df.copy()
    d[x] = pd.to_numeric(d[x], errors="coerce")
    groups = [(None, d)] if hue is None else list(d.groupby(hue, sort=True))
    for ax, m in zip(axes[0], ys):
        for name, g in groups:
            if m not in g.columns:
                continue
            s = g.assign(_y=pd.to_numeric(g[m], errors="coerce")).groupby(x)["_y"].agg(["mean", "std", "count"])
            s = s.dropna(subset=["mean"]).sort_index()
            if s.empty:
                continue
            spread = s["std"].fillna(0) / (np.sqrt(s["count"]) if band == "sem" else 1)
            lab = f"{name} " if name is not None else ""
            ax.plot(s.index, s["mean"], marker="o", ms=3, label=f"{lab}(n={int(s['count'].min())}-{int(s['count'].max())})")
            ax.fill_between(s.index, s["mean"] - spread, s["mean"] + spread, alpha=0.2)
        if logx:
            ax.set_xscale("log")
        ax.set(xlabel=x, ylabel=m)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7, frameon=False)
        else:
            ax.text(0.5, 0.5, "no finished runs", ha="center", va="center", transform=ax.transAxes, fontsize=8)
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
            ax.axhline(null, color="k", ls="--", lw=0.8, label="one distribution vs itself")
        ax.axhline(np.log(1 / 1e-5), color="tab:red", ls=":", lw=0.8, label="ceiling (no overlap)")
        ax.set_title(f"KLOM on {part}", fontsize=9)
    axes[0, 0].set_ylabel("KL(unlearned || retrained), per example")
    axes[0, 0].legend(fontsize=7, frameon=False, loc="center right")
    fig.suptitle(title or "per-example KLOM (lower = closer to retraining)", fontsize=9)
    return _save(fig, path)
