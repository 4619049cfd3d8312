"""The crawl stage as DVC runs it: it reruns only when what makes its output changes, and a crawl
that fails leaves the previous data/raw and data/crawl in place (persist + the swap)."""

import shutil

import pytest

from helpers.fake_bing import Served
from helpers.images import encode, picture
from helpers.project import make_project, run, tiny_params

pytestmark = pytest.mark.slow


def files_under(folder):
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_a_bing_crawl_reruns_for_its_own_params_only(tmp_path, fake_bing):
    params = tiny_params()
    params["crawl"].update(source="bing", bing={"max_num": 12, "endpoint": fake_bing.endpoint, "retries": 0})
    for k, c in enumerate(params["classes"]):
        for i in range(8):
            fake_bing.add(c["keyword"], f"{c['slug']}{i}.jpg", Served(encode(picture(10 * k + i, (96, 72)))))
    project = make_project(tmp_path / "project", params)
    run(["dvc", "repro", "crawl"], project)
    run(["git", "add", "-A"], project)
    run(["git", "commit", "-q", "-m", "crawled"], project)
    searches = len(fake_bing.queries)

    for change in ("seed=1", "split.train=14", "crawl.workers=1", "crawl.synthetic.total_images=30"):
        out = run(["dvc", "exp", "run", "-S", change, "crawl"], project)
        assert len(fake_bing.queries) == searches, (change, out.stdout)
        assert "Stage 'crawl' didn't change, skipping" in out.stdout, (change, out.stdout)

    run(["dvc", "exp", "run", "-S", "crawl.bing.max_num=10", "crawl"], project)
    assert len(fake_bing.queries) > searches  # its own param: searched again


def test_a_failed_crawl_leaves_data_raw_and_data_crawl_as_they_were(tmp_path):
    params = tiny_params()
    params["crawl"].update(source="folder", folder={"path": "mine"})
    project = make_project(tmp_path / "project", params)
    for k, c in enumerate(params["classes"]):
        (project / "mine" / c["slug"]).mkdir(parents=True)
        for i in range(8):
            (project / "mine" / c["slug"] / f"{i}.jpg").write_bytes(encode(picture(10 * k + i, (96, 72))))
    run(["dvc", "repro", "crawl"], project)
    before = files_under(project / "data")
    assert len(before) == 3 * 8 + 3  # images, manifest, rejects, .gitignore

    shutil.rmtree(project / "mine" / "sunbird")
    failed = run(["dvc", "repro", "-f", "crawl"], project, check=False)

    assert failed.returncode != 0
    assert "error: crawl.folder.path: mine has no folder for class sunbird" in failed.stderr + failed.stdout
    assert files_under(project / "data") == before
