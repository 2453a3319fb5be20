"""Report plots (matplotlib, drawn offline to inline SVG): accuracy vs shots, accuracy vs synthetic size,
the coverage maps of `fewforge quality`, a curated set's audit scores per label, and the weights that
`paired+reweight` learned.

Each accuracy plot has one panel per task; a line is one (learner, training data) series with mean ± std
over seeds as error bars. A plot with nothing to show (one shots value, or a single synthetic size) is
skipped.
"""

from __future__ import annotations

import io
from typing import Any, Mapping, Sequence

from fewforge.evaluation.results import condition_label
from fewforge.evaluation.tables import method_order


def _figure(n_panels: int, size: tuple[float, float] = (4.2, 3.3)) -> tuple[Any, list[Any]]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = min(n_panels, 3)
    rows = (n_panels + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(size[0] * cols, size[1] * rows), squeeze=False)
    flat = [ax for row in axes for ax in row]
    for ax in flat[n_panels:]:
        ax.set_visible(False)
    return fig, flat[:n_panels]


def _svg(fig: Any) -> str:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg")
    plt.close(fig)
    text = buffer.getvalue()
    return text[text.index("<svg") :]


def _value(group: Mapping[str, Any], metric: str) -> tuple[float, float] | None:
    stats = group["metrics"].get(metric)
    return (100 * stats["mean"], 100 * stats["std"]) if stats else None


def accuracy_vs_shots(summary: Sequence[Mapping[str, Any]], metric: str = "accuracy") -> str | None:
    """One panel per task: x = shots per class, a line per (learner, training data)."""
    from matplotlib.ticker import ScalarFormatter

    tasks = list(dict.fromkeys(g["task"] for g in summary))
    if len({g["shots"] for g in summary}) < 2:
        return None
    fig, axes = _figure(len(tasks))
    for ax, task in zip(axes, tasks):
        series: dict[str, list[tuple[int, float, float]]] = {}
        for g in summary:
            value = _value(g, metric)
            if g["task"] == task and value:
                series.setdefault(f"{g['learner']}: {condition_label(g)}", []).append((g["shots"], *value))
        for name, points in series.items():
            if len(points) < 2:
                continue
            points.sort()
            xs, ys, es = zip(*points)
            ax.errorbar(
                xs, ys, yerr=es, marker="o", capsize=3, label=name, linestyle="--" if "real only" in name else "-"
            )
        ax.set_xscale("log", base=2)
        ax.set_xticks(sorted({g["shots"] for g in summary if g["task"] == task}))
        ax.get_xaxis().set_major_formatter(ScalarFormatter())
        ax.set_title(task)
        ax.set_xlabel("shots per class")
        ax.set_ylabel(f"{metric} (%)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    return _svg(fig)


def accuracy_vs_size(summary: Sequence[Mapping[str, Any]], metric: str = "accuracy") -> str | None:
    """One panel per task: x = synthetic examples per label (0 = real only), a line per (learner,
    shots, method, condition)."""
    sizes = {g["per_label"] for g in summary if g.get("per_label")}
    if len(sizes) < 2:
        return None
    tasks = list(dict.fromkeys(g["task"] for g in summary))
    fig, axes = _figure(len(tasks))
    for ax, task in zip(axes, tasks):
        base = {
            (g["learner"], g["shots"]): _value(g, metric)
            for g in summary
            if g["task"] == task and g["condition"] == "real"
        }
        series: dict[str, list[tuple[int, float, float]]] = {}
        for g in summary:
            value = _value(g, metric)
            if g["task"] != task or g["condition"] == "real" or not value:
                continue
            name = f"{g['learner']} k={g['shots']}: {g['condition'].replace('synthetic', g['method'] or '')}"
            points = series.setdefault(name, [])
            if not points and g["condition"] == "real+synthetic" and base.get((g["learner"], g["shots"])):
                points.append((0, *base[(g["learner"], g["shots"])]))
            points.append((g["per_label"], *value))
        for name, points in series.items():
            if len(points) < 2:
                continue
            points.sort()
            xs, ys, es = zip(*points)
            ax.errorbar(xs, ys, yerr=es, marker="o", capsize=3, label=name)
        ax.set_title(task)
        ax.set_xlabel("synthetic examples per label (0 = real only)")
        ax.set_ylabel(f"{metric} (%)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    return _svg(fig)


def coverage_maps(quality: Mapping[str, Any]) -> str | None:
    """The joint 2-D maps of `fewforge quality` (S3 App. C.1 Fig. 3): a panel per (task, shots, method), the
    set of its first seed; real train rows in purple (filled: within γ of a synthetic point, hollow: not),
    synthetic rows in green, γ drawn as a scale bar. None when no set has a map."""
    from fewforge.evaluation.coverage import covered

    chosen: dict[tuple, Mapping[str, Any]] = {}
    for s in quality.get("sets", []):
        key = (s["task"], s.get("shots") or 0, s["method"])
        if s.get("coverage_map") and (key not in chosen or (s.get("seed") or 0) < (chosen[key].get("seed") or 0)):
            chosen[key] = s
    if not chosen:
        return None
    fig, axes = _figure(len(chosen), size=(4.0, 3.8))
    for ax, (task, shots, method) in zip(axes, sorted(chosen, key=lambda k: (k[0], k[1], method_order(k[2])))):
        s = chosen[(task, shots, method)]
        points, radius = s["coverage_map"], s["coverage_radius"]
        gold, synthetic = points["gold"], points["synthetic"]
        mask = covered(gold, synthetic, radius)
        ax.scatter(
            *zip(*synthetic), s=6, color="#2e9e4f", alpha=0.6, linewidths=0, label=f"{method} ({len(synthetic)})"
        )
        inside = [p for p, m in zip(gold, mask) if m]
        outside = [p for p, m in zip(gold, mask) if not m]
        if inside:
            ax.scatter(*zip(*inside), s=10, color="#6a3d9a", linewidths=0, label=f"real, covered ({len(inside)})")
        if outside:
            ax.scatter(
                *zip(*outside),
                s=12,
                facecolors="none",
                edgecolors="#6a3d9a",
                linewidths=0.8,
                label=f"real, not covered ({len(outside)})",
            )
        x0, x1 = ax.get_xlim()
        y0, y1 = ax.get_ylim()
        bar_x, bar_y = x0 + 0.04 * (x1 - x0), y0 + 0.04 * (y1 - y0)
        ax.plot([bar_x, bar_x + radius], [bar_y, bar_y], color="black", linewidth=2)
        ax.annotate(
            "γ", (bar_x + radius / 2, bar_y), textcoords="offset points", xytext=(0, 3), ha="center", fontsize=8
        )
        where = f"k={shots} " if shots else ""
        ax.set_title(f"{task} {where}{method} seed {s.get('seed')}: {100 * s['coverage']:.1f}% covered", fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_xlabel(f"joint {points.get('projection', 'tsne')} map of MiniLM embeddings", fontsize=8)
        ax.legend(fontsize=7, loc="upper right", markerscale=1.5)
    return _svg(fig)


def score_histogram(curation: Mapping[str, Any], title: str) -> str | None:
    """A curated set's audit scores (the probability of each row's intended label), one bar series per
    intended label over ten bins from 0 to 1: what `filter` cuts and `weight` scales. None without bins."""
    per_label = {label: p["histogram"] for label, p in curation.get("per_label", {}).items() if p.get("histogram")}
    if not per_label:
        return None
    fig, (ax,) = _figure(1, size=(5.0, 2.8))
    bins = len(next(iter(per_label.values())))
    width = 1.0 / bins / (len(per_label) + 0.5)
    for k, (label, counts) in enumerate(per_label.items()):
        xs = [i / bins + (k + 0.25) * width for i in range(bins)]
        ax.bar(xs, counts, width=width, align="edge", label=f"{label} ({sum(counts)})")
    config = curation.get("config") or {}
    if config.get("action") == "filter" and config.get("threshold") is not None:
        ax.axvline(config["threshold"], color="black", linestyle="--", linewidth=1, label="filter threshold")
    ax.set_xlim(0, 1)
    ax.set_xlabel("auditor's probability of the intended label")
    ax.set_ylabel("rows")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)
    return _svg(fig)


def weight_histograms(groups: Sequence[tuple[str, Sequence[float], Sequence[int]]]) -> str | None:
    """The learned weights of `paired+reweight`: a panel per grid point (name, bin edges, counts summed over
    seeds) of how many synthetic rows ended with each mean weight."""
    if not groups:
        return None
    fig, axes = _figure(len(groups), size=(4.2, 2.8))
    for ax, (name, edges, counts) in zip(axes, groups):
        labels = [f"{a:g}–{b:g}" for a, b in zip(edges, edges[1:])] + [f"≥ {edges[-1]:g}"]
        ax.bar(range(len(counts)), counts, color="#4c72b0")
        ax.set_xticks(range(len(counts)))
        ax.set_xticklabels(labels, rotation=45, ha="right", fontsize=7)
        ax.set_xlabel("mean learned weight of a synthetic row")
        ax.set_ylabel("rows (all seeds)")
        ax.set_title(name, fontsize=8)
    return _svg(fig)
