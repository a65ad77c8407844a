"""Inputs, read lazily: a list, any iterable, an async iterable, or a JSONL file path.

Nothing here holds more than one input at a time; the runner's window decides
how many are alive. A JSONL line that is not JSON or not an object does not
stop anything: it becomes an item carrying its problem (and its line number),
which the runner records as an error without calling the model.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterable, AsyncIterator, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from chainkit.errors import InputError

__all__ = ["InputItem", "Inputs", "iterate_inputs", "known_total"]

Inputs = Iterable[Any] | AsyncIterable[Any] | str | os.PathLike[str]


@dataclass(slots=True)
class InputItem:
    """One input with its position, its stable id, and its line in a JSONL file."""

    index: int
    value: Any
    id: Any
    line: int | None = None
    problem: InputError | None = None


def _id_of(value: Any, index: int) -> Any:
    if isinstance(value, dict):
        found = value.get("id")
        if isinstance(found, str | int) and not isinstance(found, bool):
            return found
    return index


def known_total(inputs: Any) -> int | None:
    """The number of inputs when it is cheap to know (a sized collection or a file)."""
    if isinstance(inputs, str | os.PathLike):
        path = Path(inputs)
        check_input_file(path)
        return count_lines(path)
    if hasattr(inputs, "__len__"):
        try:
            return len(inputs)
        except TypeError:
            return None
    return None


def check_input_file(path: Path) -> None:
    """Raise :class:`InputError` naming ``path`` unless it is a readable file."""
    if path.is_dir():
        problem = "is a directory"
    elif not path.exists():
        problem = "does not exist"
    elif not path.is_file():
        problem = "is not a regular file"
    else:
        return
    raise InputError(f"input file {path} {problem}; pass a JSONL file, one object a line")


def count_lines(path: Path) -> int:
    """Non-blank lines of a JSONL file (read in binary chunks; memory stays flat)."""
    count = 0
    with path.open("rb") as handle:
        for raw in handle:
            if raw.strip():
                count += 1
    return count


async def iterate_inputs(inputs: Any) -> AsyncIterator[InputItem]:
    """Yield :class:`InputItem` objects, one at a time, from any supported source."""
    if isinstance(inputs, str | os.PathLike):
        for item in _read_jsonl(Path(inputs)):
            yield item
        return
    index = 0
    if isinstance(inputs, AsyncIterable):
        async for value in inputs:
            yield InputItem(index=index, value=value, id=_id_of(value, index))
            index += 1
        return
    if isinstance(inputs, Iterable) and not isinstance(inputs, bytes | dict):
        for value in inputs:
            yield InputItem(index=index, value=value, id=_id_of(value, index))
            index += 1
        return
    raise InputError(
        f"inputs must be a list, an iterable, an async iterable or a JSONL path, "
        f"got {type(inputs).__name__}"
    )


def _read_jsonl(path: Path) -> Iterable[InputItem]:
    check_input_file(path)
    index = 0
    with path.open("rb") as handle:
        for line_no, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue
            problem: InputError | None = None
            value: Any
            try:
                value = orjson.loads(raw)
            except orjson.JSONDecodeError as exc:
                value = raw.decode("utf-8", errors="replace").rstrip("\r\n")[:1000]
                problem = InputError(
                    f"line {line_no} of {path} is not valid JSON ({exc.msg}); "
                    "write one JSON object per line"
                )
            else:
                if not isinstance(value, dict):
                    problem = InputError(
                        f"line {line_no} of {path} is a JSON {_json_kind(value)}, not an object; "
                        'write the template variables as an object, e.g. {"topic": "..."}'
                    )
            yield InputItem(
                index=index,
                value=value,
                id=_id_of(value, index) if problem is None else index,
                line=line_no,
                problem=problem,
            )
            index += 1


def _json_kind(value: Any) -> str:
    if isinstance(value, list):
        return "array"
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    return "null"
