"""report stage: the article's table for every epoch setting, and a chart of the speeds.

    python -m stages.report  ->  metrics/report.md, metrics/speed.png
"""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt

from stages.errors import PipelineError, run_stage
from stages.atomic import atomic_path, write_text
from stages.paths import metrics_dir
from stages.params import load_params

REPORT = Path("metrics/report.md")
CHART = Path("metrics/speed.png")

PARAMS = ("train.epochs",)  # the params this stage reads: dvc.yaml lists the same keys


def load_results(epochs: list[int]) -> dict[int, tuple[dict, dict]]:
    results = {}
    for e in epochs:
        d = metrics_dir(e)
        try:
            results[e] = (json.loads((d / "accuracy.json").read_text()), json.loads((d / "speed.json").read_text()))
        except FileNotFoundError as err:
            raise PipelineError(f"{err.filename} not found: run evaluate for {e} epochs first") from None
    return results


def table(accuracy: dict, speed: dict) -> str:
    """One markdown table: the article's two columns, then what we add to them."""
    base = speed["pth"]["article_img_per_s"]
    required, batch = speed["required_img_per_s"], speed["batch_size"]
    lines = [
        f"| format | test accuracy | agrees with pth | img/s (article's figure) | speed-up vs pth "
        f"| model-only img/s, batch 1 | end-to-end / model-only | latency ms (median / p90) | img/s, batch {batch} "
        f"| streaming img/s | streaming / batch {batch} | size MB | >= {required:g} img/s |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for fmt, acc in accuracy.items():
        s = speed[fmt]
        lines.append(
            f"| {fmt} | {acc['accuracy']:.3f} | {acc['agreement_with_pth']:.1%} | {s['article_img_per_s']:.2f} "
            f"| {s['article_img_per_s'] / base:.2f}x | {s['img_per_s_batch1']:.1f} "
            f"| {s['article_img_per_s'] / s['img_per_s_batch1']:.0%} "
            f"| {s['latency_ms_median']:.1f} / {s['latency_ms_p90']:.1f} | {s[f'img_per_s_batch{batch}']:.1f} "
            f"| {s['streaming_img_per_s']:.1f} | {s['streaming_img_per_s'] / s[f'img_per_s_batch{batch}']:.0%} "
            f"| {acc['size_mb']:.1f} | {'yes' if s['meets_requirement'] else 'no'} |"
        )
    return "\n".join(lines)


def render_markdown(results: dict[int, tuple[dict, dict]]) -> str:
    threads = next(iter(results.values()))[1]["threads"]
    parts = [
        "# Results: PyTorch (.pth) vs ONNX Runtime fp32 and int8",
        "",
        f"img/s (article's figure): test images / wall time of load + preprocess + inference, one image "
        f"at a time, mean of the passes. Streaming: the same, with decoder threads preparing the next "
        f"images while the model runs on batches (how `birds-predict` classifies a folder). Model-only "
        f"figures time inference alone on preprocessed images (median of the timed runs). "
        f"{threads} threads for every format.",
    ]
    for epochs, (accuracy, speed) in results.items():
        parts += ["", f"## Trained for {epochs} epochs", "", table(accuracy, speed)]
    parts += ["", f"![img/s per format]({CHART.name})", ""]
    return "\n".join(parts)


def plot_speeds(results: dict[int, tuple[dict, dict]], dest: Path) -> None:
    """Two panels, one bar per format and setting: end to end (the article's figure), model only."""
    formats = list(next(iter(results.values()))[0])
    required = next(iter(results.values()))[1]["required_img_per_s"]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    width = 0.8 / len(formats)
    panels = [("article_img_per_s", "end to end: load + preprocess + inference"), ("img_per_s_batch1", "model only, batch 1")]
    for ax, (key, title) in zip(axes, panels):
        for i, fmt in enumerate(formats):
            xs = [j + i * width for j in range(len(results))]
            bars = ax.bar(xs, [speed[fmt][key] for _, speed in results.values()], width, label=fmt, color=f"C{i}")
            ax.bar_label(bars, fmt="%.1f", fontsize="x-small")
        ax.axhline(required, color="black", linestyle="--", linewidth=1, label=f"required {required:g} img/s")
        ax.set_xticks([j + width * (len(formats) - 1) / 2 for j in range(len(results))], [f"{e} epochs" for e in results])
        ax.set_title(title, fontsize="medium")
    axes[0].set_ylabel("images per second")
    axes[0].legend(fontsize="small")
    fig.tight_layout()
    with atomic_path(dest) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)


def main() -> None:
    params = load_params(*PARAMS)
    results = load_results(list(params.train.epochs))
    write_text(REPORT, render_markdown(results))
    plot_speeds(results, CHART)
    print(REPORT.read_text())


if __name__ == "__main__":
    run_stage(main)
