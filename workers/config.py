"""ConfigModel — the one config style of every long job (generation, training, evaluation, sweep).

    class TrainConfig(ConfigModel):
        lora_r: int = Field(16, description="LoRA rank")       # the description is the flag's and the form's help

    cfg = TrainConfig.from_yaml("run.yaml")     # unknown keys refused; a bad value is a problem, not a traceback
    cfg.validate()                              # problems() collected, raised once with all of them
    cfg.to_yaml("runs/3/config.yaml")           # the help as comments: rerun with `moodshelf train --config FILE`
    cfg.cli_args()                              # ["--lora-r", "8", "--no-double-quant"]: what differs from the defaults

A config is a typed pydantic model whose fields carry their help text; the CLI flags (app/config_views.py), the
Gradio form (same module) and the YAML file (here) are views of it. Construction only checks types, so a form or a
flag set with several wrong values still reaches validate() and gets every problem listed at once (as litgpt's
args do). It lives in workers/ because every worker takes one; of the project it imports only db/errors.py.
"""
from __future__ import annotations

import textwrap
import types
from pathlib import Path
from typing import Any, ClassVar, Literal, Union, get_args, get_origin

import yaml
from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError

from db.errors import UserError


class ConfigError(UserError, ValueError):
    """Every problem of a config, listed."""

    title = "Invalid config"

    def __init__(self, problems: list[str] | str):
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        # One problem reads as one line (the CLI prints it as `error: ...`); several as a list under the title.
        listed = self.problems[0] if len(self.problems) == 1 else "\n" + "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"{self.title}: {listed}")


def field_shape(annotation: Any) -> tuple[Any, bool, tuple]:
    """(value type, is a list, choices) of a field: `int | None` -> (int, False, ()), `list[str] | None` ->
    (str, True, ()), `Literal["ko", "en"]` -> (str, False, ("ko", "en"))."""
    if get_origin(annotation) in (Union, types.UnionType):
        annotation = next(a for a in get_args(annotation) if a is not type(None))
    if get_origin(annotation) is list:
        return (get_args(annotation) or (str,))[0], True, ()
    if get_origin(annotation) is Literal:
        choices = get_args(annotation)
        return type(choices[0]), False, choices
    return annotation, False, ()


def field_choices(model_cls: type[BaseModel], name: str) -> tuple[list, bool]:
    """The choices a field offers (a Literal's, or json_schema_extra={"choices": [...]}) and whether other values
    are allowed too (json_schema_extra={"open": True})."""
    f = model_cls.model_fields[name]
    extra = f.json_schema_extra if isinstance(f.json_schema_extra, dict) else {}
    return list(extra.get("choices") or field_shape(f.annotation)[2]), bool(extra.get("open"))


def flag_name(name: str) -> str:
    return "--" + name.replace("_", "-")


def parse_value(model_cls: type[BaseModel], name: str, text: str) -> Any:
    """A field's value from its text on a command line or in a sweep grid: lists are comma-separated, the rest
    is converted by the field's type (pydantic's lax mode: "8" -> 8, "true" -> True). Raises ValueError."""
    annotation = model_cls.model_fields[name].annotation
    value: Any = text
    if field_shape(annotation)[1]:
        value = [x.strip() for x in text.split(",")]
    try:
        return TypeAdapter(annotation).validate_python(value)
    except ValidationError as e:
        raise ValueError(e.errors()[0]["msg"]) from None


def cli_args(config: BaseModel) -> list[str]:
    """The flags that turn the defaults into this config: --name value, --x / --no-x for booleans, lists
    comma-separated. Works on any pydantic model (app/config_views.add_flags parses them back)."""
    default = type(config)()
    args: list[str] = []
    for name in type(config).model_fields:
        value = getattr(config, name)
        if value == getattr(default, name):
            continue
        if isinstance(value, bool):
            args.append(flag_name(name) if value else "--no-" + name.replace("_", "-"))
        elif value is None:
            continue  # no flag says "unset"; None is every optional field's default anyway
        elif isinstance(value, list):
            args += [flag_name(name), ",".join(map(str, value))]
        else:
            args += [flag_name(name), str(value)]
    return args


def validation_problems(error: ValidationError) -> list[str]:
    """pydantic's errors as one line each, worded like our own problems."""
    out = []
    for er in error.errors():
        where = ".".join(map(str, er["loc"]))
        msg = er["msg"].removeprefix("Value error, ")
        out.append(f"{where}: {msg} (got {er['input']!r})" if where and "input" in er else msg)
    return out


class ConfigModel(BaseModel):
    """Base of every config: typed fields with help, YAML with comments, dict with unknown keys refused, and
    validation that collects every problem (problems()) and raises once (validate())."""

    model_config = ConfigDict(extra="forbid")

    error: ClassVar[type[Exception]] = ConfigError  # what validate() raises, called with the list of problems
    unknown_setting: ClassVar[str] = "unknown setting(s): {names}"

    def problems(self) -> list[str]:
        """Every problem of the values (a subclass lists its own); empty when the config is usable."""
        return []

    def validate(self):  # noqa: D102 - shadows pydantic v1's deprecated classmethod on purpose
        if problems := self.problems():
            raise self.error(problems)
        return self

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump()

    @classmethod
    def from_dict(cls, d: dict[str, Any]):
        if not isinstance(d, dict):
            raise cls.error([f"settings must be a mapping (got {type(d).__name__})"])
        if unknown := sorted(set(d) - set(cls.model_fields)):
            raise cls.error([cls.unknown_setting.format(names=", ".join(unknown))])
        try:
            return cls(**d)
        except ValidationError as e:
            raise cls.error(validation_problems(e)) from None

    @classmethod
    def stored(cls, d: dict[str, Any]):
        """The config a row stored when its work was created: settings this version no longer has are dropped, so
        a row written by an older version still loads (a user's file or flags go through from_dict instead)."""
        return cls(**{k: v for k, v in d.items() if k in cls.model_fields})

    def replace(self, **changes: Any):
        """A copy with some fields changed, checked like from_dict (pydantic's model_copy checks nothing)."""
        return type(self).from_dict({**self.to_dict(), **changes})

    @classmethod
    def from_yaml(cls, path: str | Path):
        try:
            data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as e:
            raise cls.error([f"cannot read {path}: {e}"]) from e
        if not isinstance(data, dict):
            raise cls.error([f"{path} must hold a mapping of settings"])
        return cls.from_dict(data)

    def yaml_text(self) -> str:
        """Every field, its help above it as a comment (as litgpt's config_hub presets are written)."""
        doc = (type(self).__doc__ or "").strip().splitlines()
        blocks = [f"# {type(self).__name__}" + (f": {doc[0]}" if doc else "")]
        for name, f in type(self).model_fields.items():
            comment = [f"# {line}" for line in textwrap.wrap(f.description or "", 110)]
            value = yaml.safe_dump({name: getattr(self, name)}, sort_keys=False, allow_unicode=True,
                                   default_flow_style=False, width=1000)
            blocks.append("\n".join(comment + [value.rstrip("\n")]))
        return "\n\n".join(blocks) + "\n"

    def to_yaml(self, path: str | Path) -> None:
        Path(path).write_text(self.yaml_text(), encoding="utf-8")

    def cli_args(self) -> list[str]:
        return cli_args(self)
