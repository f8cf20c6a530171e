import pytest

from app.cli import build_parser
from app.config_views import train_config_from_args
from training.config import ConfigError, TrainConfig


def test_validation_reports_every_problem_at_once():
    cfg = TrainConfig(lora_r=0, learning_rate=0, max_length=8, quantization="int3", batch_size=0)
    with pytest.raises(ConfigError) as e:
        cfg.validate()
    text = str(e.value)
    for needle in ("lora_r must be > 0", "learning_rate must be > 0", "max_length must be at least",
                   "quantization must be", "batch_size must be > 0"):
        assert needle in text
    assert len(e.value.problems) == 5


def test_yaml_flags_and_object_are_one_config(tmp_path):
    path = tmp_path / "run.yaml"
    TrainConfig(lora_r=8, max_steps=7, target_modules="attention").to_yaml(path)
    assert TrainConfig.from_yaml(path) == TrainConfig(lora_r=8, max_steps=7, target_modules="attention")
    args = build_parser().parse_args(["train", "--config", str(path), "--max-steps", "3", "--no-double-quant"])
    cfg = train_config_from_args(args)
    assert (cfg.lora_r, cfg.max_steps, cfg.double_quant, cfg.target_modules) == (8, 3, False, "attention")


def test_unknown_yaml_key_is_an_error(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("lora_rank: 8\n")
    with pytest.raises(ConfigError, match="unknown setting"):
        TrainConfig.from_yaml(path)


def test_target_module_presets():
    assert TrainConfig(target_modules="attention").target_module_list() == ["q_proj", "k_proj", "v_proj", "o_proj"]
    assert TrainConfig(target_modules="all-linear").target_module_list() == "all-linear"
    assert TrainConfig(target_modules="q_proj, v_proj").target_module_list() == ["q_proj", "v_proj"]


def test_command_line_reproduces_the_config():
    cfg = TrainConfig(lora_r=8, max_steps=3, double_quant=False, target_modules="attention")
    args = build_parser().parse_args(cfg.command_line().split()[1:])
    assert train_config_from_args(args) == cfg
