"""Turn the errors our layers raise for users (db.errors.UserError and its subclasses in every package, plus
pydantic's and the database's) into one clean line on stderr and exit code 2; anything else keeps its traceback."""
from __future__ import annotations

import contextlib
import sys
from dataclasses import dataclass

from db.errors import UserError


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
    except UserError as e:
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
