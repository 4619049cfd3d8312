"""The crawl stage as `python -m stages.crawl` runs it: every source, the manifest, the rejects, the failures."""

import hashlib
import os
import shutil
from collections import Counter
from pathlib import Path

import numpy as np

import pytest
import yaml
from PIL import Image

from helpers.fake_bing import Served
from helpers.images import encode, picture
from helpers.nasty_files import NASTY_DECODERS
from helpers.project import ROOT, params_file, tiny_params
from stages import crawl
from stages.sources.records import read_manifest, read_rejects
from stages.sources.cleaning import PLUGIN_ENV, CrawlError, Found, Kept, Limits, decode_all, deduplicate, near_pairs
from stages.sources.synthetic import synthesize


def run_crawl(project: Path, params: dict, monkeypatch) -> None:
    project.mkdir(exist_ok=True)
    params_file(project, params)
    monkeypatch.chdir(project)
    crawl.main()


def files_under(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_synthetic_default_keeps_all_190_images_and_data_raw_holds_only_images(tmp_path, monkeypatch):
    run_crawl(tmp_path, yaml.safe_load((ROOT / "params.yaml").read_text(encoding="utf-8")), monkeypatch)
    rows = read_manifest(tmp_path / "data/crawl")
    assert len(rows) == 190
    assert read_rejects(tmp_path / "data/crawl") == []
    assert set(files_under(tmp_path / "data/raw")) == {r["path"] for r in rows}
    assert set(files_under(tmp_path / "data/crawl")) == {"manifest.csv", "rejects.csv"}


def test_synthetic_files_are_the_generated_bytes_and_a_rerun_is_identical(tmp_path, monkeypatch):
    params = tiny_params()
    params["seed"] = 7  # the top-level seed does not draw the data: crawl.synthetic.seed does
    run_crawl(tmp_path / "a", params, monkeypatch)
    run_crawl(tmp_path / "b", params, monkeypatch)
    first, second = files_under(tmp_path / "a/data"), files_under(tmp_path / "b/data")
    assert first == second
    cfg = params["crawl"]["synthetic"]
    slugs = [c["slug"] for c in params["classes"]]
    generated = synthesize(slugs, cfg["total_images"], cfg["seed"], size_range=(cfg["min_size"], cfg["max_size"]))
    assert {f"raw/{s}/{s}_{i:03d}.jpg": data for s, i, data in generated} == {
        name: data for name, data in first.items() if name.startswith("raw/")
    }


def test_one_and_two_workers_give_byte_identical_outputs(tmp_path, monkeypatch):
    params = tiny_params()
    params["crawl"]["synthetic"]["total_images"] = 36
    params["crawl"]["near_duplicate_distance"] = 20  # many near-duplicates: their choice must not depend on timing
    outputs = []
    for workers in (1, 2):
        params["crawl"]["workers"] = workers
        run_crawl(tmp_path / f"w{workers}", params, monkeypatch)
        outputs.append(files_under(tmp_path / f"w{workers}/data"))
    assert outputs[0] == outputs[1]
    rejects = read_rejects(tmp_path / "w1/data/crawl")
    assert len(rejects) >= 4 and {r["reason"] for r in rejects} <= {"near_duplicate", "in_several_classes"}


def test_bing_crawl_writes_a_manifest_whose_every_row_matches_its_file(tmp_path, monkeypatch, fake_bing, capsys):
    params = tiny_params()
    params["crawl"].update(source="bing", bing={"max_num": 10, "endpoint": fake_bing.endpoint, "retries": 1})
    for k, c in enumerate(params["classes"]):
        for i in range(3):
            fake_bing.add(c["keyword"], f"{c['slug']}{i}.jpg", Served(encode(picture(10 * k + i))))
    fake_bing.add(params["classes"][0]["keyword"], "gone.jpg", Served(status=404))
    fake_bing.add(params["classes"][1]["keyword"], "drawing.png", Served(encode(picture(50), "PNG"), "image/png"))

    run_crawl(tmp_path, params, monkeypatch)

    raw = tmp_path / "data/raw"
    rows = read_manifest(tmp_path / "data/crawl")
    assert len(rows) == 10
    for row in rows:
        data = (raw / row["path"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == row["sha256"]
        assert int(row["bytes"]) == len(data)
        with Image.open(raw / row["path"]) as img:
            assert img.size == (int(row["width"]), int(row["height"]))
        assert row["source"] == "bing" and row["url"].startswith(fake_bing.base) and row["page_url"] and row["time"]
        assert row["keyword"] == next(c["keyword"] for c in params["classes"] if c["slug"] == row["class"])
    assert set(files_under(raw)) == {r["path"] for r in rows}
    rejects = read_rejects(tmp_path / "data/crawl")
    assert [(r["class"], r["reason"], r["detail"]) for r in rejects] == [("myna", "fetch_failed", "HTTP 404")]
    printed = capsys.readouterr().out.splitlines()
    summary = {line.split()[0]: line.split()[1:] for line in printed if not line.startswith("crawl:")}
    assert summary["class"] == ["found", "kept", "fetch_failed"]
    assert summary["myna"] == ["4", "3", "1"] and summary["total"] == ["11", "10", "1"]


def folder_of_birds(root: Path, slugs: list[str], count: dict[str, int]) -> None:
    for k, slug in enumerate(slugs):
        (root / slug).mkdir(parents=True, exist_ok=True)
        for i in range(count.get(slug, 9)):
            (root / slug / f"{i}.jpg").write_bytes(encode(picture(10 * k + i)))


def test_a_crawl_too_small_for_the_split_still_writes_its_data(tmp_path, monkeypatch):
    """Whether the data can give the split is the split stage's question (it lists every class's count)."""
    params = tiny_params()
    folder_of_birds(tmp_path / "mine", [c["slug"] for c in params["classes"]], {"sunbird": 1})
    params["crawl"].update(source="folder", folder={"path": "mine"})
    run_crawl(tmp_path, params, monkeypatch)
    assert Counter(r["class"] for r in read_manifest(tmp_path / "data/crawl")) == {"myna": 9, "reed_warbler": 9, "sunbird": 1}


def test_a_failed_crawl_leaves_the_previous_data_as_it_was(tmp_path, monkeypatch):
    params = tiny_params()
    slugs = [c["slug"] for c in params["classes"]]
    folder_of_birds(tmp_path / "mine", slugs, {})
    params["crawl"].update(source="folder", folder={"path": "mine"})
    run_crawl(tmp_path, params, monkeypatch)
    before = files_under(tmp_path / "data")
    assert len(before) == 3 * 9 + 2

    shutil.rmtree(tmp_path / "mine" / "sunbird")  # the crawl now fails, after reading two classes
    with pytest.raises(CrawlError, match="no folder for class sunbird"):
        run_crawl(tmp_path, params, monkeypatch)

    assert files_under(tmp_path / "data") == before
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == ["crawl", "raw"]  # no staging left behind


def brute_force_pairs(hashes: list[int], max_distance: int) -> set[tuple[int, int]]:
    """The all-pairs search the index replaces: every pair's Hamming distance."""
    h = np.array(hashes, dtype=np.uint64)
    distance = np.bitwise_count(h[:, None] ^ h[None, :])
    j, i = np.nonzero(np.triu(distance <= max_distance, k=1))
    return set(zip(j.tolist(), i.tolist()))


def pairs_sharing_a_band(hashes: list[int], bands: int) -> int:
    """How many pairs agree on at least one of `bands` runs of bits, as equal in width as can
    be, that together cover the 64 bits: the pairs the index must compare, and no others."""
    h = np.array(hashes, dtype=np.uint64)
    cuts = [64 * b // bands for b in range(bands + 1)]
    share = np.zeros((len(h), len(h)), dtype=bool)
    for low, high in zip(cuts, cuts[1:]):
        key = (h >> np.uint64(low)) & np.uint64((1 << (high - low)) - 1)
        share |= key[:, None] == key[None, :]
    return int(np.triu(share, k=1).sum())


class CountedLookups(list):
    """A list that counts the lookups by index: the index reads a hash so to compare it."""

    lookups = 0

    def __getitem__(self, i):
        self.lookups += 1
        return super().__getitem__(i)


@pytest.mark.parametrize("max_distance", [0, 1, 4, 9])
def test_the_near_duplicate_index_finds_exactly_the_pairs_of_the_all_pairs_search(max_distance):
    rng = np.random.default_rng(max_distance)
    hashes = [int(x) for x in rng.integers(0, 2**64, 2500, dtype=np.uint64)]
    for _ in range(800):  # planted: a copy of an earlier hash with 0 to 12 bits flipped
        flipped = rng.choice(64, size=int(rng.integers(0, 13)), replace=False)
        hashes.append(hashes[int(rng.integers(len(hashes)))] ^ sum(1 << int(b) for b in flipped))
    rng.shuffle(hashes)
    counted = CountedLookups(hashes)

    found = list(near_pairs(counted, max_distance))

    expected = brute_force_pairs(hashes, max_distance)
    assert len(found) == len(set(found))
    assert set(found) == expected
    assert len(expected) > 50  # the planted pairs are there to be found
    # and it is an index: a hash is compared only with those that share a band with it
    assert counted.lookups == pairs_sharing_a_band(hashes, max_distance + 1)


def kept(label: str, phash: int, seq: int, sha256: str | None = None) -> Kept:
    found = Found(label=label, source=f"{label}/{seq}.jpg", data=None)
    return Kept(found, ".jpg", 64, 64, 100, sha256 or f"sha-{seq}", phash, seq=seq)


def test_near_duplicates_are_those_within_the_distance_and_the_first_found_is_kept():
    distance = 4
    original = 0b1111_0000
    images = [
        kept("myna", original, 0),
        kept("myna", original ^ 0b0011_0011, 1),  # exactly `distance` bits away (2 set, 2 cleared): the same picture
        kept("myna", original ^ 0b1_1111 << 8, 2),  # one bit more: another picture
        kept("crow", 0xFFFF << 48, 3),
        kept("crow", 0xFFFF << 48, 4, sha256="sha-3"),  # the same bytes as the one before
        kept("myna", 0xFFFF << 24, 5),
        kept("crow", 0xFFFF << 24 ^ 1, 6),  # one picture under three classes: none can be trusted
        kept("wren", 0xFFFF << 24 ^ 2, 7),
    ]
    unique, rejected = deduplicate(images, distance)
    assert [(k.seq, k.name) for k in unique] == [(0, "myna/myna_000.jpg"), (2, "myna/myna_001.jpg"), (3, "crow/crow_000.jpg")]
    reasons = {r.found.source: (r.reason, r.detail) for r in rejected}
    assert reasons == {
        "myna/1.jpg": ("near_duplicate", "4 bits from myna/myna_000.jpg"),
        "crow/4.jpg": ("exact_duplicate", "same bytes as crow/crow_000.jpg"),
        "myna/5.jpg": ("in_several_classes", "also under crow: crow/6.jpg, wren: wren/7.jpg"),
        "crow/6.jpg": ("in_several_classes", "also under myna: myna/5.jpg, wren: wren/7.jpg"),
        "wren/7.jpg": ("in_several_classes", "also under myna: myna/5.jpg, crow: crow/6.jpg"),
    }
    assert [k.seq for k in deduplicate(images, distance - 1)[0]] == [0, 1, 2, 3]  # a stricter threshold keeps #1


def test_decoding_holds_one_image_per_worker_in_the_workers_asked_for_started_by_a_server(tmp_path, monkeypatch):
    """Memory does not grow with the number of images: the source is asked for the next image only
    when a worker is free, the workers are as many as asked for, and they are started by
    multiprocessing's fork server, never forked from the crawl (it may run threads)."""
    started = tmp_path / "workers.txt"
    plugin = tmp_path / "record_worker.py"  # run in each worker as it starts (PLUGIN_ENV: the tests' decoders)
    plugin.write_text(f"import os\nwith open({str(started)!r}, 'a') as f:\n    f.write(f'{{os.getpid()}} {{os.getppid()}}\\n')\n")
    monkeypatch.setenv(PLUGIN_ENV, str(plugin))
    in_flight, outcomes = [], 0

    def found():
        for i in range(16):
            in_flight.append(i - outcomes)  # handed out, no outcome yet, as the next one is asked for
            yield Found("myna", "test", encode(picture(i)), url=f"u{i}")

    for _ in decode_all(found(), 64, Limits(workers=1), tmp_path):
        outcomes += 1
    assert outcomes == 16 and max(in_flight) == 0
    workers = [line.split() for line in started.read_text().splitlines()]
    assert len(workers) == 1 and int(workers[0][1]) != os.getpid()


def test_a_decoder_that_hangs_or_dies_while_others_wait_is_rejected_with_why_and_without_its_bytes(tmp_path, monkeypatch):
    """A hung decoder is stopped at the time limit and a dead one reported, while the images
    behind them wait for room in flight; their verdicts keep the file's origin, not its bytes."""
    monkeypatch.setenv(PLUGIN_ENV, str(NASTY_DECODERS))
    files = [b"NASTY:sleep\n", b"NASTY:exit\n"] + [encode(picture(i)) for i in range(4)]
    found = (Found("myna", "test", data, url=f"u{i}") for i, data in enumerate(files))

    outcomes = dict(decode_all(found, 64, Limits(workers=1, timeout_s=1), tmp_path))

    hung, died = outcomes.pop(0), outcomes.pop(1)
    assert (hung.reason, hung.detail) == ("timed_out", "decoding took over 1 s; its process was stopped")
    assert (died.reason, died.detail) == ("decoder_failed", "the decoding process died (exit status 3)")
    assert hung.found == Found("myna", "test", None, url="u0") and died.found == Found("myna", "test", None, url="u1")
    assert sorted(outcomes) == list(range(2, len(files))) and all(isinstance(o, Kept) for o in outcomes.values())
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"{i}.jpg" for i in range(2, len(files))]  # no staged bytes left
