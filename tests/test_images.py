"""hpa_ens.images: the one channel reader (PNG, JPG, TIFF; 8/16-bit; colour HPAv18 planes)."""

import numpy as np
import pytest
from PIL import Image

from hpa_ens.images import ImageError, channel_paths, composite_rgb, read_channel, read_image


def test_8_and_16_bit_and_tiff_read_as_uint8(tmp_path):
    grey = (np.arange(64, dtype=np.uint8).reshape(8, 8) * 4)
    Image.fromarray(grey).save(tmp_path / "a_red.png")
    np.testing.assert_array_equal(read_channel(tmp_path / "a_red.png"), grey)
    sixteen = (grey.astype(np.uint16) * 257)  # 255 * 257 = 65535: the fixed scale maps back exactly
    Image.fromarray(sixteen).save(tmp_path / "a_green.png")
    np.testing.assert_array_equal(read_channel(tmp_path / "a_green.png"), grey)
    Image.fromarray(sixteen).save(tmp_path / "a_blue.tif")
    np.testing.assert_array_equal(read_channel(tmp_path / "a_blue.tif"), grey)


def test_jpg_resized_and_colour_plane_by_channel(tmp_path):
    plane = np.full((64, 64), 180, dtype=np.uint8)
    zero = np.zeros_like(plane)
    Image.fromarray(np.stack([zero, zero, plane], -1)).save(tmp_path / "x_blue.jpg", quality=95)
    out = read_channel(tmp_path / "x_blue.jpg", size=16)
    assert out.shape == (16, 16) and abs(float(out.mean()) - 180) < 3  # luminance would give about 20


def test_read_image_stacks_channels_in_order_and_names_missing_or_corrupt(tmp_path):
    for k, channel in enumerate(("red", "green", "blue", "yellow")):
        Image.fromarray(np.full((8, 8), 10 * (k + 1), np.uint8)).save(tmp_path / f"i_{channel}.png")
    image = read_image(tmp_path, "i")
    assert image.shape == (4, 8, 8) and image[:, 0, 0].tolist() == [10, 20, 30, 40]
    assert composite_rgb(image).shape == (8, 8, 3)
    (tmp_path / "i_green.png").write_bytes(b"\x89PNG\r\n\x1a\nbroken")
    with pytest.raises(ImageError, match=r"i_green.png: cannot decode this image"):
        read_image(tmp_path, "i")
    (tmp_path / "i_green.png").unlink()
    with pytest.raises(ImageError, match=r"i_green.*channel file not found"):
        channel_paths(tmp_path, "i")
