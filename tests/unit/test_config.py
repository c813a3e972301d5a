"""Settings in layers: flag > environment > collection file > user file > default."""

from __future__ import annotations

from pathlib import Path

import pytest

from imgsearch.config import Settings, layered, read_config_file, user_config_path
from imgsearch.errors import InvalidInputError


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_each_layer_overrides_the_weaker_ones(tmp_path: Path) -> None:
    user = _write(tmp_path / "user.toml",
                  "default_limit = 5\nmin_confidence = 0.2\nrrf_k = 10\ncolor_boost = 1\n")
    coll = _write(tmp_path / "coll.toml", "default_limit = 6\nmin_confidence = 0.3\n")
    env = {"IMGSEARCH_DEFAULT_LIMIT": "7"}
    settings, origin = layered(env, [user, coll], clip_model=None, rrf_k=99)
    assert settings.default_limit == 7 and origin["default_limit"].startswith("environment")
    assert settings.min_confidence == 0.3 and origin["min_confidence"] == str(coll)
    assert settings.color_boost == 1.0 and origin["color_boost"] == str(user)
    assert settings.rrf_k == 99 and origin["rrf_k"] == "command line"
    assert settings.hnsw_m == Settings().hnsw_m and origin["hnsw_m"] == "default"
    assert origin["clip_model"] == "default"  # a flag left out is not a flag


def test_missing_files_are_no_layer(tmp_path: Path) -> None:
    settings, _origin = layered({}, [tmp_path / "absent.toml"])
    assert settings == Settings()


@pytest.mark.parametrize(("text", "message"), [
    ("no_such_setting = 1\n", "unknown setting 'no_such_setting'"),
    ("default_limit = \"ten\"\n", "default_limit must be a int"),
    ("log_searches = 1\n", "log_searches must be a bool"),
    ("default_limit = true\n", "default_limit must be a int"),
    ("default_limit = [\n", "not valid TOML"),
])
def test_bad_files_say_which_file_and_setting(tmp_path: Path, text: str, message: str) -> None:
    path = _write(tmp_path / "bad.toml", text)
    with pytest.raises(InvalidInputError, match=message) as info:
        read_config_file(path)
    assert str(path) in str(info.value)


def test_user_file_follows_xdg() -> None:
    assert user_config_path({"XDG_CONFIG_HOME": "/x"}) == Path("/x/imgsearch/config.toml")
    assert user_config_path({"HOME": "/home/u"}) == Path("/home/u/.config/imgsearch/config.toml")


def test_decode_timeout_must_be_positive() -> None:
    with pytest.raises(InvalidInputError, match=r"decode_timeout_s 0\.0 must be"):
        Settings(decode_timeout_s=0.0)
    assert Settings(decode_timeout_s=0.5).decode_timeout_s == 0.5
