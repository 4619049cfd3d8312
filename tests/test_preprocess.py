import numpy as np
import pytest
from PIL import Image

from stages.preprocess import ImageError, PreprocessSpec, center_crop, load_rgb, preprocess

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
    assert center_crop(img, 64).size == (64, 64)


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
    with pytest.raises(ImageError, match="cut.jpg"):
        preprocess(truncated, SPEC)
