"""A prompt's front matter, checked: each key it may have, with its type; any other key is an error.

A misspelled key (`dependson:`, `file:`) that was dropped without a word would let a task run in
parallel with what it depends on, from the wrong base. So, like an unknown setting in config.toml,
an unknown key is an InputError, with a did-you-mean. Every problem is one line naming the file.
"""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, TypeGuard

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError
from pydantic_core import ErrorDetails

from orchestrator.config.durations import parse_duration
from orchestrator.errors import InputError, closest

DEFAULT_PRIORITY = 5


def _is_scalar(value: object) -> TypeGuard[str | int | float]:
    # YAML turns `yes`/`no` into booleans: never a name, a number or a duration someone meant.
    return isinstance(value, (str, int, float)) and not isinstance(value, bool)


def _text(value: object) -> str | None:
    if value is None:
        return None
    if not _is_scalar(value):
        raise ValueError("not a string")
    return str(value).strip() or None


def _names(value: object) -> list[str]:
    """One name or a list of them; the quotes and backticks people put around names are dropped."""
    if value is None:
        return []
    items = value if isinstance(value, list) else [value]
    if not all(_is_scalar(item) for item in items):
        raise ValueError("not a list of strings")
    return [name for item in items if (name := str(item).strip().strip("`'\"").strip())]


def _priority(value: object) -> int:
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 9:
        raise ValueError("not a priority")
    return value


def _positive_int(value: object) -> int | None:
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError("not a positive integer")
    return value


def _flag(value: object) -> bool:
    if not isinstance(value, bool):
        raise ValueError("not true or false")
    return value


def _count(value: object) -> int | None:
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError("not a count")
    return value


def _items(value: object) -> list[str]:
    """A list of sentences (requirements): unlike names, kept as written, quotes and all."""
    if value is None:
        return []
    items = value if isinstance(value, list) else [value]
    if not all(_is_scalar(item) for item in items):
        raise ValueError("not a list of strings")
    return [text for item in items if (text := " ".join(str(item).split()))]


def _seconds(value: object) -> float | None:
    if value is None:
        return None
    if not _is_scalar(value):
        raise ValueError("not a duration")
    try:
        return parse_duration(value)
    except InputError as exc:  # the message is rebuilt in the one front-matter style
        raise ValueError(str(exc)) from None


# Each description is what the key accepts, as error messages say it.
Text = Annotated[str | None, BeforeValidator(_text), Field(description="a string")]
Names = Annotated[list[str], BeforeValidator(_names), Field(description="a string or a list of strings")]
Priority = Annotated[int, BeforeValidator(_priority), Field(description="an integer from 1 (first) to 9")]
PositiveInt = Annotated[int | None, BeforeValidator(_positive_int), Field(description="a positive integer")]
Flag = Annotated[bool, BeforeValidator(_flag), Field(description="true or false")]
Count = Annotated[int | None, BeforeValidator(_count), Field(description="a whole number, 0 or more")]
Items = Annotated[list[str], BeforeValidator(_items), Field(description="a string or a list of strings")]
Seconds = Annotated[float | None, BeforeValidator(_seconds),
                    Field(description="a duration longer than zero, like 90s, 30m or 2h")]


class FrontMatter(BaseModel):
    """The keys a prompt's front matter may have; see README "What a run does"."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: Text = None
    title: Text = None
    depends_on: Names = Field(default_factory=list)
    files: Names = Field(default_factory=list)
    conflicts_with: Names = Field(default_factory=list)
    priority: Priority = DEFAULT_PRIORITY
    agent: Text = None
    model: Text = None
    timeout: Seconds = None  # in seconds; a bare number is hours
    max_turns: PositiveInt = None
    verify: Text = None
    allow_placeholders: Flag = False
    outputs: Names = Field(default_factory=list)
    requirements: Items = Field(default_factory=list)
    fix_rounds: Count = None
    status: Text = None
    # Written by Gadugi's prompt-writer and by ccpm task files: accepted so those prompts run as
    # they are, and not used.
    description: Any = None
    issue_number: Any = None
    created_by: Any = None
    date: Any = None
    name: Any = None
    created: Any = None
    updated: Any = None
    github: Any = None
    parallel: Any = None


_ACCEPTED_KEYS = tuple(FrontMatter.model_fields)
# `invalid_key`: YAML reads an unquoted `on:` or `2024:` as a boolean or a number, not a name.
_UNKNOWN_KEY_ERRORS = ("extra_forbidden", "invalid_key")


def check_front_matter(meta: dict[Any, Any], path: Path) -> FrontMatter:
    """The checked front matter of `path`; InputError (one line, naming the file) when it is not."""
    try:
        return FrontMatter.model_validate(meta)
    except ValidationError as exc:
        # Misspelled keys first: a wrong value next to one is often the same mistake.
        errors = sorted(exc.errors(), key=lambda error: error["type"] not in _UNKNOWN_KEY_ERRORS)
        raise InputError(f"{path}: " + "; ".join(_describe(error) for error in errors)) from None


def _describe(error: ErrorDetails) -> str:
    if error["type"] in _UNKNOWN_KEY_ERRORS:
        return _unknown_key(error["input"] if error["type"] == "invalid_key" else error["loc"][0])
    key = str(error["loc"][0])
    return f"front matter '{key}' must be {FrontMatter.model_fields[key].description}, got {error['input']!r}"


def _unknown_key(key: object) -> str:
    # `unknown front-matter key 'x' (did you mean 'y'?)`, or the accepted keys when none is close.
    guess = _closest_key(str(key))
    hint = f"did you mean '{guess}'?" if guess else f"accepted: {', '.join(_ACCEPTED_KEYS)}"
    return f"unknown front-matter key {str(key)!r} ({hint})"


def _closest_key(key: str) -> str | None:
    # `depends-on`, `Depends On` and `dependson` are spellings of one key; the shared matcher finds the rest.
    squashed = {known.replace("_", ""): known for known in _ACCEPTED_KEYS}
    normal = "_".join(key.lower().replace("-", " ").split())
    if normal.replace("_", "") in squashed:
        return squashed[normal.replace("_", "")]
    return closest(normal, _ACCEPTED_KEYS)
