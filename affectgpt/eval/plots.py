"""Bar charts of evaluation results (matplotlib, imported only when a plot is drawn).

``plot(result, path)`` draws whichever of these ``result`` is:

- a scorer result (``python -m affectgpt.eval``), or a dict of them by name (prediction files,
  checkpoints): the label metrics (M1, M2, M-avg, wheel L1, wheel L1+L2), the F1 per emotion wheel
  at both levels, the clue overlap (and the hit rate per wheel with ``--task basic``); with
  several results, also M-avg F1 per result;
- a benchmark result (``{"datasets": {set: {"per_checkpoint": {ckpt: {"score"}}}}}``): the score
  per test set for each checkpoint, and the mean over sets per checkpoint;
- a modality-ablation report (``{"conditions": {cond: {"label", "cues"}}}``): label F1 and each
  cue family's balanced accuracy per condition, against its chance level.

``python -m affectgpt.apps.plots M1.json [M2.json ...] out=plot.png`` draws saved JSON files.
"""
from __future__ import annotations

from pathlib import Path

from affectgpt.core.fileio import atomic_path

SUMMARY = (("M1", "M1"), ("M2", "M2"), ("m_avg_f1", "M-avg"), ("wheel_l1_f1", "wheel L1"),
           ("wheel_l1_l2_f1", "wheel L1+L2"))


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _f1(value) -> float:
    return float(value["f1"] if isinstance(value, dict) else value)


def _bars(ax, groups: list[str], series: dict[str, list[float | None]], title: str, ylabel: str = "F1",
          chance: list[float] | None = None) -> None:
    """Grouped bars: one group per label in ``groups``, one bar per series; values printed when few."""
    n = max(len(series), 1)
    width = 0.8 / n
    for k, (name, values) in enumerate(series.items()):
        xs = [i + (k - (n - 1) / 2) * width for i in range(len(groups))]
        bars = ax.bar(xs, [v if v is not None else 0.0 for v in values], width, label=name)
        if n * len(groups) <= 24:
            ax.bar_label(bars, labels=[f"{v:.2f}" if v is not None else "–" for v in values], fontsize=7, padding=1)
    if chance is not None:
        for i, c in enumerate(chance):
            ax.hlines(c, i - 0.42, i + 0.42, colors="black", linestyles="dashed", lw=1,
                      label="chance" if i == 0 else None)
    tilt = len(groups) > 6
    ax.set_xticks(range(len(groups)), groups, rotation=30 if tilt else 0, ha="right" if tilt else "center")
    ax.set(title=title, ylabel=ylabel, ylim=(0, 1.08))
    ax.grid(axis="y", alpha=0.3)


def save(fig, path: str | Path) -> Path:
    """Write the figure whole or not at all (temporary file, then rename) and close it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=100, format=path.suffix.lstrip(".") or "png")
    finally:
        _pyplot().close(fig)
    return path


def plot_scores(results: dict[str, dict], path: str | Path) -> Path:
    return save(scores_figure(results), path)


def scores_figure(results: dict[str, dict]):
    """Scorer results by name -> one figure: summary metrics, per-wheel F1, clue (or basic hit rate),
    and with several results M-avg F1 per result (sorted)."""
    plt = _pyplot()
    names = list(results)
    wheels = sorted({k.split("-")[1] for r in results.values() for k in r["label"] if k.startswith("M3-")},
                    key=lambda w: int(w[1:]))
    with_basic = any("basic" in r for r in results.values())
    with_clue = any((r.get("clue") or {}).get("f1") is not None for r in results.values())
    panels = 2 + (with_basic or with_clue) + (len(names) > 1)
    fig, axes = plt.subplots(1, panels, figsize=(5.2 * panels + (1.5 if len(names) > 3 else 0), 4.2))
    summary = {n: [_f1(r["label"][k]) if k in r["label"] else None for k, _ in SUMMARY] for n, r in results.items()}
    _bars(axes[0], [label for _, label in SUMMARY], summary, "label metrics (F1)")
    per_wheel = [f"{w}-{lv}" for w in wheels for lv in ("L1", "L2")]
    _bars(axes[1], per_wheel, {n: [_f1(r["label"][f"M3-{g}"]) if f"M3-{g}" in r["label"] else None for g in per_wheel]
                               for n, r in results.items()}, "F1 per emotion wheel and level")
    if with_basic:
        hit = {n: [r.get("basic", {}).get("per_wheel", {}).get(w, {}).get("hit_rate") for w in wheels]
               for n, r in results.items()}
        _bars(axes[2], wheels, hit, "basic hit rate per wheel (level 1)", ylabel="hit rate")
    elif with_clue:
        clue = {n: [(r.get("clue") or {}).get(k) for k in ("precision", "recall", "f1")] for n, r in results.items()}
        methods = sorted({(r.get("clue") or {}).get("method") or "none" for r in results.values()})
        _bars(axes[2], ["P", "R", "F1"], clue, f"clue overlap ({', '.join(methods)})", ylabel="")
    if len(names) > 1:
        order = sorted(names, key=lambda n: _f1(results[n]["label"]["m_avg_f1"]))
        vals = [_f1(results[n]["label"]["m_avg_f1"]) for n in order]
        bars = axes[-1].barh(order, vals, color="tab:gray")
        axes[-1].bar_label(bars, labels=[f"{v:.3f}" for v in vals], fontsize=7, padding=2)
        axes[-1].set(title="M-avg F1 per prediction set", xlim=(0, max(vals + [0.01]) * 1.18))
        axes[-1].grid(axis="x", alpha=0.3)
    handles, labels = axes[0].get_legend_handles_labels()
    if len(names) > 1:
        fig.legend(handles, labels, loc="lower center", ncol=min(len(names), 6), fontsize=8, frameon=False)
    fig.suptitle(f"lexicon: {results[names[0]].get('lexicon', '?')}   gold: {results[names[0]].get('n_gold', '?')}"
                 + (f"   ({names[0]})" if len(names) == 1 else ""), fontsize=9)
    fig.tight_layout(rect=(0, 0.1 if len(names) > 1 else 0, 1, 0.96))
    return fig


def benchmark_figure(result: dict):
    """Benchmark result -> score per test set for each checkpoint, and the mean over sets per checkpoint."""
    plt = _pyplot()
    sets = list(result["datasets"])
    ckpts = list(dict.fromkeys(c for s in sets for c in result["datasets"][s]["per_checkpoint"]))
    scores = {c: [result["datasets"][s]["per_checkpoint"].get(c, {}).get("score") for s in sets] for c in ckpts}
    fig, axes = plt.subplots(1, 2, figsize=(max(8, 1.1 * len(sets) * max(1, len(ckpts) ** 0.5)) + 5, 4.4),
                             gridspec_kw={"width_ratios": [3, 1.3]})
    _bars(axes[0], [f"{s}\n({result['datasets'][s].get('metric', '')})" for s in sets], scores,
          "score per test set", ylabel="score")
    if len(ckpts) > 1:
        axes[0].legend(fontsize=7)
    present = [[v for v in vals if v is not None] for vals in scores.values()]
    means = [sum(vs) / len(vs) if vs else 0.0 for vs in present]
    axes[1].plot(range(len(ckpts)), means, marker="o")
    for i, m in enumerate(means):
        axes[1].annotate(f"{m:.3f}", (i, m), textcoords="offset points", xytext=(0, 5), ha="center", fontsize=7)
    axes[1].set_xticks(range(len(ckpts)), ckpts, rotation=30, ha="right")
    axes[1].set(title="mean over sets per checkpoint", ylim=(0, 1.05))
    axes[1].grid(alpha=0.3)
    fig.tight_layout()
    return fig


def ablation_figure(report: dict):
    """Ablation report -> per condition: label F1, then each cue family's balanced accuracy vs chance."""
    plt = _pyplot()
    conds = report["conditions"]
    families = list(next(iter(conds.values())).get("cues", {}))
    panels = 1 + bool(families)
    fig, axes = plt.subplots(1, panels, figsize=(5 + 4 * bool(families), 4.2), squeeze=False)
    _bars(axes[0][0], list(conds), {"label F1": [c["label"]["f1"] for c in conds.values()]}, "label F1 per condition")
    if families:
        series = {name: [c["cues"][f]["balanced_accuracy"] for f in families] for name, c in conds.items()}
        chance = [next(iter(conds.values()))["cues"][f]["chance"] for f in families]
        _bars(axes[0][1], families, series, "per-cue balanced accuracy", ylabel="accuracy", chance=chance)
        axes[0][1].legend(fontsize=7)
    fig.tight_layout()
    return fig


def plot(result: dict, path: str | Path) -> Path:
    """Draw ``result`` (any of the shapes in the module docstring) to ``path``; ValueError otherwise."""
    if not isinstance(result, dict) or not result:
        raise ValueError("nothing to plot: expected a metrics dict")
    if "datasets" in result:
        return save(benchmark_figure(result), path)
    if "conditions" in result:
        return save(ablation_figure(result), path)
    if "label" in result:
        return save(scores_figure({"scorer": result}), path)
    if all(isinstance(v, dict) and "label" in v for v in result.values()):
        return save(scores_figure(result), path)
    raise ValueError(f"cannot plot a dict with keys {sorted(result)[:8]}: not a scorer, benchmark or ablation result")


if __name__ == "__main__":  # the command line moved to affectgpt/apps; say so instead of exiting 0 silently
    import sys

    from affectgpt.core.errors import moved_command

    sys.exit(moved_command("affectgpt.eval.plots"))
