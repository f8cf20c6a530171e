"""Where moodshelf keeps its state, read from the environment once.

    MOODSHELF_HOME   data directory (default ./data): the SQLite file, converted models, runs, logs
    DATABASE_URL     any SQLAlchemy URL; default sqlite:///$MOODSHELF_HOME/moodshelf.db

The CLI, the app and the worker processes all resolve the same `Settings`, so a run started
from the UI writes to the same place that `moodshelf train` would.
"""
from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from db.errors import UserError


class SettingsError(UserError, RuntimeError):
    """A problem with the data directory or database location, worded for the user."""


@dataclass(frozen=True)
class Settings:
    home: Path
    database_url: str

    @property
    def models_dir(self) -> Path:
        return self.home / "models"

    @property
    def runs_dir(self) -> Path:
        return self.home / "runs"

    @property
    def logs_dir(self) -> Path:
        return self.home / "logs"

    @classmethod
    def from_env(cls) -> "Settings":
        home = Path(os.environ.get("MOODSHELF_HOME", "data")).expanduser().resolve()
        url = os.environ.get("DATABASE_URL") or f"sqlite:///{home / 'moodshelf.db'}"
        return cls(home=home, database_url=url)

    def ensure_home(self) -> "Settings":
        """Create the data directory and prove it is writable, or say what to do."""
        try:
            for d in (self.home, self.models_dir, self.runs_dir, self.logs_dir):
                d.mkdir(parents=True, exist_ok=True)
            # os.access lies for root and on some mounts: really write a file.
            with tempfile.NamedTemporaryFile(dir=self.home, prefix=".write-test-"):
                pass
        except OSError as e:
            raise SettingsError(
                f"MOODSHELF_HOME={self.home} is not writable ({e.strerror or e}). "
                "Point MOODSHELF_HOME at a directory you can write to, e.g. "
                "`export MOODSHELF_HOME=$HOME/.moodshelf`."
            ) from e
        return self


def get_settings() -> Settings:
    return Settings.from_env()
