"""Command lines from one arguments dataclass, with presets that explicit flags override.

    @dataclass
    class Args:
        epochs: int = arg(3, "passes over the data")

    args = parse_dataclass(Args, argv, presets={"quick": {"epochs": 1}}, description=__doc__)

Each field is a ``--flag`` (underscores become dashes); its type comes from its default: a list takes
one or more values, a bool is a switch, ``None`` takes a string. ``--preset NAME`` (when the dataclass
has a ``preset`` field) fills in the preset's values for every flag not given on the command line.
"""

from __future__ import annotations

import argparse
from dataclasses import MISSING, Field, field, fields
from typing import Any, Mapping, Sequence, TypeVar

T = TypeVar("T")


def arg(default: Any, help: str) -> Any:  # noqa: A002 - the argparse name
    """A dataclass field with a default and the help text of its flag (lists are copied per instance)."""
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata={"help": help})
    return field(default=default, metadata={"help": help})


def field_default(f: Field) -> Any:
    return f.default_factory() if f.default_factory is not MISSING else f.default  # type: ignore[misc]


def parse_dataclass(cls: type[T], argv: Sequence[str] | None, *, presets: Mapping[str, Mapping[str, Any]] = {},
                    choices: Mapping[str, Sequence[str]] = {}, description: str | None = None) -> T:
    """Parse ``argv`` into ``cls``: defaults, then the preset's values, then the flags given."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    for f in fields(cls):  # type: ignore[arg-type]
        options = _flag_options(f, choices.get(f.name) or (sorted(presets) if f.name == "preset" else None))
        parser.add_argument("--" + f.name.replace("_", "-"), **options)
    given = vars(parser.parse_args(argv))  # only the flags on the command line (defaults are suppressed)
    preset = presets.get(given.get("preset") or "", {})
    return cls(**{**preset, **given})


def _flag_options(f: Field, choices: Sequence[str] | None) -> dict[str, Any]:
    default = field_default(f)
    shown = (" ".join(map(str, default)) or "none") if isinstance(default, list) else repr(default)
    options: dict[str, Any] = {"default": argparse.SUPPRESS, "help": f"{f.metadata.get('help', '')} (default: {shown})"}
    if isinstance(default, list):
        options["nargs"] = "+"
    elif isinstance(default, bool):  # before int: bool is a subclass of int
        options["action"] = "store_true"
    else:
        options["type"] = str if default is None else type(default)
    if choices is not None:
        options["choices"] = list(choices)
    return options
