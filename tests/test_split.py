from collections import Counter
from pathlib import Path

import pytest

from helpers.project import params_file, tiny_params
from stages import split
from stages.shared.splits import Example, read_split
from stages.split import SplitError, raw_examples, split_examples, spread

CLASSES = [f"c{i}" for i in range(9)]


def examples(counts: dict[str, int]) -> list[Example]:
    return [Example(Path(f"data/raw/{c}/{c}_{i:03d}.jpg"), c) for c, n in counts.items() for i in range(n)]


def article_like() -> list[Example]:
    # 190 images over 9 classes, as the synthetic source and the article have them
    return examples({c: 22 if i == 0 else 21 for i, c in enumerate(CLASSES)})


def test_article_sizes_and_stratification():
    train, test = split_examples(article_like(), CLASSES, 145, 45, seed=42)
    assert (len(train), len(test)) == (145, 45)
    assert Counter(e.label for e in test) == {c: 5 for c in CLASSES}
    assert set(Counter(e.label for e in train).values()) <= {16, 17}
    assert not {e.path for e in train} & {e.path for e in test}


def test_seeded_and_order_independent():
    a = split_examples(article_like(), CLASSES, 145, 45, seed=1)
    b = split_examples(list(reversed(article_like())), CLASSES, 145, 45, seed=1)
    c = split_examples(article_like(), CLASSES, 145, 45, seed=2)
    assert a == b
    assert a != c


def test_smaller_train_set_is_still_stratified():
    train, test = split_examples(article_like(), CLASSES, 90, 45, seed=0)
    assert len(train) == 90 and set(Counter(e.label for e in train).values()) == {10}


def test_too_few_images_in_a_class_names_it_and_all_counts():
    counts = {c: 21 for c in CLASSES} | {"c3": 4}
    with pytest.raises(SplitError) as err:
        split_examples(examples(counts), CLASSES, 100, 45, seed=0)
    message = str(err.value)
    assert "too few in: c3" in message
    assert "c0: 21" in message and "c3: 4" in message


def test_too_few_images_in_total():
    with pytest.raises(SplitError, match="cannot split 189 images into 145 train"):
        split_examples(examples({c: 21 for c in CLASSES}), CLASSES, 145, 45, seed=0)


def test_spread_is_exact_and_proportional():
    assert spread(45, [1] * 9) == [5] * 9
    assert spread(10, [1, 1, 1]) == [4, 3, 3]
    assert spread(145, [17] + [16] * 8) == [17] + [16] * 8


def test_a_small_class_beside_large_ones_keeps_a_training_image():
    """One class of 6 images and eight of 174: in proportion alone the small class's one image
    left after its 5 test images would round down to no training image at all."""
    counts = {"c0": 6} | {c: 174 for c in CLASSES[1:]}
    train, test = split_examples(examples(counts), CLASSES, 145, 45, seed=0)
    per_class = Counter(e.label for e in train)
    assert per_class["c0"] == 1 and Counter(e.label for e in test)["c0"] == 5
    assert sum(per_class.values()) == 145 and set(per_class[c] for c in CLASSES[1:]) == {18}


def test_unbalanced_classes_share_training_images_in_proportion():
    counts = {"c0": 105, "c1": 55, "c2": 15}  # 99, 49, 9 left after 5 test images and 1 training image each
    train, _ = split_examples(examples(counts), CLASSES[:3], 83, 15, seed=0)
    assert [Counter(e.label for e in train)[c] for c in CLASSES[:3]] == [51, 26, 6]  # 1 each + 80 shared 99:49:9


def test_fewer_training_images_than_classes_is_refused():
    with pytest.raises(SplitError, match=r"split.train \(5\) must be at least the number of classes \(9\)"):
        split_examples(article_like(), CLASSES, 5, 45, seed=0)


def test_the_split_reads_the_image_folders(tmp_path):
    for c, n in {"c0": 2, "c1": 3}.items():
        (tmp_path / c).mkdir()
        for i in range(n):
            (tmp_path / c / f"{c}_{i}.jpg").write_bytes(b"")
    (tmp_path / "manifest.csv").write_text("bookkeeping beside the folders is not an image\n")
    assert [(e.path.name, e.label) for e in raw_examples(tmp_path, ["c0", "c1"])] == [
        ("c0_0.jpg", "c0"), ("c0_1.jpg", "c0"), ("c1_0.jpg", "c1"), ("c1_1.jpg", "c1"), ("c1_2.jpg", "c1")]
    with pytest.raises(SplitError, match="has classes not listed in params.yaml classes: c1"):
        raw_examples(tmp_path, ["c0"])


def test_one_training_image_per_class_is_enough_and_the_count_is_in_the_error():
    train, test = split_examples(article_like(), CLASSES, len(CLASSES), 45, seed=0)
    assert Counter(e.label for e in train) == {c: 1 for c in CLASSES}
    with pytest.raises(SplitError, match=r"too few in: c3, c5\. Images per class: c0: 21,"):
        split_examples(examples({c: 21 for c in CLASSES} | {"c3": 5, "c5": 4}), CLASSES, 100, 45, seed=0)
    with pytest.raises(SplitError, match="too few in: the whole set"):
        split_examples(examples({c: 10 for c in CLASSES}), CLASSES, 80, 45, seed=0)


def test_spread_of_one_and_of_nothing():
    assert spread(1, [1, 1]) == [1, 0]  # the tie goes to the earlier one
    assert spread(0, [3, 5]) == [0, 0]


def test_what_is_shared_in_proportion_is_what_each_class_has_left():
    """3 and 30 images, 1 test image each, 10 training images: after one each, the other 8 go
    1:28 (the images left), not 3:30 (all the images), which would give the small class 2."""
    train, test = split_examples(examples({"c0": 3, "c1": 30}), CLASSES[:2], 10, 2, seed=0)
    assert [Counter(e.label for e in train)[c] for c in CLASSES[:2]] == [1, 9]
    assert Counter(e.label for e in test) == {"c0": 1, "c1": 1}


def test_hidden_files_sub_folders_and_hidden_folders_are_not_images_or_classes(tmp_path):
    (tmp_path / "c0" / "sub").mkdir(parents=True)
    (tmp_path / ".cache").mkdir()
    for name in ["c0/a.jpg", "c0/.DS_Store", "c0/sub/b.jpg", ".cache/c.jpg"]:
        (tmp_path / name).write_bytes(b"")
    assert [e.path.relative_to(tmp_path).as_posix() for e in raw_examples(tmp_path, ["c0", "c1"])] == ["c0/a.jpg"]
    for unknown in ("owl", "hawk"):
        (tmp_path / unknown).mkdir()
    with pytest.raises(SplitError) as raised:
        raw_examples(tmp_path, ["c0"])
    assert str(raised.value) == f"{tmp_path} has classes not listed in params.yaml classes: hawk, owl"
    with pytest.raises(SplitError) as raised:
        raw_examples(tmp_path / "raw", ["c0"])
    assert str(raised.value) == f"{tmp_path / 'raw'} not found: run the crawl stage first (dvc repro)"


def test_the_stage_writes_the_split_of_the_folders_with_params_seed(tmp_path, monkeypatch, capsys):
    params = tiny_params()
    slugs = [c["slug"] for c in params["classes"]]
    for k, slug in enumerate(slugs):
        (tmp_path / "data/raw" / slug).mkdir(parents=True)
        for i in range(8 + k):
            (tmp_path / "data/raw" / slug / f"{slug}_{i:03d}.jpg").write_bytes(b"")
    params_file(tmp_path, params)
    monkeypatch.chdir(tmp_path)
    split.main()
    expected = split_examples(raw_examples(Path("data/raw"), slugs), slugs, params["split"]["train"], params["split"]["test"], params["seed"])
    assert (read_split("train"), read_split("test")) == expected
    assert capsys.readouterr().out == f"split: {len(expected[0])} train, {len(expected[1])} test over {len(slugs)} classes\n"
