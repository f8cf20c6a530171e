"""Turn the errors our layers raise for users into one clean line on stderr and exit code 2."""
from __future__ import annotations

import contextlib
import sys
from dataclasses import dataclass


class UserError(RuntimeError):
    """Something the user can fix; printed without a traceback."""


def user_facing_types() -> tuple[type[BaseException], ...]:
    from datagen.catalog import CatalogError
    from datagen.exchange import ExchangeError
    from datagen.jobs import JobError
    from datagen.review import ReviewError
    from db.curation import CurationError
    from db.engine import DatabaseError
    from workers.supervisor import WorkerBusy
    from db.settings import SettingsError
    from training.base_model import ModelLoadError
    from training.config import ConfigError
    from training.data import DatasetError
    from training.eval_config import EvalError
    from training.recommend import RecommendError
    from training.runs import RunError
    from vendors.base import VendorError as VendorError

    return (UserError, CatalogError, VendorError, DatabaseError, SettingsError, ModelLoadError, ConfigError,
            DatasetError, RunError, ExchangeError, ReviewError, CurationError,
            EvalError, JobError, RecommendError, WorkerBusy)


@dataclass
class Result:
    code: int = 0


@contextlib.contextmanager
def user_errors():
    from pydantic import ValidationError
    from sqlalchemy.exc import OperationalError

    result = Result()
    try:
        yield result
    except user_facing_types() as e:
        print(f"error: {e}", file=sys.stderr)
        result.code = 2
    except ValidationError as e:
        problems = "; ".join((f"{'.'.join(map(str, er['loc']))}: " if er["loc"] else "")
                             + er["msg"].removeprefix("Value error, ") for er in e.errors())
        print(f"error: {problems}", file=sys.stderr)
        result.code = 2
    except OperationalError as e:
        from db.engine import explain_operational_error
        from db.settings import get_settings

        print(f"error: {explain_operational_error(e, get_settings().database_url)}", file=sys.stderr)
        result.code = 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        result.code = 130
