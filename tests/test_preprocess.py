import hashlib

import numpy as np
import pytest
from PIL import Image

from helpers.images import photo
from helpers.nasty_files import unknown_dds
from birds_onnx.preprocess import (ImageError, PreprocessSpec, load_rgb, normalize, open_rgb, preprocess, preprocess_batch,
                                   resize_center_crop, scale_offset)

SPEC = PreprocessSpec(resize=72, crop=64)


def jpeg(tmp_path, size=(120, 90), name="a.jpg", color=(200, 30, 40)):
    path = tmp_path / name
    Image.new("RGB", size, color).save(path, quality=90)
    return path


def test_shape_dtype_and_normalisation(tmp_path):
    x = preprocess(jpeg(tmp_path), SPEC)
    assert x.shape == (3, 64, 64) and x.dtype == np.float32 and x.flags.c_contiguous
    expected = (np.array([200, 30, 40]) / 255 - np.array(SPEC.mean)) / np.array(SPEC.std)
    np.testing.assert_allclose(x[:, 32, 32], expected, atol=0.03)  # JPEG is lossy


@pytest.mark.parametrize("size", [(120, 90), (90, 300), (1000, 700), (72, 72)])
def test_shorter_side_is_resized_exactly(tmp_path, size):
    img = load_rgb(jpeg(tmp_path, size), 72)
    assert min(img.size) == 72
    assert resize_center_crop(open_rgb(jpeg(tmp_path, size), 72), SPEC).size == (64, 64)


@pytest.mark.parametrize("size", [(120, 90), (90, 300), (1000, 700), (450, 1600)])
def test_resizing_only_the_crop_matches_resize_then_crop(tmp_path, size):
    """The evaluation path resizes just the centre square; it must give the training path's
    picture (resize the whole image, then take the centre)."""
    path = photo(tmp_path / "photo.jpg", size)
    whole = load_rgb(path, SPEC.resize)
    left, top = (whole.width - SPEC.crop) // 2, (whole.height - SPEC.crop) // 2
    expected = np.asarray(whole.crop((left, top, left + SPEC.crop, top + SPEC.crop)), np.int16)
    fused = np.asarray(resize_center_crop(open_rgb(path, SPEC.resize), SPEC), np.int16)
    assert np.abs(fused - expected).max() <= 1  # rounding of the resampling weights


def test_normalize_is_torchvisions_formula(tmp_path):
    img = Image.fromarray(np.random.default_rng(1).integers(0, 256, (8, 5, 3), dtype=np.uint8))
    expected = (np.asarray(img, np.float64) / 255 - SPEC.mean) / SPEC.std
    x = normalize(img, SPEC)
    assert x.shape == (3, 8, 5) and x.dtype == np.float32 and x.flags.c_contiguous
    np.testing.assert_allclose(x, expected.transpose(2, 0, 1), atol=1e-5)


def test_exif_rotation_is_applied(tmp_path):
    path = tmp_path / "rotated.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees clockwise to display
    Image.new("RGB", (200, 100)).save(path, exif=exif)
    img = load_rgb(path, 50)
    assert img.size[1] > img.size[0]  # shown upright: portrait


def test_broken_image_is_a_clear_error(tmp_path):
    bad = tmp_path / "page.jpg"
    bad.write_text("<html>not an image</html>")
    with pytest.raises(ImageError, match="page.jpg: not a readable image"):
        preprocess(bad, SPEC)
    truncated = tmp_path / "cut.jpg"
    truncated.write_bytes(jpeg(tmp_path, (400, 300)).read_bytes()[:600])
    with pytest.raises(ImageError) as raised:
        preprocess(truncated, SPEC)
    assert str(raised.value) == f"{truncated}: not a readable image (Truncated File Read)"
    unknown = tmp_path / "odd.dds"  # Pillow raises what it does not document: its type is named
    unknown.write_bytes(unknown_dds())
    with pytest.raises(ImageError) as raised:
        preprocess(unknown, SPEC)
    assert str(raised.value) == f"{unknown}: not a readable image (NotImplementedError: Unimplemented pixel format 1465538904)"


def test_a_large_jpeg_is_decoded_at_a_reduced_scale(tmp_path):
    # draft mode: libjpeg decodes 1/8 of 1600 x 1200 when 100 px are enough, never less than asked
    big = jpeg(tmp_path, size=(1600, 1200), name="big.jpg")
    assert open_rgb(big, 100).size == (200, 150)
    assert open_rgb(big, 600).size == (800, 600)
    png = tmp_path / "big.png"
    Image.open(big).save(png)
    assert open_rgb(png, 100).size == (1600, 1200)  # other formats decode whole


def test_the_spec_as_a_dict_is_what_the_models_carry_and_reads_back():
    spec = PreprocessSpec(resize=80, crop=64, mean=(0.5, 0.25, 0.125), std=(0.2, 0.3, 0.4))
    as_dict = spec.to_dict()
    assert as_dict == {"resize": 80, "crop": 64, "mean": [0.5, 0.25, 0.125], "std": [0.2, 0.3, 0.4]}
    assert PreprocessSpec.from_dict(as_dict) == spec


def test_a_batch_is_each_image_preprocessed_in_order(tmp_path):
    paths = [jpeg(tmp_path, (120, 90), "red.jpg"), jpeg(tmp_path, (90, 150), "blue.jpg", color=(20, 40, 220))]
    batch = preprocess_batch(paths, SPEC)
    assert batch.shape == (2, 3, 64, 64) and batch.dtype == np.float32
    for x, path in zip(batch, paths):
        np.testing.assert_array_equal(x, preprocess(path, SPEC))


@pytest.mark.parametrize("mode, name", [("L", "grey.jpg"), ("CMYK", "print.jpg"), ("P", "palette.png"), ("RGBA", "alpha.png"),
                                        ("LA", "grey_alpha.png")])
def test_every_kind_of_picture_becomes_rgb(tmp_path, mode, name):
    path = tmp_path / name
    Image.fromarray(np.random.default_rng(2).integers(0, 256, (80, 90, 3), dtype=np.uint8)).convert(mode).save(path)
    with Image.open(path) as img:
        expected = normalize(resize_center_crop(img.convert("RGB"), SPEC), SPEC)
    np.testing.assert_array_equal(preprocess(path, SPEC), expected)


def test_the_resampling_is_frozen(tmp_path):
    """Fixed values, as for the perceptual hash: a model sees the pixels it was trained on only if
    training, evaluation and the predictor of every later version resample alike. A picture over 3x
    the size asked (whole-factor reduction first) with an odd margin around its centre crop."""
    path = tmp_path / "big.png"
    Image.fromarray(np.random.default_rng(3).integers(0, 256, (700, 1001, 3), dtype=np.uint8)).save(path)
    resized = load_rgb(path, 72)
    assert resized.size == (103, 72)
    assert hashlib.sha256(np.asarray(resized).tobytes()).hexdigest()[:16] == "7242defe81e6d639"
    cropped = resize_center_crop(open_rgb(path, 72), SPEC)
    assert hashlib.sha256(np.asarray(cropped).tobytes()).hexdigest()[:16] == "b3f3721170fc9bba"


def test_scale_and_offset_are_float32_as_the_batches_they_multiply():
    scale, offset = scale_offset(SPEC)
    assert scale.dtype == offset.dtype == np.float32
    np.testing.assert_allclose(scale, 1 / (255 * np.array(SPEC.std)), rtol=1e-6)
    np.testing.assert_allclose(offset, -np.array(SPEC.mean) / np.array(SPEC.std), rtol=1e-6)
