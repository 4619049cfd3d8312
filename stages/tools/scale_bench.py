"""How the crawl scales: the crawl stage, as `python -m stages.crawl` runs it, on growing data.

    python -m stages.tools.scale_bench [--sizes 190,1900,19000] [--compare-at 1900] [--workers N]
    (make bench-scale)

For each size, the synthetic source draws that many images (params.yaml's classes and sizes) and
the stage cleans them; then the images of the largest size go through the folder source. Each run
is the real stage in a fresh folder, in its own process: wall time, ms per image, the peak
resident memory of the stage and all its worker processes together (their RSS summed, sampled
every 50 ms, so shared pages count once per process), and the duplicate search's time and share
of the wall time. Then the --compare-at size runs with 1 and with 2 workers: the speed-up of the
second. The goals of the crawl's design: peak memory at the largest size at most 1.5x that at the
middle one, ms per image within 1.2x, and 2 workers at least 1.6x the images per second of one.
Timings vary with the machine and its load: the figures are printed, nothing is asserted.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import psutil
import yaml
from tabulate import tabulate

from stages.shared.errors import PipelineError, run_stage
from stages.shared.params import PARAMS_FILE

ROOT = Path(__file__).resolve().parents[2]
SAMPLE_S = 0.05
HEADERS = ["source", "images", "workers", "wall s", "ms/image", "peak RSS MB (stage + workers)", "duplicate search s", "its share"]


@dataclass(frozen=True)
class Run:
    source: str
    images: int
    workers: int
    wall_s: float
    peak_rss_mb: float
    dedupe_s: float

    @property
    def ms_per_image(self) -> float:
        return 1000 * self.wall_s / self.images

    def row(self) -> list[str]:
        """The cells of its row of the table, under HEADERS."""
        return [self.source, str(self.images), str(self.workers), f"{self.wall_s:.1f}", f"{self.ms_per_image:.2f}",
                f"{self.peak_rss_mb:.0f}", f"{self.dedupe_s:.3f}", f"{100 * self.dedupe_s / self.wall_s:.1f}%"]

    def done(self) -> str:
        return f"crawled {self.images} {self.source} images in {self.wall_s:.1f} s, crawl.workers={self.workers}"


def crawl(folder: Path, params: dict, source: str, images: int, workers: int) -> Run:
    """Run the crawl stage in `folder` with `params`; time it and watch its memory."""
    params["crawl"]["workers"] = workers
    (folder / "params.yaml").write_text(yaml.safe_dump(params, allow_unicode=True, sort_keys=False), encoding="utf-8")
    env = os.environ | {"PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    start = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-m", "stages.crawl"], cwd=folder, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    peak = resident_mb(process.pid)
    while process.poll() is None:
        peak = max(peak, resident_mb(process.pid))
        time.sleep(SAMPLE_S)
    out, err = process.communicate()
    wall = time.perf_counter() - start
    if process.returncode != 0:
        raise PipelineError(f"the crawl of {images} {source} images failed: {err.strip().splitlines()[-1:]}")
    dedupe = re.search(r"duplicate search ([0-9.]+) s", out)
    return Run(source, images, workers, wall, peak, float(dedupe.group(1)) if dedupe else float("nan"))


def resident_mb(pid: int) -> float:
    """RSS of a process and all its descendants, summed."""
    try:
        root = psutil.Process(pid)
        tree = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0.0
    total = 0
    for p in tree:
        try:
            total += p.memory_info().rss
        except psutil.NoSuchProcess:
            pass
    return total / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m stages.tools.scale_bench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="190,1900,19000", help="numbers of synthetic images, comma-separated")
    parser.add_argument("--compare-at", type=int, default=1900, help="size of the 1 vs 2 workers runs (0: skip them)")
    parser.add_argument("--workers", type=int, default=0, help="workers of the size runs (0: one per CPU core)")
    args = parser.parse_args()
    sizes = sorted(int(s) for s in args.sizes.split(","))
    base = yaml.safe_load((ROOT / PARAMS_FILE).read_text(encoding="utf-8"))
    base["crawl"]["source"] = "synthetic"
    workers = args.workers or os.cpu_count() or 1
    print(f"crawl stage on {os.cpu_count()} CPU cores; sizes {sizes}, {workers} workers; then 1 vs 2 workers at {args.compare_at}")
    runs: list[Run] = []
    with tempfile.TemporaryDirectory(prefix="scale-bench-") as tmp:
        for n in sizes:
            folder = Path(tmp) / f"synthetic-{n}"
            folder.mkdir()
            params = yaml.safe_load(yaml.safe_dump(base))
            params["crawl"]["synthetic"]["total_images"] = n
            runs.append(crawl(folder, params, "synthetic", n, workers))
            print(runs[-1].done(), flush=True)
        largest = Path(tmp) / f"synthetic-{sizes[-1]}"
        mine = Path(tmp) / "folder"
        mine.mkdir()
        os.replace(largest / "data/raw", mine / "images")  # the largest crawl's images, as your own folder
        params = yaml.safe_load(yaml.safe_dump(base))
        params["crawl"].update(source="folder", folder={"path": str(mine / "images")})
        kept = sum(1 for p in (mine / "images").rglob("*") if p.is_file())
        own_folder = crawl(mine, params, "folder", kept, workers)
        print(own_folder.done(), flush=True)
        compared = []
        if args.compare_at:
            for w in (1, 2):
                folder = Path(tmp) / f"compare-{w}"
                folder.mkdir()
                params = yaml.safe_load(yaml.safe_dump(base))
                params["crawl"]["synthetic"]["total_images"] = args.compare_at
                compared.append(crawl(folder, params, "synthetic", args.compare_at, w))
                print(compared[-1].done(), flush=True)
    print()
    print(tabulate([run.row() for run in [*runs, own_folder, *compared]], HEADERS, tablefmt="github", disable_numparse=True,
                   colalign=["left"] + ["right"] * (len(HEADERS) - 1)))
    if len(runs) >= 2:
        middle, last = runs[-2], runs[-1]
        print(
            f"{last.images} vs {middle.images} images: peak memory {last.peak_rss_mb / middle.peak_rss_mb:.2f}x (goal <= 1.5x), "
            f"ms per image {last.ms_per_image / middle.ms_per_image:.2f}x (goal <= 1.2x)"
        )
    if compared:
        print(f"2 workers vs 1 at {args.compare_at} images: {compared[0].wall_s / compared[1].wall_s:.2f}x the images per second (goal >= 1.6x)")


if __name__ == "__main__":
    run_stage(main)
