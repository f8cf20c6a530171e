import shlex

import pytest

from app.cli import build_parser
from app.config_views import config_from_args, train_config_from_args
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


def test_command_line_quotes_a_base_model_path_with_a_space():
    cfg = TrainConfig(base_model="/models/my base model", lora_r=8)
    line = cfg.command_line()
    assert "'/models/my base model'" in line
    args = build_parser().parse_args(shlex.split(line)[1:])
    assert train_config_from_args(args) == cfg


def test_flags_are_derived_from_the_model_and_only_given_flags_override_the_yaml(tmp_path):
    path = tmp_path / "run.yaml"
    TrainConfig(lora_r=8, packing=True, learning_rate=1e-3).to_yaml(path)
    text = path.read_text()
    assert "# LoRA rank\nlora_r: 8" in text  # the field's help is the YAML's comment
    parser = build_parser()
    default = TrainConfig()
    for name, value in default.to_dict().items():  # every field has a flag that sets it
        changed = {bool: lambda v: not v, int: lambda v: v + 3, float: lambda v: v + 0.5}.get(type(value),
                                                                                         lambda v: v + " x")(value)
        cfg = default.replace(**{name: changed})
        args = parser.parse_args(shlex.split(cfg.command_line())[1:])
        assert config_from_args(TrainConfig, args) == cfg, name  # not validated: 'nf4 x' is no quantization
    cfg = train_config_from_args(parser.parse_args(["train", "--config", str(path), "--no-packing"]))
    assert (cfg.lora_r, cfg.packing, cfg.learning_rate, cfg.batch_size) == (8, False, 1e-3, 4)


def test_the_demo_preset_is_a_train_config():
    from training.config import DEMO_PRESET

    args = build_parser().parse_args(["train", "--config", str(DEMO_PRESET)])
    cfg = train_config_from_args(args)
    assert (cfg.max_steps, cfg.learning_rate, cfg.language) == (40, 1e-3, "en")


def test_bad_values_in_a_yaml_are_listed_together(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("lora_r: many\nmax_steps: soon\n")
    with pytest.raises(ConfigError) as e:
        TrainConfig.from_yaml(path)
    assert [p.split(":")[0] for p in e.value.problems] == ["lora_r", "max_steps"]


def test_the_train_tab_log_hides_library_deprecation_warnings():
    from app.train_tab import readable_log

    tail = ("step 1/40 loss 2.91\n"
            "/venv/lib/python3.11/site-packages/trl/trainer/sft_trainer.py:88: FutureWarning: `x` is deprecated\n"
            "  warnings.warn(\n"
            "transformers: DeprecationWarning: use `y`\n"
            "step 2/40 loss 2.40")
    assert readable_log(tail) == "step 1/40 loss 2.91\nstep 2/40 loss 2.40"


def test_the_train_status_says_what_a_run_does_before_step_1_and_that_it_is_stopping():
    from datetime import datetime, timedelta, timezone

    from app.train_tab import status_markdown
    from db.models import TrainingRun

    run = TrainingRun(id=4, name="demo", status="running", config={"max_steps": 3},
                      phase="loading the base model and quantizing it (nf4)",
                      started_at=datetime.now(timezone.utc) - timedelta(seconds=42))
    shown = status_markdown(run, None)
    assert "loading the base model and quantizing it (nf4)…" in shown and "(42 s)" in shown
    run.stop_requested = True  # Stop & save pressed: said at once, not after the step
    assert "stopping after this step…" in status_markdown(run, None)
