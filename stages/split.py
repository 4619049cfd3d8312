"""split stage: the images in data/raw/<class>/ -> data/split/{train,test}.csv, stratified and seeded.

The test set is balanced (the article's 45 test images are 5 per class); every class gets at
least one training image, and the rest of the training set is shared in proportion to the
images each class has left. The stage reads the image folders, not the crawl's bookkeeping,
so a re-crawl that finds the same images changes nothing downstream.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np

from stages.shared.errors import PipelineError, run_stage
from stages.shared.paths import RAW_DIR, SPLIT_DIR
from stages.shared.splits import Example, write_split
from stages.shared.params import load_params

PARAMS = ("seed", "classes", "split")  # the params this stage reads: dvc.yaml lists the same keys


class SplitError(PipelineError):
    """The data cannot give the split that params ask for."""


def spread(total: int, weights: list[int]) -> list[int]:
    """Share `total` in proportion to `weights` (largest remainders, ties to the earlier one)."""
    if total == 0:
        return [0] * len(weights)
    exact = [total * w / sum(weights) for w in weights]
    shares = [int(x) for x in exact]
    by_remainder = sorted(range(len(weights)), key=lambda i: (-(exact[i] - shares[i]), i))
    for i in by_remainder[: total - sum(shares)]:
        shares[i] += 1
    return shares


def check_enough(counts: dict[str, int], n_train: int, n_test: int) -> None:
    """Raise SplitError, listing every class's count, unless `counts` (class -> images, in the
    order of params' classes) can give `n_train` + `n_test` images with every class in both sets."""
    if n_train < len(counts):
        raise SplitError(f"split.train ({n_train}) must be at least the number of classes ({len(counts)}): every class needs a training image")
    equal = [1] * len(counts)  # pragma: no mutate: equal weights share alike: [2] * k gives the quota of [1] * k
    quota = spread(n_test, equal)  # balanced test set
    short = [c for (c, n), q in zip(counts.items(), quota) if n < q + 1]
    total = sum(counts.values())
    if short or total < n_train + n_test:
        raise SplitError(
            f"cannot split {total} images into {n_train} train + {n_test} test "
            f"(each class needs its {max(quota)} test images and at least 1 training image); "
            f"too few in: {', '.join(short) or 'the whole set'}. "
            f"Images per class: {', '.join(f'{c}: {n}' for c, n in counts.items())}"
        )


def split_examples(
    examples: list[Example], classes: list[str], n_train: int, n_test: int, seed: int
) -> tuple[list[Example], list[Example]]:
    by_class: dict[str, list[Example]] = defaultdict(list)
    for e in sorted(examples, key=lambda e: e.path.as_posix()):
        by_class[e.label].append(e)
    counts = [len(by_class[c]) for c in classes]
    check_enough(dict(zip(classes, counts)), n_train, n_test)
    equal = [1] * len(classes)  # pragma: no mutate: equal weights share alike: [2] * k gives the quota of [1] * k
    test_quota = spread(n_test, equal)
    # one training image for every class first: in proportion alone, a class with few images left
    # next to large ones would round down to none
    left = [n - q - 1 for n, q in zip(counts, test_quota)]
    train_quota = [1 + share for share in spread(n_train - len(classes), left)]
    rng = np.random.default_rng(seed)
    train, test = [], []
    for c, n_te, n_tr in zip(classes, test_quota, train_quota):
        order = rng.permutation(len(by_class[c]))
        picked = [by_class[c][i] for i in order]
        test += picked[:n_te]
        train += picked[n_te : n_te + n_tr]
    return train, test


def raw_examples(raw_dir: Path, classes: list[str]) -> list[Example]:
    """Every image in `raw_dir`/<class>/, labelled by its folder. A folder of a class that params
    do not list means the images and the params disagree: an error, not a silent skip."""
    if not raw_dir.is_dir():
        raise SplitError(f"{raw_dir} not found: run the crawl stage first (dvc repro)")
    unknown = sorted(p.name for p in raw_dir.iterdir() if p.is_dir() and not p.name.startswith(".") and p.name not in classes)
    if unknown:
        raise SplitError(f"{raw_dir} has classes not listed in params.yaml classes: {', '.join(unknown)}")
    return [
        Example(path, c) for c in classes if (raw_dir / c).is_dir()
        for path in sorted((raw_dir / c).iterdir()) if path.is_file() and not path.name.startswith(".")
    ]


def main() -> None:
    params = load_params(*PARAMS)
    examples = raw_examples(RAW_DIR, params.slugs)
    train, test = split_examples(examples, params.slugs, params.split.train, params.split.test, params.seed)
    write_split(SPLIT_DIR / "train.csv", train)
    write_split(SPLIT_DIR / "test.csv", test)
    print(f"split: {len(train)} train, {len(test)} test over {len(params.slugs)} classes")


if __name__ == "__main__":
    run_stage(main)
