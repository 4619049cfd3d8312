"""report stage: the article's table for every epoch setting, and a chart of the speeds.

    python -m stages.report  ->  metrics/report.md, metrics/speed.png
"""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt

from stages.atomic import atomic_path, write_text
from stages.formats import metrics_dir
from stages.params import load_params

REPORT = Path("metrics/report.md")
CHART = Path("metrics/speed.png")


def load_results(epochs: list[int]) -> dict[int, tuple[dict, dict]]:
    results = {}
    for e in epochs:
        d = metrics_dir(e)
        try:
            results[e] = (json.loads((d / "accuracy.json").read_text()), json.loads((d / "speed.json").read_text()))
        except FileNotFoundError as err:
            raise FileNotFoundError(f"{err.filename} not found: run evaluate for {e} epochs first") from None
    return results


def table(accuracy: dict, speed: dict) -> str:
    """One markdown table: the article's two columns, then what we add to them."""
    base = speed["pth"]["article_img_per_s"]
    required = speed["required_img_per_s"]
    lines = [
        f"| format | test accuracy | img/s (article's figure) | speed-up vs pth | latency ms (median / p90) | size MB | >= {required:g} img/s |",
        "|---|---|---|---|---|---|---|",
    ]
    for fmt, acc in accuracy.items():
        s = speed[fmt]
        lines.append(
            f"| {fmt} | {acc['accuracy']:.3f} | {s['article_img_per_s']:.2f} | {s['article_img_per_s'] / base:.2f}x "
            f"| {s['latency_ms_median']:.1f} / {s['latency_ms_p90']:.1f} | {acc['size_mb']:.1f} "
            f"| {'yes' if s['meets_requirement'] else 'no'} |"
        )
    return "\n".join(lines)


def render_markdown(results: dict[int, tuple[dict, dict]]) -> str:
    threads = next(iter(results.values()))[1]["threads"]
    parts = [
        "# Results: PyTorch (.pth) vs ONNX Runtime",
        "",
        f"Test images / wall time for load + preprocess + inference, batch 1, mean of the passes; "
        f"{threads} threads for every format. Latency is model-only at batch 1.",
    ]
    for epochs, (accuracy, speed) in results.items():
        parts += ["", f"## Trained for {epochs} epochs", "", table(accuracy, speed)]
    parts += ["", f"![img/s per format]({CHART.name})", ""]
    return "\n".join(parts)


def plot_speeds(results: dict[int, tuple[dict, dict]], dest: Path) -> None:
    formats = list(next(iter(results.values()))[0])
    fig, ax = plt.subplots(figsize=(6, 3.5))
    width = 0.8 / len(formats)
    for i, fmt in enumerate(formats):
        xs = [j + i * width for j in range(len(results))]
        ax.bar(xs, [speed[fmt]["article_img_per_s"] for _, speed in results.values()], width, label=fmt)
    required = next(iter(results.values()))[1]["required_img_per_s"]
    ax.axhline(required, color="black", linestyle="--", linewidth=1, label=f"required {required:g} img/s")
    ax.set_xticks([j + width * (len(formats) - 1) / 2 for j in range(len(results))], [f"{e} epochs" for e in results])
    ax.set_ylabel("img/s (load + preprocess + inference)")
    ax.legend(fontsize="small")
    fig.tight_layout()
    with atomic_path(dest) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)


def main() -> None:
    params = load_params()
    results = load_results(list(params.train.epochs))
    write_text(REPORT, render_markdown(results))
    plot_speeds(results, CHART)
    print(REPORT.read_text())


if __name__ == "__main__":
    main()
