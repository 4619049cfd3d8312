"""report stage: the article's table for every epoch setting, the format to deploy on the machine
that timed them, a headline per setting and format for `dvc metrics show` / `dvc metrics diff`,
and charts.

    python -m stages.report  ->  metrics/summary/<n>/<format>.json   n = 1, 2, ... in the order of train.epochs
                                 metrics/deploy.json                 what `birds-predict --runtime auto` runs
                                 metrics/report.md, metrics/speed.png, metrics/training.png

The recommendation, per setting: the fastest format by the article's figure (one image at a
time, end to end) that agrees with pth on at least evaluate.min_agreement of the test images and
meets evaluate.required_img_per_s, as evaluate measured them on its machine; or none, and why.

It reads metrics/epochs/e<N>/ for each setting N of train.epochs (train@N's curves, evaluate@N's
results), so any number of settings works without naming them in dvc.yaml.

The headline files are what `dvc metrics show` prints: one row per setting and format, with the
setting in the `epochs` column. Their paths hold the setting's position in train.epochs, not its
value, so that two experiments of one setting each (`-S 'train.epochs=[20]'` and `[50]`) write
the same path with the same keys and `dvc metrics diff` shows the change from one to the other.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt

from birds_onnx.deploy import RUNNABLE
from stages.shared.atomic import atomic_dir, atomic_path, write_json, write_text
from stages.shared.errors import PipelineError, run_stage
from stages.shared.params import load_params
from stages.shared.paths import (
    DEPLOY_FILE, REPORT, SPEED_CHART, SUMMARY_DIR, TRAINING_CHART, TRAINING_FIGURES, model_dir, results_dir, training_figure,
)

PARAMS = ("train.epochs", "evaluate.min_agreement")  # the params this stage reads: dvc.yaml lists the same keys


class Result:
    """What evaluate wrote for one setting: accuracy and speed per format, the training history,
    and how many test images the agreement was counted on."""

    def __init__(self, epochs: int, accuracy: dict, speed: dict, training: list[dict], test_images: int):
        self.epochs, self.accuracy, self.speed, self.training = epochs, accuracy, speed, training
        self.test_images = test_images

    @property
    def formats(self) -> list[str]:
        return list(self.accuracy)


def training_history(epochs: int) -> list[dict]:
    """The per-epoch curves dvclive wrote while training this setting, one row per epoch:
    epoch, train_loss, train_acc, test_acc, lr."""
    rows: dict[int, dict] = {}
    for figure in TRAINING_FIGURES:
        path = training_figure(epochs, figure)
        try:
            with open(path, encoding="utf-8", newline="") as f:  # pragma: no mutate: dvclive's .tsv files hold ASCII numbers and \n line ends: every encoding and newline mode reads them alike
                for row in csv.DictReader(f, delimiter="\t"):
                    rows.setdefault(int(row["step"]), {"epoch": float(row["step"])})[figure] = float(row[figure])
        except FileNotFoundError:
            raise PipelineError(f"{path} not found: run train for {epochs} epochs first") from None
    return [rows[e] for e in sorted(rows)]


def load_results(epochs: list[int]) -> list[Result]:
    results = []
    for e in epochs:
        d = results_dir(e)
        try:
            accuracy = json.loads((d / "accuracy.json").read_text(
                encoding="utf-8",  # pragma: no mutate: ASCII only (class slugs are ASCII by params' pattern, the rest numbers): any codec reads it
            ))
            speed = json.loads((d / "speed.json").read_text(
                encoding="utf-8",  # pragma: no mutate: ASCII only (numbers): any codec reads it
            ))
            training = training_history(e)
            with open(d / "confusion" / f"{next(iter(accuracy))}.csv", encoding="utf-8", newline="") as f:  # a row per test image
                test_images = sum(1 for _ in csv.DictReader(f))
        except FileNotFoundError as err:
            raise PipelineError(f"{err.filename} not found: run evaluate for {e} epochs first") from None
        results.append(Result(e, accuracy, speed, training, test_images))
    return results


def recommend(result: Result, min_agreement: float) -> dict:
    """The format to deploy on the machine that timed `result`: the fastest by the article's
    figure among those that agree with pth on at least `min_agreement` of the test images and
    meet the required img/s. `format` is None where none does; `line` says what was chosen and
    which faster formats were ruled out and why (or, for none, why each was)."""
    n, required = result.test_images, result.speed["required_img_per_s"]
    base = result.speed["pth"]["article_img_per_s"] if "pth" in result.speed else None
    ruled_out = []
    for fmt in sorted(result.formats, key=lambda f: -result.speed[f]["article_img_per_s"]):
        img_s, agreement = result.speed[fmt]["article_img_per_s"], result.accuracy[fmt]["agreement_with_pth"]
        agrees = round(agreement * n)
        if agreement < min_agreement:
            ruled_out.append(f"{fmt} agrees on {agrees}/{n} < {100 * min_agreement:g}%")
        elif not result.speed[fmt]["meets_requirement"]:
            ruled_out.append(f"{fmt} {img_s:.2f} img/s < {required:g}")
        else:
            line = f"{fmt}: " + (f"{img_s / base:.2f}x pth, " if base else "") + f"agrees on {agrees}/{n}, {img_s:.1f} img/s"
            if ruled_out:
                line += f" (faster but ruled out: {'; '.join(ruled_out)})"
            return {"format": fmt, "line": line}
    return {"format": None, "line": f"none: every format is ruled out: {'; '.join(ruled_out)}"}


def deploy_entry(result: Result, choice: dict) -> dict:
    """One setting's entry of metrics/deploy.json (birds_onnx/deploy.py reads it): the model file
    and runtime birds-predict runs; null for none or pth, which it cannot run."""
    folder = model_dir(result.epochs)
    model, runtime = RUNNABLE.get(choice["format"], (None, None))
    return {"folder": folder.as_posix(), "format": choice["format"], "model": model and (folder / model).as_posix(),
            "runtime": runtime, "line": choice["line"]}


def headline(result: Result, fmt: str, choice: dict) -> dict:
    """The article's table row, the model-only and streaming speeds beside it, and `deploy`: 1 for
    the recommended format, 0 for the others (a number, so that `dvc metrics diff` shows a change of
    recommendation as two rows, 0 -> 1 and 1 -> 0). Short keys: `dvc metrics show` prints one
    column per key and should fit a terminal."""
    acc, s = result.accuracy[fmt], result.speed[fmt]
    return {
        "epochs": result.epochs,
        "accuracy": acc["accuracy"],
        "agreement": acc["agreement_with_pth"],
        "img_s": s["article_img_per_s"],
        "model_img_s": s["img_per_s_batch1"],
        "stream_img_s": s["streaming_img_per_s"],
        "deploy": int(fmt == choice["format"]),
    }


def write_summary(results: list[Result], choices: list[dict], dest: Path) -> None:
    """metrics/summary/<position>/<format>.json, the folder replaced as a whole: a setting that
    left train.epochs leaves no file behind."""
    with atomic_dir(dest) as tmp:
        for position, (result, choice) in enumerate(zip(results, choices), 1):
            for fmt in result.formats:
                path = tmp / str(position) / f"{fmt}.json"
                path.parent.mkdir(parents=True, exist_ok=True)  # pragma: no mutate: the folder's parent is the temporary folder atomic_dir made: it always exists
                path.write_text(json.dumps(headline(result, fmt, choice), indent=2) + "\n", encoding="utf-8")  # pragma: no mutate: json.dumps writes ASCII only: every encoding gives the same bytes


def table(accuracy: dict, speed: dict) -> str:
    """One markdown table: the article's two columns, then what we add to them."""
    base = speed["pth"]["article_img_per_s"] if "pth" in speed else None
    required, batch = speed["required_img_per_s"], speed["batch_size"]
    lines = [
        f"| format | test accuracy | agrees with pth | img/s (article's figure) | speed-up vs pth "
        f"| model-only img/s, batch 1 | end-to-end / model-only | latency ms (median / p90) | img/s, batch {batch} "
        f"| streaming img/s | streaming / batch {batch} | size MB | >= {required:g} img/s |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for fmt, acc in accuracy.items():
        s = speed[fmt]
        speed_up = f"{s['article_img_per_s'] / base:.2f}x" if base else "-"
        lines.append(
            f"| {fmt} | {acc['accuracy']:.3f} | {acc['agreement_with_pth']:.1%} | {s['article_img_per_s']:.2f} "
            f"| {speed_up} | {s['img_per_s_batch1']:.1f} "
            f"| {s['article_img_per_s'] / s['img_per_s_batch1']:.0%} "
            f"| {s['latency_ms_median']:.1f} / {s['latency_ms_p90']:.1f} | {s[f'img_per_s_batch{batch}']:.1f} "
            f"| {s['streaming_img_per_s']:.1f} | {s['streaming_img_per_s'] / s[f'img_per_s_batch{batch}']:.0%} "
            f"| {acc['size_mb']:.1f} | {'yes' if s['meets_requirement'] else 'no'} |"
        )
    return "\n".join(lines)


def recall_table(accuracy: dict) -> str:
    """Per-class recall: one row per class, one column per format."""
    formats = list(accuracy)
    classes = list(next(iter(accuracy.values()))["recall"])
    lines = ["| class | " + " | ".join(formats) + " |", "|---|" + "---|" * len(formats)]
    lines += [f"| {c} | " + " | ".join(f"{accuracy[f]['recall'][c]:.2f}" for f in formats) + " |" for c in classes]
    return "\n".join(lines)


def machine_line(results: list[Result]) -> str:
    """Which machine measured the timings, so that a report made elsewhere says so."""
    machines = {json.dumps(r.speed.get("measured_on"), sort_keys=True) for r in results}
    if len(machines) != 1 or not results[0].speed.get("measured_on"):
        return "Timings measured on more than one machine or on an unrecorded one: run `make speed` to measure them all here."
    m = results[0].speed["measured_on"]
    return (f"Timings measured on: {m['cpu']}, {m['logical_cpus']} logical CPUs (machine {m['id']}). "
            f"To measure the machine you are on, run `make speed`.")


def render_markdown(results: list[Result], choices: list[dict], min_agreement: float) -> str:
    threads, required = results[0].speed["threads"], results[0].speed["required_img_per_s"]
    parts = ["# Results: PyTorch (.pth) vs ONNX Runtime fp32 and int8", ""]
    for r, c in zip(results, choices):
        parts += [f"Deploy on this machine ({r.epochs} epochs): {c['line']}", ""]
    parts += [
        f"Deploy: the fastest format by the article's figure that agrees with pth on at least "
        f"{100 * min_agreement:g}% of the test images (`evaluate.min_agreement`) and reaches {required:g} img/s. "
        f"`birds-predict --runtime auto models/eN PHOTOS...` runs it (metrics/deploy.json).",
        "",
        f"img/s (article's figure): test images / wall time of load + preprocess + inference, one image "
        f"at a time, mean of the passes. Streaming: the same, with decoder threads preparing the next "
        f"images while the model runs on batches (how `birds-predict` classifies a folder). Model-only "
        f"figures time inference alone on preprocessed images (median of the timed runs). "
        f"{threads} threads for every format.",
        "",
        machine_line(results),
    ]
    for r in results:
        parts += ["", f"## Trained for {r.epochs} epochs", "", table(r.accuracy, r.speed)]
        if r.training:
            last = r.training[-1]
            parts += ["", f"Last epoch of training: loss {last['train_loss']:.3f}, train accuracy "
                          f"{last['train_acc']:.3f}, test accuracy (training precision) {last['test_acc']:.3f}."]
        parts += ["", "Recall per class:", "", recall_table(r.accuracy)]
    parts += ["", f"![img/s per format]({SPEED_CHART.name})", "", f"![training curves]({TRAINING_CHART.name})", ""]
    return "\n".join(parts)


def save(fig, dest: Path) -> None:
    with atomic_path(dest) as tmp:
        fig.savefig(tmp, format="png", dpi=100)  # pragma: no mutate: matplotlib reads format names in any case, and a figure's dpi is 100: the defaults
    plt.close(fig)  # pragma: no mutate: plt.close() closes the current figure: the one just drawn and saved


def plot_speeds(results: list[Result], dest: Path) -> None:
    """Two panels, one bar per format and setting: end to end (the article's figure), model only."""
    formats = results[0].formats
    required = results[0].speed["required_img_per_s"]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    width = 0.8 / len(formats)
    panels = [("article_img_per_s", "end to end: load + preprocess + inference"), ("img_per_s_batch1", "model only, batch 1")]
    for ax, (key, title) in zip(axes, panels):
        for i, fmt in enumerate(formats):
            xs = [j + i * width for j in range(len(results))]
            bars = ax.bar(xs, [r.speed[fmt][key] for r in results], width, label=fmt, color=f"C{i}")  # pragma: no mutate: matplotlib's colour cycle gives an axes' i-th set of bars C{i}, the colour named
            ax.bar_label(bars,
                         fmt="%.1f", fontsize="x-small",  # pragma: no mutate: %F and %f differ only for infinity and NaN, which no measured rate is
            )
        ax.axhline(required, linestyle="--", linewidth=1, label=f"required {required:g} img/s",
                   color="black",  # pragma: no mutate: matplotlib reads colour names in any case
        )
        ax.set_xticks([j + width * (len(formats) - 1) / 2 for j in range(len(results))], [f"{r.epochs} epochs" for r in results])
        ax.set_title(title, fontsize="medium")  # pragma: no mutate: a title's font size None is the default font size, medium
    axes[0].set_ylabel("images per second")
    axes[0].legend(fontsize="small")
    fig.tight_layout()
    save(fig, dest)


def plot_training(results: list[Result], dest: Path) -> None:
    """Every setting's training curves on one chart per figure: loss, accuracy (train solid, test
    dashed), learning rate; one colour per setting."""
    fig, (loss, accuracy, lr) = plt.subplots(1, 3, figsize=(13, 4))
    for i, r in enumerate(results):
        epochs = [row["epoch"] for row in r.training]
        loss.plot(epochs, [row["train_loss"] for row in r.training], label=f"{r.epochs} epochs", color=f"C{i}")  # pragma: no mutate: each panel draws the settings in order: matplotlib's colour cycle gives the i-th C{i}, the colour named
        accuracy.plot(epochs, [row["train_acc"] for row in r.training], label=f"{r.epochs} epochs, train", color=f"C{i}")  # pragma: no mutate: each panel draws the settings in order: matplotlib's colour cycle gives the i-th C{i}, the colour named
        accuracy.plot(epochs, [row["test_acc"] for row in r.training], linestyle="--", label=f"{r.epochs} epochs, test", color=f"C{i}")  # pragma: no mutate: each panel draws the settings in order: matplotlib's colour cycle gives the i-th C{i}, the colour named
        lr.plot(epochs, [row["lr"] for row in r.training], label=f"{r.epochs} epochs", color=f"C{i}")  # pragma: no mutate: each panel draws the settings in order: matplotlib's colour cycle gives the i-th C{i}, the colour named
    for ax, title in ((loss, "training loss (cross-entropy)"), (accuracy, "accuracy"), (lr, "learning rate")):
        ax.set_title(title, fontsize="medium")  # pragma: no mutate: a title's font size None is the default font size, medium
        ax.set_xlabel("epoch")
        ax.legend(fontsize="x-small")
    fig.tight_layout()
    save(fig, dest)


def main() -> None:
    params = load_params(*PARAMS)
    results = load_results(list(params.train.epochs))
    min_agreement = params.evaluate.min_agreement
    choices = [recommend(r, min_agreement) for r in results]
    write_summary(results, choices, SUMMARY_DIR)
    write_json(DEPLOY_FILE, {str(r.epochs): deploy_entry(r, c) for r, c in zip(results, choices)})
    write_text(REPORT, render_markdown(results, choices, min_agreement))
    plot_speeds(results, SPEED_CHART)
    plot_training(results, TRAINING_CHART)
    print(REPORT.read_text(encoding="utf-8"))  # pragma: no mutate: codec names are not case-sensitive


if __name__ == "__main__":
    run_stage(main)
