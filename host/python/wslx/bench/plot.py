"""Plots for benchmark JSON: every run as a dot, the median as a bar, so the
spread on a noisy machine is visible next to the figure quoted."""
from __future__ import annotations

from pathlib import Path


def _draw(ax, doc: dict, metrics: list[str], labels: list[str], *, fontsize: int = 8, **tick_kw) -> None:
    """One panel: a median bar and a dot per run for each metric."""
    for i, m in enumerate(metrics):
        values = [r[m] for r in doc["all_runs"] if m in r]
        ax.bar(i, doc["median"][m], color="#9ecae1", width=0.6)
        ax.scatter([i] * len(values), values, color="#08519c", s=14, zorder=3)
        ax.annotate(f"{doc['median'][m]:.3g}", (i, doc["median"][m]), ha="center", va="bottom", fontsize=8)
    ax.set_xticks(range(len(metrics)), labels, fontsize=fontsize, **tick_kw)


def _subtitle(doc: dict) -> str:
    return f"{doc['runs']} runs, median bars; {(doc['machine'].get('git_commit') or '')[:10]}"


def runs_and_medians(doc: dict, metrics: list[str], png: Path, *, title: str, ylabel: str,
                     labels: list[str] | None = None) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(max(4, 1.6 * len(metrics) + 2), 4))
    _draw(ax, doc, metrics, labels or metrics)
    ax.set_ylabel(ylabel)
    ax.set_title(f"{title}\n{_subtitle(doc)}", fontsize=9)
    fig.tight_layout()
    fig.savefig(png, dpi=110)
    plt.close(fig)


def grouped_runs_and_medians(doc: dict, groups: list[tuple[str, list[str]]], png: Path, *, title: str,
                             log: bool = False) -> None:
    """Side-by-side panels, one per (panel title, metrics) group, for metrics of different units."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(groups), figsize=(17, 5))
    for ax, (panel, metrics) in zip(axes, groups):
        _draw(ax, doc, metrics, [m.replace("_", "\n", 1) for m in metrics], fontsize=7, rotation=30, ha="right")
        if log:
            ax.set_yscale("log")
        ax.set_title(panel, fontsize=9)
    fig.suptitle(f"{title}; {_subtitle(doc)}", fontsize=9)
    fig.tight_layout()
    fig.savefig(png, dpi=110)
    plt.close(fig)
