"""The folder source and the cleaning of odd but valid images: each becomes upright RGB."""

import hashlib
import io
import os
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import ExifTags, Image

from helpers.images import encode, picture
from helpers.nasty_files import jpeg_with_bad_exif, unknown_dds
from helpers.project import params_file, tiny_params
from stages.sources import cleaning
from stages.sources.cleaning import Cleaned, CrawlError, Found, Kept, Rejected, clean, examine_untrusted, perceptual_hash
from stages.shared.params import load_params
from stages.sources.folder import find_images, read_folder, read_found


def grey_of(seed: int) -> np.ndarray:
    return np.asarray(picture(seed).convert("L"), dtype=np.int16)


def black_edged(grey: np.ndarray) -> np.ndarray:
    """The grey picture with a black strip on its left: 0 must stay 0 when rescaled."""
    edged = grey.copy()
    edged[:, :8] = 0
    return edged


def pixels(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as img:
        assert img.mode == "RGB"
        return np.asarray(img, dtype=np.int16)


def odd_images() -> dict[str, bytes]:
    """File name -> bytes: valid images in the modes and layouts a crawl meets."""
    palette = picture(2).quantize(16)
    palette.paste(0, (0, 0, 40, 96))  # the left strip takes colour 0, made transparent below
    grey16 = Image.fromarray(black_edged(grey_of(3)).astype(np.uint16) * 257)
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = 6  # shown turned 90 degrees clockwise
    sideways = picture(4, (128, 96)).transpose(Image.Transpose.ROTATE_90)
    rgba = picture(7).convert("RGBA")
    rgba.paste((0, 0, 0, 0), (0, 0, 128, 30))  # the top band fully transparent
    grey_alpha = picture(9).convert("LA")
    grey_alpha.paste((0, 0), (0, 66, 128, 96))  # the bottom band fully transparent
    floats = np.asarray(black_edged(grey_of(11)), np.float32) * 257  # 32-bit float grey, 0..65535
    floats[:8, :] = -1000.0  # out of range both ways: clipped to black and white
    floats[-8:, :] = 70_000.0
    floats = Image.fromarray(floats, "F")
    return {
        "cmyk.jpg": encode(picture(1).convert("CMYK"), quality=95),
        "palette.png": encode(palette, "PNG", transparency=0),
        "grey16.png": encode(grey16, "PNG"),
        "rotated.jpg": encode(sideways, quality=95, exif=exif),
        "grey.jpg": encode(picture(5).convert("L"), quality=95),
        "photo.webp": encode(picture(6), "WEBP", quality=90),
        "alpha.png": encode(rgba, "PNG"),
        "anim.gif": encode(picture(8).quantize(32), "GIF"),
        "anim.webp": encode(picture(12), "WEBP", quality=90, save_all=True, append_images=[picture(13)]),
        "grey_alpha.png": encode(grey_alpha, "PNG"),
        "float.tif": encode(floats, "TIFF"),
    }


def test_odd_but_valid_images_become_upright_rgb_with_the_right_extension(tmp_path):
    (tmp_path / "crow").mkdir()
    for name, data in odd_images().items():
        (tmp_path / "crow" / name).write_bytes(data)

    cleaned = clean(read_folder(tmp_path, ["crow"]), tmp_path / "out", min_side=64, near_duplicate_distance=4)

    assert cleaned.rejected == []
    kept = {k.found.source.rsplit("/", 1)[1]: k for k in cleaned.kept}
    assert {name: k.ext for name, k in kept.items()} == {
        "alpha.png": ".png", "anim.gif": ".png", "cmyk.jpg": ".jpg", "grey.jpg": ".jpg",
        "grey16.png": ".png", "palette.png": ".png", "photo.webp": ".webp", "rotated.jpg": ".jpg",
        "anim.webp": ".jpg", "grey_alpha.png": ".png", "float.tif": ".png",
    }
    saved = {name: (tmp_path / "out" / k.name).read_bytes() for name, k in kept.items()}
    assert all(k.found.source == f"{tmp_path.as_posix()}/crow/{name}" for name, k in kept.items())
    check_upright_rgb(saved, kept)


def check_upright_rgb(saved: dict[str, bytes], kept: dict) -> None:
    """What each of odd_images() must become: its saved bytes and its record."""
    images = {name: pixels(data) for name, data in saved.items()}  # every one decodes as RGB
    assert np.abs(images["cmyk.jpg"] - np.asarray(picture(1))).mean() < 6
    assert (images["palette.png"][:, :40] == 255).all()  # transparent -> white background
    assert (images["grey16.png"] == black_edged(grey_of(3))[..., None]).all()  # 16 bits scaled to 8, not clipped to white
    assert images["rotated.jpg"].shape == (96, 128, 3)  # turned upright
    assert np.abs(images["rotated.jpg"] - np.asarray(picture(4, (128, 96)))).mean() < 6
    assert kept["rotated.jpg"].width == 128 and kept["rotated.jpg"].height == 96
    assert np.abs(images["grey.jpg"] - grey_of(5)[..., None]).mean() < 3
    assert saved["photo.webp"] == odd_images()["photo.webp"]  # upright RGB already: kept as it is
    assert (images["alpha.png"][:30] == 255).all()
    assert (images["alpha.png"][30:] == np.asarray(picture(7))[30:]).all()
    assert (images["grey_alpha.png"][66:] == 255).all() and (images["grey_alpha.png"][:66] == grey_of(9)[:66, :, None]).all()
    assert (images["float.tif"][8:-8] == black_edged(grey_of(11))[8:-8, :, None]).all()  # scaled like 16 bits
    assert (images["float.tif"][:8] == 0).all() and (images["float.tif"][-8:] == 255).all()
    assert saved["anim.webp"] != odd_images()["anim.webp"]  # an animation is not kept: its first frame is
    assert np.abs(images["anim.webp"] - np.asarray(picture(12))).mean() < 6
    for name in ("cmyk.jpg", "anim.webp"):  # lossy sources re-encoded at quality 95
        with Image.open(io.BytesIO(saved[name])) as img, Image.open(io.BytesIO(encode(picture(1), quality=95))) as q95:
            assert img.quantization == q95.quantization, name


def test_every_file_is_examined_hidden_ones_skipped_and_sources_are_the_original_paths(tmp_path):
    for slug in ("crow", "gull"):
        (tmp_path / slug / "more").mkdir(parents=True)
    (tmp_path / "crow" / "a.jpg").write_bytes(encode(picture(1)))
    (tmp_path / "crow" / "more" / "b.png").write_bytes(encode(picture(2), "PNG"))
    (tmp_path / "crow" / "notes.txt").write_text("taken at the lake")
    (tmp_path / "crow" / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
    (tmp_path / "gull" / "c.jpg").write_bytes(encode(picture(3)))
    (tmp_path / "unlisted").mkdir()

    started = time.perf_counter()
    cleaned = clean(read_folder(tmp_path, ["crow", "gull"]), tmp_path / "out", min_side=64, near_duplicate_distance=4)
    elapsed = time.perf_counter() - started

    assert 0 < cleaned.dedupe_s < elapsed  # the duplicate search's own time, a part of the whole
    assert [(k.name, k.found.source) for k in cleaned.kept] == [
        ("crow/crow_000.jpg", f"{tmp_path.as_posix()}/crow/a.jpg"),
        ("crow/crow_001.png", f"{tmp_path.as_posix()}/crow/more/b.png"),
        ("gull/gull_000.jpg", f"{tmp_path.as_posix()}/gull/c.jpg"),
    ]
    rejected = [(r.found.source, r.reason) for r in cleaned.rejected]
    assert rejected == [(f"{tmp_path.as_posix()}/crow/notes.txt", "not_an_image")]
    assert all(k.found.time.endswith("+00:00") for k in cleaned.kept)


def test_the_crawl_reads_the_folder_and_the_classes_params_name(tmp_path):
    raw = tiny_params()
    raw["crawl"].update(source="folder", folder={"path": str(tmp_path / "birds")})
    raw["classes"].reverse()  # found in the order of params' classes, not in the folders' order
    slugs = [c["slug"] for c in raw["classes"]]
    for slug in slugs:
        (tmp_path / "birds" / slug).mkdir(parents=True)
        (tmp_path / "birds" / slug / "a.jpg").write_bytes(slug.encode())
    found = list(find_images(load_params(path=params_file(tmp_path, raw))))
    assert [(f.label, f.source, f.file.read_bytes()) for f in found] == [
        (slug, f"{tmp_path.as_posix()}/birds/{slug}/a.jpg", slug.encode()) for slug in slugs
    ]


def test_a_missing_class_folder_is_named_with_what_is_there(tmp_path):
    (tmp_path / "crow").mkdir()
    (tmp_path / "Gull").mkdir()
    with pytest.raises(CrawlError, match="has no folder for class gull; it has: Gull, crow"):
        list(read_folder(tmp_path, ["crow", "gull"]))
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(CrawlError) as raised:
        list(read_folder(empty, ["crow", "gull"]))
    assert str(raised.value) == (f"crawl.folder.path: {empty} has no folder for class crow, gull; it has: no folders; "
                                 "expected one folder per class slug: crow, gull")


def test_each_file_is_found_by_its_path_unread_and_a_file_that_cannot_be_read_says_why(tmp_path):
    (tmp_path / "a.jpg").write_bytes(b"bytes")
    os.utime(tmp_path / "a.jpg", (0, 86_400))
    assert read_found("crow", tmp_path / "a.jpg") == Found("crow", f"{tmp_path.as_posix()}/a.jpg", None, "",
                                                          file=tmp_path / "a.jpg", time="1970-01-02T00:00:00+00:00")
    (tmp_path / "b.jpg").mkdir()  # a name that cannot be read as a file
    unreadable = examined_file(tmp_path / "b.jpg")
    assert (unreadable.reason, unreadable.detail) == ("fetch_failed", "cannot read the file: Is a directory")
    gone = read_found("crow", tmp_path / "gone.jpg")
    assert (gone.data, gone.file, gone.error) == (None, None, "cannot read the file: No such file or directory")


def examined_file(path: Path) -> Rejected:
    return examine_untrusted(Found("crow", path.as_posix(), None), str(path), str(path) + ".out", 64, 2**20)


def test_a_path_that_is_not_a_folder_names_the_param(tmp_path):
    with pytest.raises(CrawlError, match=r"crawl.folder.path: .*nowhere is not a folder"):
        list(read_folder(tmp_path / "nowhere", ["crow"]))


def examined(data: bytes, min_side: int = 64, max_bytes: int = 2**20):
    """examine_untrusted as a worker runs it on a file: (kept, the bytes it saved) or the rejection."""
    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / "in").write_bytes(data)
        outcome = examine_untrusted(Found("crow", "test", None), f"{folder}/in", f"{folder}/out", min_side, max_bytes)
        return outcome if isinstance(outcome, Rejected) else (outcome, (Path(folder) / f"out{outcome.ext}").read_bytes())


def test_examine_in_this_process_gives_each_file_its_verdict_and_its_bytes():
    """The verdicts the worker processes give, computed here (mutation testing sees only this
    process): what is kept and with which bytes, and every reason a bad file is rejected for."""
    outcomes = {name: examined(data) for name, data in odd_images().items()}
    check_upright_rgb({name: saved for name, (_, saved) in outcomes.items()}, {name: k for name, (k, _) in outcomes.items()})
    for name, (kept, saved) in outcomes.items():
        with Image.open(io.BytesIO(saved)) as img:
            assert img.size == (kept.width, kept.height), name
            assert kept.phash == perceptual_hash(img), name
        assert kept.size == len(saved) and kept.sha256 == hashlib.sha256(saved).hexdigest(), name
        assert kept.found == Found("crow", "test", None) and kept.warnings == "", name
        assert kept.ext == {"anim.gif": ".png", "cmyk.jpg": ".jpg", "grey.jpg": ".jpg", "photo.webp": ".webp",
                            "rotated.jpg": ".jpg", "anim.webp": ".jpg"}.get(name, ".png"), name
    jpeg, png = encode(picture(1)), encode(picture(1), "PNG")
    assert examined(jpeg)[1] == jpeg and examined(jpeg)[0].ext == ".jpg"
    assert examined(png)[1] == png and examined(png)[0].ext == ".png"

    def verdict(data, **kwargs):
        rejected = examined(data, **kwargs)
        assert rejected.found == Found("crow", "test", None)  # the bytes are not kept
        return rejected.reason, rejected.detail

    assert verdict(b"x" * 101, max_bytes=100) == ("too_large", "101 bytes, over the cap of 100 (crawl.max_image_mb)")
    assert examined(b"x" * 100, max_bytes=100).reason == "not_an_image"  # at the cap: read and examined
    assert verdict(b"") == ("not_an_image", "an empty file")
    assert verdict(b"  <!DOCTYPE html><p>moved</p>") == ("not_an_image", "an HTML page, not an image")
    assert verdict(b"<?xml?><html>") == ("not_an_image", "an HTML page, not an image")
    assert verdict(b"GIF87a-not-really") == ("not_an_image", "no image format recognised (starts with b'GIF87a-n')")
    assert verdict(b"x" * 507 + b"<html>")[1] == "an HTML page, not an image"  # looked for in the first 512 bytes
    assert verdict(b"x" * 508 + b"<html>")[1] == "no image format recognised (starts with b'xxxxxxxx')"
    assert verdict(jpeg[:900]) == ("broken", "image file is truncated (0 bytes not processed)")
    assert verdict(unknown_dds())[0] == "decoder_failed"
    assert verdict(unknown_dds())[1].startswith("NotImplementedError: ")
    assert verdict(jpeg, min_side=97) == ("too_small", "128x96, shorter side under 97")
    assert examined(jpeg, min_side=96)[0].height == 96  # the shorter side at the limit is kept


def test_a_decoder_out_of_memory_is_its_own_reason(monkeypatch):
    """What a worker says when decoding hits its memory cap (tests/test_nasty.py hits the real cap)."""
    def out_of_memory(found, min_side):
        raise MemoryError

    monkeypatch.setattr(cleaning, "examine", out_of_memory)
    assert examined(encode(picture(1))) == Rejected(
        Found("crow", "test", None), "over_memory_cap", "decoding needed more memory than crawl.decode_memory_mb allows")


def test_decompression_bombs_are_rejected_from_the_warning_on(monkeypatch):
    """Pillow raises past twice its pixel limit and only warns between once and twice: both are bombs."""
    jpeg = encode(picture(1))  # 128 x 96 = 12,288 pixels
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 12_288)
    assert not isinstance(examined(jpeg), Rejected)
    for limit in (12_287, 6_000):  # over the limit: a warning; over twice the limit: an error
        monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", limit)
        assert examined(jpeg) == Rejected(Found("crow", "test", None), "decompression_bomb", (
            f"Image size (12288 pixels) exceeds limit of {2 * limit if limit == 6_000 else limit} pixels, "
            "could be decompression bomb DOS attack."))


def test_the_perceptual_hash_is_the_64_bit_dct_hash():
    """A fixed value: any change to the hash (its thumbnail, its resampling, its bit order) makes
    every near-duplicate decision of an earlier crawl incomparable."""
    assert perceptual_hash(picture(1)) == 0x8CE3D8B83ACBC534
    noise = Image.fromarray(np.random.default_rng(0).integers(0, 256, (90, 120, 3), dtype=np.uint8))
    assert perceptual_hash(noise) == 0xA0B1CA6422F3E6CF  # detail down to the pixel: the thumbnail's resampling shows
    assert perceptual_hash(Image.new("RGB", (64, 48))) == 0  # black: every coefficient is the median, none above it


def test_a_decoder_error_without_a_message_is_named_by_its_type():
    from helpers import nasty_decoders  # noqa: F401  (registers the tests' misbehaving decoder in this process)

    rejected = examined(b"NASTY:quiet\n")
    assert (rejected.reason, rejected.detail) == ("broken", "OSError")


def test_decoder_warnings_are_kept_with_the_image():
    said = "UserWarning: Tag data larger than file. Skipping tag 270"  # each warning once
    assert examined(jpeg_with_bad_exif())[0].warnings == said
    assert examined(jpeg_with_bad_exif(tags=(0x010E, 0x010F)))[0].warnings == f"{said}; UserWarning: Tag data larger than file. Skipping tag 271"
    rejected = examined(jpeg_with_bad_exif(), min_side=100)
    assert rejected.detail == f"120x90, shorter side under 100 (decoder warnings: {said})"


def test_summary_counts_every_class_and_only_the_reasons_that_occurred():
    def found(label):
        return Found(label, "test", None)

    kept = [Kept(found("crow"), ".jpg", 1, 1, 1, "a", 0), Kept(found("crow"), ".jpg", 1, 1, 1, "b", 0)]
    rejected = [Rejected(found("crow"), "broken", ""), Rejected(found("gull"), "too_small", ""),
                Rejected(found("gull"), "too_small", "")]
    table = Cleaned(kept, rejected, Counter({"crow": 3, "gull": 2})).summary(["crow", "gull", "myna"])
    assert [line.split() for line in table.splitlines()] == [
        ["class", "found", "kept", "broken", "too_small"],
        ["crow", "3", "2", "1", "0"],
        ["gull", "2", "0", "0", "2"],
        ["myna", "0", "0", "0", "0"],
        ["total", "5", "2", "1", "2"],
    ]
    assert table.splitlines()[1] == "crow           3       2         1            0"  # names left, figures right


def test_an_image_over_the_byte_cap_is_rejected_before_any_worker_reads_it(tmp_path):
    big = tmp_path / "big.jpg"
    with open(big, "wb") as f:
        f.truncate(101)
    found = Found("crow", big.as_posix(), None, file=big)
    assert cleaning.staged(found, tmp_path / "staged", max_bytes=100) == Rejected(
        found, "too_large", "101 bytes, over the cap of 100 (crawl.max_image_mb)")
    assert cleaning.staged(found, tmp_path / "staged", max_bytes=101) == big  # at the cap: read by a worker
    in_memory = Found("crow", "synthetic", b"x" * 101)
    assert cleaning.staged(in_memory, tmp_path / "staged", max_bytes=100).reason == "too_large"
    assert cleaning.staged(in_memory, tmp_path / "staged", max_bytes=101) == tmp_path / "staged"
    assert (tmp_path / "staged").read_bytes() == b"x" * 101
