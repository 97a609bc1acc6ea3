import pytest

from liverwild.errors import ConfigurationError
from liverwild.paths import preprocessed_folder, raw_folder, results_folder


def test_environment_variable_is_used(monkeypatch, tmp_path):
    monkeypatch.setenv("LW_raw", str(tmp_path))
    assert raw_folder() == tmp_path


def test_option_wins_over_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("LW_results", "/somewhere/else")
    assert results_folder(str(tmp_path)) == tmp_path


@pytest.mark.parametrize(
    "function, variable, option",
    [
        (raw_folder, "LW_raw", "--raw"),
        (preprocessed_folder, "LW_preprocessed", "--preprocessed"),
        (results_folder, "LW_results", "--results"),
    ],
)
def test_missing_folder_names_variable_and_option(monkeypatch, function, variable, option):
    monkeypatch.delenv(variable, raising=False)
    with pytest.raises(ConfigurationError) as info:
        function()
    assert variable in str(info.value) and option in str(info.value)


def test_must_exist(monkeypatch, tmp_path):
    monkeypatch.setenv("LW_raw", str(tmp_path / "nope"))
    with pytest.raises(ConfigurationError, match="does not exist"):
        raw_folder(must_exist=True)
