"""The picture of one training run: accuracies, NC1 and minority geometry over epochs."""
from __future__ import annotations

import numpy as np

from ..plotting import plt, save_figure


def _series(records, key):
    return [np.nan if r.get(key) is None else r[key] for r in records]


def plot_run(records: list[dict], path, title: str = "") -> None:
    epochs = [r["epoch"] for r in records]
    fig, axes = plt.subplots(2, 2, figsize=(10, 7), sharex=True)
    ax = axes[0, 0]
    for key, style in (("train_acc", "-"), ("test_acc", "-"), ("test_acc_majority", "--"), ("test_acc_minority", ":")):
        ax.plot(epochs, _series(records, key), style, marker="o", ms=3, label=key)
    ax.set_ylabel("accuracy")
    ax.legend(fontsize=7)
    ax = axes[0, 1]
    ax.plot(epochs, _series(records, "nc1"), marker="o", ms=3, label="NC1")
    ax.plot(epochs, _series(records, "nc3"), marker="s", ms=3, label="NC3")
    ax.plot(epochs, _series(records, "nc4"), marker="^", ms=3, label="NC4")
    ax.set_yscale("log")
    ax.legend(fontsize=7)
    ax = axes[1, 0]
    ax.plot(epochs, _series(records, "minority_w_cos"), marker="o", ms=3, label="cos within minority")
    ax.plot(epochs, _series(records, "majority_w_cos"), marker="s", ms=3, label="cos within majority")
    ax.plot(epochs, _series(records, "between_cos"), marker="^", ms=3, label="cos majority-minority")
    ax.set_ylabel("mean classifier cosine")
    ax.legend(fontsize=7)
    ax = axes[1, 1]
    ax.plot(epochs, _series(records, "majority_w_norm2"), marker="o", ms=3, label="majority |w|^2")
    ax.plot(epochs, _series(records, "minority_w_norm2"), marker="s", ms=3, label="minority |w|^2")
    ax.set_ylabel("mean squared classifier norm")
    ax.legend(fontsize=7)
    for a in axes[1]:
        a.set_xlabel("epoch")
    for a in axes.flat:
        a.set_xscale("log")
        a.grid(alpha=0.3)
    fig.suptitle(title)
    save_figure(fig, path.parent, path.stem)
