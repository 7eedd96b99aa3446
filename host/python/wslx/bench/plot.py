"""Plots for benchmark JSON: every run as a dot, the median as a bar, so the
spread on a noisy machine is visible next to the figure quoted."""
from __future__ import annotations

from pathlib import Path


def runs_and_medians(doc: dict, metrics: list[str], png: Path, *, title: str, ylabel: str,
                     labels: list[str] | None = None) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = labels or metrics
    fig, ax = plt.subplots(figsize=(max(4, 1.6 * len(metrics) + 2), 4))
    for i, m in enumerate(metrics):
        values = [r[m] for r in doc["all_runs"] if m in r]
        ax.bar(i, doc["median"][m], color="#9ecae1", width=0.6)
        ax.scatter([i] * len(values), values, color="#08519c", s=14, zorder=3)
        ax.annotate(f"{doc['median'][m]:.3g}", (i, doc["median"][m]), ha="center", va="bottom", fontsize=8)
    ax.set_xticks(range(len(metrics)), labels, fontsize=8)
    ax.set_ylabel(ylabel)
    commit = (doc["machine"].get("git_commit") or "")[:10]
    ax.set_title(f"{title}\n{doc['runs']} runs, median bars; {commit}", fontsize=9)
    fig.tight_layout()
    fig.savefig(png, dpi=110)
    plt.close(fig)
