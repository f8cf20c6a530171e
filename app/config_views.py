"""The CLI flags and the Gradio form of a config, derived from its model (workers/config.ConfigModel or any
pydantic model): one flag and one form field per model field, with the field's description as help.

    add_flags(parser, TrainConfig)                  # --lora-r N, --double-quant/--no-double-quant, ...
    cfg = config_from_args(TrainConfig, args)       # only the flags given override the defaults (or a YAML)
    components = form_components(TrainConfig, "train")   # in a gr.Blocks: Number, Checkbox, Dropdown, Textbox
    cfg = config_from_form(TrainConfig, list(components), values)

The YAML and dict side lives in workers/config.py; here only the two views the app shows. gradio is imported
inside the form functions, so `moodshelf --help` does not pay for it.
"""
from __future__ import annotations

import argparse
from typing import Any, Iterable

from pydantic import BaseModel

from db.errors import UserError
from training.config import TrainConfig
from workers.config import ConfigModel, field_choices, field_shape, flag_name


# -- argparse ------------------------------------------------------------------------------------------------------
def _help(f, fallback: str = "") -> str:
    text = f.description or fallback
    if f.default is not None and "default:" not in text:
        text += f" (default: {f.default!r})" if isinstance(f.default, str) else f" (default: {f.default})"
    return text.replace("%", "%%")  # argparse %-formats help strings: a literal % would break --help


def add_flags(parser: argparse.ArgumentParser, model_cls: type[BaseModel], *, skip: Iterable[str] = (),
              flags: dict[str, tuple[str, ...]] | None = None, choices: dict[str, Iterable] | None = None) -> None:
    """One flag per field: booleans as --x / --no-x, lists comma-separated, a Literal as choices, the rest typed by
    the field. Every flag defaults to None, so config_from_args can tell a flag given from one left out. `flags`
    renames a field's flag (JobConfig's auto_approve is --approve); `choices` restricts a flag's values (argparse
    then refuses the rest before any other check, so only where that is wanted)."""
    flags, choices = flags or {}, choices or {}
    for name, f in model_cls.model_fields.items():
        if name in skip:
            continue
        names = flags.get(name, (flag_name(name),))
        value_type, is_list, literal = field_shape(f.annotation)
        if value_type is bool:
            parser.add_argument(*names, dest=name, action=argparse.BooleanOptionalAction, default=None,
                                help=_help(f))
        elif is_list:
            parser.add_argument(*names, dest=name, default=None, metavar="A,B,...",
                                help=_help(f, "comma-separated values (default: the language's list)"))
        else:
            parser.add_argument(*names, dest=name, type=value_type if value_type in (int, float) else str,
                                choices=choices.get(name) or literal or None, default=None, help=_help(f))


def given_flags(model_cls: type[BaseModel], args: argparse.Namespace) -> dict[str, Any]:
    """The fields whose flag was given, lists split at commas."""
    values = {}
    for name, f in model_cls.model_fields.items():
        v = getattr(args, name, None)
        if v is None:
            continue
        values[name] = [x.strip() for x in v.split(",")] if field_shape(f.annotation)[1] and isinstance(v, str) else v
    return values


def config_from_args(model_cls: type[BaseModel], args: argparse.Namespace, base: dict[str, Any] | None = None):
    """The config the flags describe, on top of `base` (a YAML's values, say); not validated yet."""
    values = {**(base or {}), **given_flags(model_cls, args)}
    if issubclass(model_cls, ConfigModel):
        return model_cls.from_dict(values)
    return model_cls(**values)


def train_config_from_args(args: argparse.Namespace, **defaults: Any) -> TrainConfig:
    """`moodshelf train`/`sweep`: --config FILE, then `defaults`, then the flags given, validated."""
    base = TrainConfig.from_yaml(args.config).to_dict() if getattr(args, "config", None) else {}
    return config_from_args(TrainConfig, args, {**base, **defaults}).validate()


def job_config_from_args(args: argparse.Namespace):
    from datagen.job_config import JobConfig

    return config_from_args(JobConfig, args)


def eval_configs_from_args(args: argparse.Namespace) -> list:
    """One EvalConfig per backend; without --backend: base and the run's adapter when --run-id is given. With
    --compare-constrained, local backends twice (constrained decoding on and off)."""
    from training.eval_config import EvalConfig

    backends = args.backends or (["base", f"run:{args.run_id}"] if args.run_id is not None else None)
    if not backends:
        raise UserError("Name what to evaluate: --backend base|run:N|openai:MODEL|..., or --run-id N for the base "
                        "model and run N's adapter.")
    shared = given_flags(EvalConfig, args)
    shared.pop("backend", None)
    if not getattr(args, "compare_constrained", False):
        return [EvalConfig.from_dict({**shared, "backend": b}).validate() for b in backends]
    shared.pop("constrained", None)
    configs = []
    for b in backends:
        local = EvalConfig.from_dict({**shared, "backend": b}).validate().backend_spec().is_local
        configs += [EvalConfig.from_dict({**shared, "backend": b, "constrained": c}).validate()
                    for c in ((True, False) if local else (None,))]
    if not configs[0].on_requests:
        raise UserError("--compare-constrained needs a request set: add --requests grid or --requests-file FILE.")
    return configs


# -- Gradio --------------------------------------------------------------------------------------------------------
def form_component(model_cls: type[BaseModel], name: str, elem_prefix: str, value: Any = None):
    """The form field of one config field: a Dropdown where the field names its choices, a Checkbox for a
    boolean, a Number for a number, else a Textbox; label from the name, info from the description."""
    import gradio as gr

    f = model_cls.model_fields[name]
    value = f.default if value is None else value
    label, info, elem_id = name.replace("_", " "), f.description, f"{elem_prefix}_{name}"
    choices, open_ = field_choices(model_cls, name)
    value_type = field_shape(f.annotation)[0]
    if choices:
        return gr.Dropdown(choices, value=value, label=label, info=info, elem_id=elem_id, allow_custom_value=open_)
    if value_type is bool:
        return gr.Checkbox(value, label=label, info=info, elem_id=elem_id)
    if value_type in (int, float):
        return gr.Number(value, precision=0 if value_type is int else None, label=label, info=info, elem_id=elem_id)
    return gr.Textbox("" if value is None else str(value), label=label, info=info, elem_id=elem_id)


def form_components(model_cls: type[BaseModel], elem_prefix: str, per_row: int = 6) -> dict[str, Any]:
    """Every field's form component, `per_row` to a gr.Row, in the order of the model; call inside a gr.Blocks."""
    import gradio as gr

    names, comps = list(model_cls.model_fields), {}
    for i in range(0, len(names), per_row):
        with gr.Row():
            comps.update({n: form_component(model_cls, n, elem_prefix) for n in names[i:i + per_row]})
    return comps


def form_values(model_cls: type[BaseModel], **values: Any) -> dict[str, Any]:
    """Form values converted by their field's type: a number box holds a float (or None), a dropdown a string. An
    emptied box falls back to the field's default."""
    out = {}
    for name, v in values.items():
        f = model_cls.model_fields[name]
        value_type = field_shape(f.annotation)[0]
        if v is None or (value_type is not str and v == ""):
            v = f.default
        elif value_type is int:
            v = int(v)
        elif value_type is float:
            v = float(v)
        out[name] = v
    return out


def config_from_form(model_cls: type[BaseModel], names: list[str], values: Iterable[Any]):
    """The config a form shows (components in the order of `names`), not validated yet."""
    d = form_values(model_cls, **dict(zip(names, values)))
    if issubclass(model_cls, ConfigModel):
        return model_cls.from_dict(d)
    return model_cls(**d)
