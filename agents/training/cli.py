"""Command lines from one arguments dataclass, with presets that explicit flags override.

    @dataclass
    class Args:
        epochs: int = arg(3, "passes over the data")

    args = parse_dataclass(Args, argv, presets={"quick": {"epochs": 1}}, description=__doc__)

Each field is a ``--flag`` (underscores become dashes); its type comes from its default: a list takes
one or more values, a bool is a switch, ``None`` takes a value of the annotated type (``int | None``: an
integer; otherwise a string). ``--preset NAME`` (when the dataclass
has a ``preset`` field) fills in the preset's values for every flag not given on the command line.

The convention of every entry point (``experiments/`` and ``benchmarks/``; ``tests/test_scripts_help.py``
checks it): ``--help`` works with the base install (nothing heavy is imported before the flags are
parsed) and shows the script's docstring, then every flag with its help and default (a parser built
by hand uses :class:`HelpFormatter`); flags are ``--kebab-case``; a benchmark data folder is
``--data-dir``, a run's folder ``--out-dir``, and every benchmark writes its numbers with ``--json PATH``.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import types
import typing
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import MISSING, Field, field, fields
from typing import Any, TypeVar

from agents.training.progress import ProgressFactory
from atommem_env.errors import AtomMemError, ConfigError

T = TypeVar("T")


def arg(default: Any, help: str) -> Any:  # noqa: A002 - the argparse name
    """A dataclass field with a default and the help text of its flag (lists are copied per instance)."""
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata={"help": help})
    return field(default=default, metadata={"help": help})


def field_default(f: Field) -> Any:
    """The value a dataclass field starts with: its default, or a fresh one from its default factory."""
    return f.default_factory() if f.default_factory is not MISSING else f.default


def parse_dataclass(cls: type[T], argv: Sequence[str] | None, *, presets: Mapping[str, Mapping[str, Any]] = {},
                    choices: Mapping[str, Sequence[str]] = {}, description: str | None = None) -> T:
    """Parse ``argv`` into ``cls``: defaults, then the preset's values, then the flags given."""
    parser = dataclass_parser(cls, choices={"preset": sorted(presets), **choices} if presets else choices,
                              description=description)
    given = vars(parser.parse_args(argv))  # only the flags on the command line (defaults are suppressed)
    preset = presets.get(given.get("preset") or "", {})
    return cls(**{**preset, **given})


def dataclass_parser(cls: type, *, choices: Mapping[str, Sequence[str]] = {},
                     description: str | None = None) -> argparse.ArgumentParser:
    """A parser with one ``--flag`` per field of ``cls``, each with its help and default (see the module).

    Defaults are suppressed in the parsed namespace, so it holds only the flags given on the command
    line: a script can tell an explicit value from the default before building ``cls(**given)``.
    """
    parser = argparse.ArgumentParser(description=description, formatter_class=HelpFormatter)
    hints = typing.get_type_hints(cls)
    for f in fields(cls):
        options = _flag_options(f, hints[f.name], choices.get(f.name))
        parser.add_argument("--" + f.name.replace("_", "-"), **options)
    return parser


class HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """Every script's ``--help``: its docstring as written, then each flag's help with its default."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.required:  # a flag that must be given has no default to show
            return action.help
        return super()._get_help_string(action)


def _flag_options(f: Field, hint: Any, choices: Sequence[str] | None) -> dict[str, Any]:
    default = field_default(f)
    shown = (" ".join(map(str, default)) or "none") if isinstance(default, list) else repr(default)
    options: dict[str, Any] = {"default": argparse.SUPPRESS, "help": f"{f.metadata.get('help', '')} (default: {shown})"}
    if isinstance(default, list):
        options["nargs"] = "+"
    elif isinstance(default, bool):  # before int: bool is a subclass of int
        options["action"] = "store_true"
    else:
        options["type"] = _scalar_type(hint) if default is None else type(default)
    if choices is not None:
        options["choices"] = list(choices)
    return options


def _scalar_type(hint: Any) -> type:
    """The type a ``None``-defaulted field parses to: ``int | None`` → int; ``str | None`` → str."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        kinds = [a for a in typing.get_args(hint) if a is not type(None)]
        return kinds[0] if len(kinds) == 1 and kinds[0] in (int, float, str) else str
    return hint if hint in (int, float, str) else str


def json_object(flag: str, text: str, example: str) -> dict[str, Any]:
    """``text`` parsed as a JSON object.

    Raises:
        ConfigError: ``text`` is not a JSON object (the message names ``flag`` and shows ``example``).
    """
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise ConfigError(f"{flag} is not valid JSON ({error}); e.g. '{example}'.") from None
    if not isinstance(value, dict):
        raise ConfigError(f"{flag} must be a JSON object, e.g. '{example}'.")
    return value


def progress_bars(unit: str) -> ProgressFactory:
    """For scripts: a :data:`~agents.training.progress.ProgressFactory` of ``tqdm`` bars counting ``unit``."""
    from tqdm import tqdm

    return lambda description, total, done: tqdm(total=total, initial=done, desc=description, unit=unit)


@contextmanager
def exit_on_errors(prefix: str = "", *, resume: str | None = None) -> Iterator[None]:
    """For scripts: an atommem error inside the block exits with its message (status 1), no traceback;
    Ctrl-C exits with status 130 (the shell's code for SIGINT) and, with ``resume``, the command that
    continues the run.

    Library code raises exceptions that say what is wrong and how to fix it; a script is the only place
    that turns them into an exit status. Other exceptions are bugs and keep their traceback. Every
    entry point runs its ``main`` inside one (``tests/test_scripts_exit.py`` checks), and wraps the
    part that writes a run in another that knows the run's :func:`resume_command`.
    """
    try:
        yield
    except AtomMemError as error:
        raise SystemExit(f"{prefix}{error}") from None
    except KeyboardInterrupt:
        hint = f" Continue it with:\n  {resume}" if resume else ""
        sys.stderr.write(f"\nInterrupted.{hint}\n")  # after a progress bar's unfinished line
        raise SystemExit(130) from None


def resume_command(script: str, argv: Sequence[str], out_dir: str, resume_flag: str | None = "--resume") -> str:
    """The command line that continues a run: ``argv`` with its ``--out-dir`` made explicit (a run folder
    chosen by the script gets named) and ``resume_flag`` added (``None``: rerunning continues).

    Args:
        script: the script's file (``__file__``), shown relative to the working directory.
        argv: the flags the run was started with.
        out_dir: the run's folder.
        resume_flag: the flag that continues a run, dropped from ``argv`` and appended once.
    """
    kept: list[str] = []
    tokens = iter(argv)
    for token in tokens:
        name, equals, _ = token.partition("=")
        if _abbreviates(name, "--out-dir"):
            if not equals:
                next(tokens, None)  # its value
        elif resume_flag is None or not _abbreviates(name, resume_flag):
            kept.append(token)
    words = ["python", os.path.relpath(script), *kept, "--out-dir", out_dir, *([resume_flag] if resume_flag else [])]
    return shlex.join(words)


def _abbreviates(name: str, flag: str) -> bool:
    """Whether argparse read ``name`` as ``flag`` (it accepts unambiguous prefixes: ``--out`` for ``--out-dir``)."""
    return name.startswith("--") and len(name) > 2 and flag.startswith(name)
