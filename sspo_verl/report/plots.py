"""PNG figures: one panel per metric, one colour per group, mean over seeds with a ±1 std band.

Thin lines are the individual seeds; a panel no group logged is left out (and named in the returned list);
a figure with no panel is not written. Colours follow the group order, the same in every figure.
Needs matplotlib (``pip install 'sspo-verl[report]'``); the Agg backend, no display.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from sspo_verl.report.aggregate import group_curve
from sspo_verl.report.catalogue import Figure, Panel, validation_keys, validation_title
from sspo_verl.report.runs import Run

__all__ = ["figure_panels", "group_colors", "plot_figure"]


def _pyplot():
    try:
        import matplotlib
    except ImportError as e:
        raise RuntimeError(
            "sspo-report draws its figures with matplotlib, which is not installed: pip install 'sspo-verl[report]' "
            "(or pip install matplotlib)"
        ) from e
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def group_colors(labels: Sequence[str]) -> dict[str, str]:
    """A colour per group label, in order (matplotlib's default cycle, then tab20)."""
    plt = _pyplot()
    cycle = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    extra = [plt.get_cmap("tab20")(i) for i in range(20)]
    palette = list(cycle) + extra
    return {label: palette[i % len(palette)] for i, label in enumerate(labels)}


def figure_panels(figure: Figure, keys: set) -> tuple[list[Panel], list[str]]:
    """The panels of ``figure`` that some run logged, and the keys of those none logged."""
    panels, missing = [], []
    for panel in figure.panels:
        if panel == "validation":
            found = validation_keys(keys)
            panels += [Panel(k, validation_title(k)) for k in found]
            if not found:
                missing.append("val-core/<source>/<variable>/mean@<n>")
        elif panel.key in keys:
            panels.append(panel)
        else:
            missing.append(panel.key)
    return panels, missing


def plot_figure(path: str, figure: Figure, panels: Sequence[Panel], groups: Mapping[str, Sequence[Run]],
                colors: Mapping[str, str], window: int = 1) -> str:
    """Draw ``panels`` for every group into ``path``; returns ``path``."""
    plt = _pyplot()
    from matplotlib.ticker import MaxNLocator

    ncols = min(figure.ncols, len(panels))
    nrows = math.ceil(len(panels) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.2 * ncols, 3.2 * nrows + 0.6), squeeze=False,
                             constrained_layout=True)
    for ax in axes.flat[len(panels):]:
        ax.set_visible(False)
    for ax, panel in zip(axes.flat, panels):
        for label, runs in groups.items():
            curve = group_curve(runs, panel.key, window)
            if curve is None:
                continue
            color = colors[label]
            for _, steps, values in curve.per_run:
                ax.plot(steps, values, color=color, alpha=0.25, linewidth=0.8)
            seeds = len(curve.per_run)
            marker = "o" if len(curve.steps) <= 12 else None  # sparse series (validation): show the points
            ax.plot(curve.steps, curve.mean, color=color, linewidth=2, marker=marker, markersize=3,
                    label=f"{label} (n={seeds})")
            if seeds > 1:
                ax.fill_between(curve.steps, curve.mean - curve.std, curve.mean + curve.std, color=color,
                                alpha=0.2, linewidth=0)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_title(panel.title, fontsize=9)
        ax.set_xlabel("step", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    if figure.sharey_rows:
        for row in axes:
            visible = [ax for ax in row if ax.get_visible() and ax.has_data()]
            if visible:
                low = min(ax.get_ylim()[0] for ax in visible)
                high = max(ax.get_ylim()[1] for ax in visible)
                for ax in visible:
                    ax.set_ylim(low, high)
    handles, labels = [], []
    for ax in axes.flat:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            if label not in labels:
                handles.append(handle)
                labels.append(label)
    if handles:
        fig.legend(handles, labels, loc="outside lower center", ncols=min(len(labels), 4), fontsize=8)
    smoothing = f", {window}-point moving average" if window > 1 else ""
    fig.suptitle(f"{figure.title} — mean over seeds, band ±1 std{smoothing}", fontsize=10)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
