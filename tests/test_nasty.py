"""No file stops a crawl: files that make the decoder raise what nobody documents, hang, kill its
process, blow the memory cap or warn, through the folder source (the stage as a command) and
through the fake Bing server. Every file ends kept or rejected with its reason."""

import os
import subprocess
import sys
from pathlib import Path

from PIL import Image

from helpers.fake_bing import Served
from helpers.images import encode, picture
from helpers.nasty_files import NASTY_DECODERS, big_png, corrupt_tiff, jpeg_with_bad_exif, unknown_dds
from helpers.project import ROOT, params_file, tiny_params
from stages import crawl
from stages.sources.records import read_manifest, read_rejects
from stages.sources.cleaning import PLUGIN_ENV


def nasty_files() -> dict[str, tuple[bytes, str]]:
    """File name -> (bytes, the reason it must be rejected for, or "kept")."""
    return {
        "good.jpg": (encode(picture(1)), "kept"),
        "warns.jpg": (jpeg_with_bad_exif(), "kept"),
        "confused.jpg": (b"NASTY:raise\n", "decoder_failed"),
        "hangs.jpg": (b"NASTY:sleep\n", "timed_out"),
        "exits.jpg": (b"NASTY:exit\n", "decoder_failed"),
        "segfaults.jpg": (b"NASTY:segv\n", "decoder_failed"),
        "huge.png": (big_png(), "over_memory_cap"),
        "texture.dds": (unknown_dds(), "decoder_failed"),
        "truncated.jpg": (encode(picture(2))[:900], "broken"),
        "scrambled.tif": (corrupt_tiff(), "broken"),
        "also_good.png": (encode(picture(3), "PNG"), "kept"),
    }


NASTY_LIMITS = dict(workers=2, decode_timeout_s=2, decode_memory_mb=100, min_side=32)


def nasty_params() -> dict:
    params = tiny_params()
    params["crawl"].update(NASTY_LIMITS)
    return params


def check_every_file_accounted_for(project: Path, origin) -> None:
    expected = {origin(name): reason for name, (_, reason) in nasty_files().items()}
    kept = {r["url"] or r["source"]: r for r in read_manifest(project / "data/crawl") if r["class"] == "myna"}
    rejects = {r["url"] or r["source"]: r for r in read_rejects(project / "data/crawl") if r["class"] == "myna"}
    assert {o: "kept" for o in kept} | {o: r["reason"] for o, r in rejects.items()} == expected
    assert "Corrupt EXIF" in kept[origin("warns.jpg")]["warnings"] or "Skipping tag" in kept[origin("warns.jpg")]["warnings"]
    assert rejects[origin("confused.jpg")]["detail"] == "DecoderConfused: the decoder lost its way"
    assert rejects[origin("texture.dds")]["detail"].startswith("NotImplementedError: Unimplemented pixel format")
    assert rejects[origin("exits.jpg")]["detail"] == "the decoding process died (exit status 3)"
    assert rejects[origin("segfaults.jpg")]["detail"] == "the decoding process died (signal SIGSEGV)"
    assert "(decoder warnings: stderr: ZIPDecode: Decoding error" in rejects[origin("scrambled.tif")]["detail"]
    for row in kept.values():
        with Image.open(project / "data/raw" / row["path"]) as img:
            img.load()


def write_folder(project: Path, classes: dict[str, dict[str, bytes]]) -> None:
    """project/mine/<class>/<file name>, with the bytes given."""
    for slug, files in classes.items():
        (project / "mine" / slug).mkdir(parents=True)
        for name, data in files.items():
            (project / "mine" / slug / name).write_bytes(data)


def crawl_folder(project: Path, **crawl_params) -> subprocess.CompletedProcess:
    """`python -m stages.crawl` on project/mine, with the tests' decoders."""
    params = tiny_params()
    params["crawl"].update(source="folder", folder={"path": "mine"}, **crawl_params)
    params_file(project, params)
    env = os.environ | {PLUGIN_ENV: str(NASTY_DECODERS), "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "stages.crawl"], cwd=project, env=env, capture_output=True, text=True)


def test_nasty_files_in_a_folder_are_each_rejected_and_the_stage_exits_0(tmp_path):
    slugs = [c["slug"] for c in tiny_params()["classes"]]
    birds = {slug: {f"bird{i}.jpg": encode(picture(100 + 10 * k + i)) for i in range(3)} for k, slug in enumerate(slugs)}
    birds["myna"] = {name: data for name, (data, _) in nasty_files().items()}  # myna: the nasty files alone
    write_folder(tmp_path, birds)
    with open(tmp_path / "mine/reed_warbler/3gb.jpg", "wb") as f:
        f.truncate(3 * 2**30)  # sparse: 3 GiB that take no disk, and must never be read

    result = crawl_folder(tmp_path, **NASTY_LIMITS)

    assert result.returncode == 0, result.stderr
    assert result.stderr == ""  # Pillow's warnings and libtiff's messages went to the rejects, not onto the terminal
    check_every_file_accounted_for(tmp_path, lambda name: f"mine/myna/{name}")
    huge = [r for r in read_rejects(tmp_path / "data/crawl") if r["source"].endswith("3gb.jpg")]
    assert [(r["reason"], r["detail"]) for r in huge] == [("too_large", f"{3 * 2**30:,} bytes, over the cap of {50 * 2**20:,} (crawl.max_image_mb)")]
    assert "myna" in result.stdout and "timed_out" in result.stdout.splitlines()[1]


def test_workers_that_die_as_the_crawl_ends_leave_nothing_on_stderr(tmp_path):
    """The last images kill their decoding processes, so that replacement workers are still
    starting when the crawl ends: the crawl ends them without tearing anything down under them
    (pebble's pool unlinked its semaphores under a starting worker, which printed a traceback)."""
    birds = {slug: {f"{i}.jpg": encode(picture(10 * k + i)) for i in range(3)}
             for k, slug in enumerate(["myna", "reed_warbler", "sunbird"])}
    birds["sunbird"] |= {f"z{i}.jpg": b"NASTY:exit\n" for i in range(4)}  # read last
    for attempt in range(3):
        write_folder(tmp_path / str(attempt), birds)
        result = crawl_folder(tmp_path / str(attempt), workers=2)
        assert (result.returncode, result.stderr) == (0, ""), attempt
        rejects = read_rejects(tmp_path / str(attempt) / "data/crawl")
        assert [r["detail"] for r in rejects] == ["the decoding process died (exit status 3)"] * 4


def test_nasty_files_from_a_web_server_are_each_rejected(tmp_path, monkeypatch, fake_bing):
    params = nasty_params()
    params["crawl"].update(source="bing", bing={"max_num": 20, "endpoint": fake_bing.endpoint, "retries": 0})
    for k, c in enumerate(params["classes"][1:]):
        for i in range(3):
            fake_bing.add(c["keyword"], f"{c['slug']}{i}.jpg", Served(encode(picture(100 + 10 * k + i))))
    for name, (data, _) in nasty_files().items():
        fake_bing.add(params["classes"][0]["keyword"], name, Served(data))
    params_file(tmp_path, params)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(PLUGIN_ENV, str(NASTY_DECODERS))

    crawl.main()

    check_every_file_accounted_for(tmp_path, lambda name: f"{fake_bing.base}/img/{name}")
