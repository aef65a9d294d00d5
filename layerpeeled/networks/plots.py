"""The picture of one training run: accuracies, NC metrics and classifier geometry over epochs."""
from __future__ import annotations

import numpy as np

from ..plotting import pyplot, save_figure

plt = pyplot()

PANELS = (  # (y label, log scale, [(record key, legend label), ...])
    ("accuracy", False, [("train_acc", "train"), ("test_acc", "test"), ("test_acc_majority", "test, majority"),
                         ("test_acc_minority", "test, minority")]),
    ("neural collapse", True, [("nc1", "NC1"), ("nc3", "NC3"), ("nc4", "NC4")]),
    ("mean classifier cosine", False, [("minority_w_cos", "within minority"), ("majority_w_cos", "within majority"),
                                       ("between_cos", "majority-minority")]),
    ("mean squared classifier norm", False, [("majority_w_norm2", "majority"), ("minority_w_norm2", "minority")]),
)


def plot_run(records: list[dict], path, title: str = "") -> None:
    epochs = [r["epoch"] for r in records]
    fig, axes = plt.subplots(2, 2, figsize=(10, 7), sharex=True)
    for ax, (ylabel, log, series) in zip(axes.flat, PANELS):
        for key, label in series:
            ax.plot(epochs, [np.nan if r.get(key) is None else r[key] for r in records], marker="o", ms=3, label=label)
        if log:
            ax.set_yscale("log")
        ax.set_ylabel(ylabel)
        ax.set_xscale("log")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    for ax in axes[1]:
        ax.set_xlabel("epoch")
    fig.suptitle(title)
    save_figure(fig, path.parent, path.stem)
