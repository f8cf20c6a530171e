"""AppSettings — how the served app behaves, read from the environment once at start (`moodshelf serve`).

    MOODSHELF_FIRST_TOKEN_TIMEOUT_S=30 MOODSHELF_STORE_READER_TEXT=1 moodshelf serve

Each field names its variable and says what it does; every problem is collected and reported at once.
"""
from __future__ import annotations

import os
from typing import Any, ClassVar

from pydantic import ConfigDict, Field

from db.errors import UserError
from workers.config import ConfigModel

TRUE = ("1", "true", "yes", "on")
FALSE = ("0", "false", "no", "off", "")


class SettingsError(UserError):
    """An environment variable the app cannot use, worded for the user (the CLI prints it in one line)."""

    def __init__(self, problems: list[str] | str):
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("; ".join(self.problems))


def _env(name: str) -> dict:
    return {"env": name}


class AppSettings(ConfigModel):
    """How the served app behaves; each field is read from the environment variable it names."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    error: ClassVar[type[Exception]] = SettingsError

    first_token_timeout_s: float = Field(20.0, json_schema_extra=_env("MOODSHELF_FIRST_TOKEN_TIMEOUT_S"), description=
        "seconds an API column waits for its first token before it gives up with one line (local models queue "
        "instead and have no limit)")
    store_reader_text: bool = Field(False, json_schema_extra=_env("MOODSHELF_STORE_READER_TEXT"), description=
        "1: Compare and Arena store what a reader writes in 'Anything else' with their request; off by default, "
        "the request fields, answers and votes are stored without it")
    login_attempts_per_minute: int = Field(5, json_schema_extra=_env("MOODSHELF_LOGIN_ATTEMPTS_PER_MINUTE"),
        description="failed admin logins one client may make in a minute before it gets 429 with Retry-After")

    @classmethod
    def from_env(cls) -> "AppSettings":
        """The settings from the environment; every unusable variable is named at once (SettingsError)."""
        values: dict[str, Any] = {}
        problems = []
        for name, f in cls.model_fields.items():
            env = f.json_schema_extra["env"]
            raw = os.environ.get(env)
            if raw is None:
                continue
            raw = raw.strip()
            try:
                values[name] = _parse(f.annotation, raw)
            except ValueError as e:
                problems.append(f"{env}={raw!r}: {e} ({f.description})")
        if problems:
            raise SettingsError(problems)
        return cls(**values)

    def reader_data_line(self, *, workbench: bool = True) -> str:
        """The one line a page with Recommend shows about what is kept of a reader's request (`workbench`: the
        page also has Compare and Arena, which store requests)."""
        feedback = "Recommend stores nothing of your request (a 👍/👎 keeps only the vote, the model and its books)"
        if not workbench:
            return f"*What is kept: {feedback}.*"
        if self.store_reader_text:
            return ("*What is kept: Compare and Arena store your request — the fields and what you write in "
                    f"“Anything else” — with the answers and your vote; {feedback}.*")
        return ("*What is kept: Compare and Arena store the request's fields (emotion, occupation, effect, "
                "situation, focus), the answers and your vote — not what you write in “Anything else”; "
                f"{feedback}.*")


def _parse(annotation, raw: str):
    """One variable's value by its field's type, with the reason it is refused (values must be positive)."""
    if annotation is bool:
        if raw.lower() not in TRUE + FALSE:
            raise ValueError("use 1 or 0")
        return raw.lower() in TRUE
    try:
        value = annotation(raw)
    except ValueError:
        raise ValueError("not a number") from None
    if annotation is int and value < 1:
        raise ValueError("must be at least 1")
    if annotation is float and not value > 0:
        raise ValueError("must be more than 0")
    return value
