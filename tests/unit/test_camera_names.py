"""File names cameras and phones make give no title words; other names do."""

from __future__ import annotations

import pytest

from imgsearch.engine.ingest import is_camera_name


@pytest.mark.parametrize("stem", [
    "IMG_1234", "DSC_0001", "DSC01234", "PXL_20230704_101530123", "IMG_20190704_123456~2",
    "P1010001", "PXL_20230704_101530123.MP", "20190704_123456", "VID_0001", "___",
])
def test_camera_names(stem):
    assert is_camera_name(stem)


@pytest.mark.parametrize("stem", [
    "sunset beach", "Holidays 2019", "IMG_1234 copy", "photo of mum", "sign0001",
    "1" * 5000 + "x",  # long: answered (a nested pattern would take minutes here)
])
def test_names_with_words(stem):
    assert not is_camera_name(stem)
