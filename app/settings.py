"""AppSettings — how the served app behaves, read from the environment once at start (`moodshelf serve`).

    MOODSHELF_FIRST_TOKEN_TIMEOUT_S=30 MOODSHELF_STORE_READER_TEXT=1 moodshelf serve

Each field names its variable and says what it does; every problem is collected and reported at once.
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field

from db.errors import UserError

TRUE = ("1", "true", "yes", "on")
FALSE = ("0", "false", "no", "off", "")


class SettingsError(UserError):
    """An environment variable the app cannot use, worded for the user (the CLI prints it in one line)."""


def _env(name: str, help_: str) -> dict:
    return {"env": name, "help": help_}


@dataclass(frozen=True)
class AppSettings:
    first_token_timeout_s: float = field(default=20.0, metadata=_env(
        "MOODSHELF_FIRST_TOKEN_TIMEOUT_S",
        "seconds an API column waits for its first token before it gives up with one line (local models queue "
        "instead and have no limit)"))
    store_reader_text: bool = field(default=False, metadata=_env(
        "MOODSHELF_STORE_READER_TEXT",
        "1: Compare and Arena store what a reader writes in 'Anything else' with their request; off by default, "
        "the request fields, answers and votes are stored without it"))
    login_attempts_per_minute: int = field(default=5, metadata=_env(
        "MOODSHELF_LOGIN_ATTEMPTS_PER_MINUTE",
        "failed admin logins one client may make in a minute before it gets 429 with Retry-After"))

    @classmethod
    def from_env(cls) -> "AppSettings":
        values, problems = {}, []
        for f in dataclasses.fields(cls):
            raw = os.environ.get(f.metadata["env"])
            if raw is None:
                continue
            raw = raw.strip()
            try:
                if f.type in (bool, "bool"):
                    if raw.lower() not in TRUE + FALSE:
                        raise ValueError("use 1 or 0")
                    values[f.name] = raw.lower() in TRUE
                elif f.type in (int, "int"):
                    values[f.name] = int(raw)
                    if values[f.name] < 1:
                        raise ValueError("must be at least 1")
                else:
                    values[f.name] = float(raw)
                    if not values[f.name] > 0:
                        raise ValueError("must be more than 0")
            except ValueError as e:
                reason = str(e) if "must" in str(e) or "use" in str(e) else "not a number"
                problems.append(f"{f.metadata['env']}={raw!r}: {reason} ({f.metadata['help']})")
        if problems:
            raise SettingsError("; ".join(problems))
        return cls(**values)

    def reader_data_line(self) -> str:
        """The one line the public page shows about what is kept of a reader's request."""
        if self.store_reader_text:
            return ("*What is kept: Compare and Arena store your request — the fields and what you write in "
                    "“Anything else” — with the answers and your vote; Recommend stores nothing.*")
        return ("*What is kept: Compare and Arena store the request's fields (emotion, occupation, effect, "
                "situation, focus), the answers and your vote — not what you write in “Anything else”; Recommend "
                "stores nothing.*")
