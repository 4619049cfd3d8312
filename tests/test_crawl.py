"""The crawl stage as `python -m stages.crawl` runs it: every source, the manifest, the rejects, the failures."""

import csv
import hashlib
from pathlib import Path

import pytest
import yaml
from PIL import Image

from conftest import ROOT, tiny_params
from fake_bing import Served, encode, picture
from stages import crawl
from stages.sources.cleaning import CrawlError
from stages.sources.synthetic import synthesize


def run_crawl(project: Path, params: dict, monkeypatch) -> None:
    project.mkdir(exist_ok=True)
    (project / "params.yaml").write_text(yaml.safe_dump(params, allow_unicode=True), encoding="utf-8")
    monkeypatch.chdir(project)
    crawl.main()


def read_rows(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def files_under(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_synthetic_default_keeps_all_190_images(tmp_path, monkeypatch):
    run_crawl(tmp_path, yaml.safe_load((ROOT / "params.yaml").read_text(encoding="utf-8")), monkeypatch)
    rows = read_rows(tmp_path / "data/raw/manifest.csv")
    assert len(rows) == 190
    assert read_rows(tmp_path / "data/raw/rejects.csv") == []


def test_synthetic_files_are_the_generated_bytes_and_a_rerun_is_identical(tmp_path, monkeypatch):
    params = tiny_params()
    run_crawl(tmp_path / "a", params, monkeypatch)
    run_crawl(tmp_path / "b", params, monkeypatch)
    first, second = files_under(tmp_path / "a/data/raw"), files_under(tmp_path / "b/data/raw")
    assert first == second
    cfg = params["crawl"]["synthetic"]
    slugs = [c["slug"] for c in params["classes"]]
    generated = synthesize(slugs, cfg["total_images"], params["seed"], size_range=(cfg["min_size"], cfg["max_size"]))
    assert {f"{s}/{s}_{i:03d}.jpg": data for s, i, data in generated} == {
        name: data for name, data in first.items() if name.endswith(".jpg")
    }


def test_bing_crawl_writes_a_manifest_whose_every_row_matches_its_file(tmp_path, monkeypatch, fake_bing, capsys):
    params = tiny_params()
    params["crawl"].update(source="bing", bing={"max_num": 10, "endpoint": fake_bing.endpoint, "retries": 1})
    params["split"] = {"train": 6, "test": 3}
    for k, c in enumerate(params["classes"]):
        for i in range(3):
            fake_bing.add(c["keyword"], f"{c['slug']}{i}.jpg", Served(encode(picture(10 * k + i))))
    fake_bing.add(params["classes"][0]["keyword"], "gone.jpg", Served(status=404))
    fake_bing.add(params["classes"][1]["keyword"], "drawing.png", Served(encode(picture(50), "PNG"), "image/png"))

    run_crawl(tmp_path, params, monkeypatch)

    raw = tmp_path / "data/raw"
    rows = read_rows(raw / "manifest.csv")
    assert len(rows) == 10
    for row in rows:
        data = (raw / row["path"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == row["sha256"]
        assert int(row["bytes"]) == len(data)
        with Image.open(raw / row["path"]) as img:
            assert img.size == (int(row["width"]), int(row["height"]))
        assert row["source"] == "bing" and row["url"].startswith(fake_bing.base) and row["page_url"] and row["time"]
        assert row["keyword"] == next(c["keyword"] for c in params["classes"] if c["slug"] == row["class"])
    assert set(files_under(raw)) == {r["path"] for r in rows} | {"manifest.csv", "rejects.csv"}
    rejects = read_rows(raw / "rejects.csv")
    assert [(r["class"], r["reason"], r["detail"]) for r in rejects] == [("myna", "fetch_failed", "HTTP 404")]
    printed = capsys.readouterr().out.splitlines()
    summary = {line.split()[0]: line.split()[1:] for line in printed if not line.startswith("crawl:")}
    assert summary["class"] == ["found", "kept", "fetch_failed"]
    assert summary["myna"] == ["4", "3", "1"] and summary["total"] == ["11", "10", "1"]


def test_too_few_images_for_the_split_stops_before_data_raw_is_touched(tmp_path, monkeypatch):
    params = tiny_params()
    slugs = [c["slug"] for c in params["classes"]]
    for k, slug in enumerate(slugs):
        (tmp_path / "mine" / slug).mkdir(parents=True)
        for i in range(1 if slug == "sunbird" else 9):
            (tmp_path / "mine" / slug / f"{i}.jpg").write_bytes(encode(picture(10 * k + i)))
    params["crawl"].update(source="folder", folder={"path": "mine"})
    (tmp_path / "data/raw").mkdir(parents=True)
    (tmp_path / "data/raw/manifest.csv").write_text("from the last good crawl\n")

    with pytest.raises(CrawlError) as err:
        run_crawl(tmp_path, params, monkeypatch)

    assert "too few in: sunbird" in str(err.value)
    assert "myna: 9, reed_warbler: 9, sunbird: 1" in str(err.value)
    assert files_under(tmp_path / "data") == {"raw/manifest.csv": b"from the last good crawl\n"}
