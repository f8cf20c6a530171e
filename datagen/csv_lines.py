"""CSV records with the file's real line numbers, for import errors a person can find in an editor.

    header, rows = dict_records(text)          # header: the first record's fields, stripped and lower-cased
    for line, row in rows:                     # line: where the record starts; row: {column: value}
        ...                                    # extra fields under the key None, missing ones as None

A record starts on the line after the previous one ended: a quoted field may span lines and blank lines are
skipped, so counting records (or csv's line_num, the line a record *ends* on) gives the wrong line. Malformed
CSV raises CsvProblem naming its line; a quote that is never closed (the csv module would silently swallow
the rest of the file into one field) is named as such.
"""
from __future__ import annotations

import csv
import io
from typing import Iterator


class CsvProblem(ValueError):
    """Malformed CSV at a line: str() is "line 7: ..."."""

    def __init__(self, line: int, message: str):
        super().__init__(f"line {line}: {message}")
        self.line = line


class _CountedLines:
    """The physical lines of a text (\\n, \\r\\n or \\r endings), counting how many csv has read."""

    def __init__(self, text: str):
        self._lines = io.StringIO(text, newline="")
        self.read = 0

    def __iter__(self) -> "_CountedLines":
        return self

    def __next__(self) -> str:
        line = next(self._lines)
        self.read += 1
        return line


def csv_records(text: str) -> Iterator[tuple[int, list[str]]]:
    """(line the record starts on, its fields) for every non-blank record; CsvProblem on malformed CSV."""
    lines = _CountedLines(text)
    # strict: an unclosed quote or a stray one after a closing quote is an error, not a silently merged field.
    reader = csv.reader(lines, strict=True)
    while True:
        start = lines.read + 1
        try:
            fields = next(reader)
        except StopIteration:
            return
        except csv.Error as e:
            if "unexpected end of data" in str(e):  # EOF inside quotes: the quote opened in this record
                raise CsvProblem(start, 'a quoted field is never closed (unclosed ")') from None
            raise CsvProblem(lines.read, f"malformed CSV ({e})") from None
        if fields:  # a blank line reads as []
            yield start, fields


def dict_records(text: str) -> tuple[list[str], Iterator[tuple[int, dict]]]:
    """The header (first record, stripped and lower-cased) and (line, {column: value}) for every later record.
    Raises CsvProblem when the header itself is malformed; later records raise it as they are read."""
    records = csv_records(text)
    first = next(records, None)
    if first is None:
        return [], iter(())
    header = [h.strip().lower() for h in first[1]]

    def rows() -> Iterator[tuple[int, dict]]:
        for line, fields in records:
            row: dict = dict(zip(header, fields))
            if len(fields) > len(header):
                row[None] = fields[len(header):]
            for name in header[len(fields):]:
                row[name] = None
            yield line, row

    return header, rows()
