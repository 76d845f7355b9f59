"""One command-line convention for every entry point (``agents/training/cli.py`` states it).

Each script's ``--help`` runs in a fresh interpreter where only the base install can be imported: the
standard library, the project's own packages and the distributions ``pip install atommem`` brings
(gymnasium, numpy and what they require). Any other import (torch, transformers, ray, matplotlib,
tqdm, ...) raises ``ModuleNotFoundError`` there, exactly as on a machine without those packages, even
though this machine has them. Every flag must have a help line that shows its default.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
OUR_PACKAGES = ("atommem_env", "agents", "experiments", "benchmarks")
EXPERIMENTS = sorted(p.name for p in (ROOT / "experiments").glob("*.py") if p.name != "__init__.py")
BENCHMARKS = sorted(p.name for p in (ROOT / "benchmarks").glob("*.py") if "__main__" in p.read_text(encoding="utf-8"))
# (script, arguments before --help): evaluate.py --compare has a parser of its own.
ENTRY_POINTS = [(f"experiments/{s}", ()) for s in EXPERIMENTS] + [(f"benchmarks/{s}", ()) for s in BENCHMARKS] \
    + [("experiments/evaluate.py", ("--compare", "A", "B"))]
NOT_NUMBERS = {"benchmarks/profile_episode.py"}  # a cProfile report (text, --out), not a table of numbers

# Runs in the child: installs the import barrier, records every parser that prints help, runs each script.
RUNNER = r'''
import argparse, contextlib, io, json, runpy, sys
allowed = set(json.loads(sys.argv[1])) | set(sys.stdlib_module_names) | {m.split(".")[0] for m in sys.modules}

class BaseInstallOnly:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] not in allowed:
            raise ModuleNotFoundError(f"No module named {name!r} (not in the base install)", name=name)
        return None

sys.meta_path.insert(0, BaseInstallOnly())
flags = []
print_help = argparse.ArgumentParser.print_help

def recording_print_help(self, file=None):
    shows_defaults = issubclass(self.formatter_class, argparse.ArgumentDefaultsHelpFormatter)
    for action in self._actions:
        if not isinstance(action, argparse._HelpAction):
            flags.append({"options": action.option_strings, "help": action.help or "", "required": action.required,
                          "shown_default": shows_defaults and action.default is not argparse.SUPPRESS})
    print_help(self, file)

argparse.ArgumentParser.print_help = recording_print_help
results = []
for script, before in json.loads(sys.argv[2]):
    flags, out = [], io.StringIO()
    sys.argv = [script, *before, "--help"]
    try:
        with contextlib.redirect_stdout(out):
            runpy.run_path(script, run_name="__main__")
        code = "returned without exiting"
    except SystemExit as stop:
        code = stop.code
    except BaseException as error:
        code = f"{type(error).__name__}: {error}"
    results.append({"code": code, "stdout": out.getvalue(), "flags": flags})
print(json.dumps(results))
'''


def base_install_modules() -> list[str]:
    """Top-level module names of the base install: the project's dependencies without extras, recursively."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10: the installed metadata holds the same list
        requirements = [r for r in metadata.requires("atommem") or [] if "extra ==" not in r]
    else:
        requirements = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["dependencies"]
    names = {canonical(r) for r in requirements}
    pending = list(names)
    while pending:
        for requirement in metadata.requires(pending.pop()) or []:
            name = canonical(requirement)
            if "extra ==" not in requirement and name not in names:
                names.add(name)
                pending.append(name)
    modules = [module for module, dists in metadata.packages_distributions().items()
               if any(canonical(d) in names for d in dists)]
    return sorted({*modules, *OUR_PACKAGES})


def canonical(requirement: str) -> str:
    """The distribution name of a requirement string, normalized (PEP 503)."""
    name = re.match(r"[A-Za-z0-9._-]+", requirement)
    assert name is not None, requirement
    return re.sub(r"[-_.]+", "-", name.group(0)).lower()


@pytest.fixture(scope="module")
def helps() -> dict[tuple[str, tuple[str, ...]], dict]:
    """Every entry point's ``--help``, run once in one child interpreter limited to the base install."""
    allowed = base_install_modules()
    assert "gymnasium" in allowed and "numpy" in allowed and "torch" not in allowed and "tqdm" not in allowed
    done = subprocess.run([sys.executable, "-c", RUNNER, json.dumps(allowed), json.dumps(ENTRY_POINTS)],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return dict(zip(ENTRY_POINTS, json.loads(done.stdout.splitlines()[-1]), strict=True))


def test_the_barrier_refuses_what_the_base_install_lacks(tmp_path):
    """The child really fails on a heavy import (the barrier is no no-op), and lets the base install through."""
    script = tmp_path / "needs_torch.py"
    script.write_text("import argparse\nimport gymnasium\nimport torch\nargparse.ArgumentParser().parse_args()\n")
    done = subprocess.run([sys.executable, "-c", RUNNER, json.dumps(base_install_modules()),
                           json.dumps([[str(script), []]])], cwd=ROOT, capture_output=True, text=True, timeout=120)
    (result,) = json.loads(done.stdout.splitlines()[-1])
    assert result["code"] == "ModuleNotFoundError: No module named 'torch' (not in the base install)"


@pytest.mark.parametrize("entry", ENTRY_POINTS, ids=[" ".join((s, *b)) for s, b in ENTRY_POINTS])
def test_help_works_with_the_base_install_and_shows_every_flags_default(helps, entry):
    script, _ = entry
    result = helps[entry]
    assert result["code"] == 0, result["code"]
    assert result["stdout"].startswith("usage:") and result["flags"]
    first_line = (ROOT / script).read_text(encoding="utf-8").split('"""')[1].strip().splitlines()[0]
    assert first_line in result["stdout"] or entry[1], "the docstring is the description"
    undocumented = [f["options"] for f in result["flags"] if not f["help"].strip()]
    no_default = [f["options"] for f in result["flags"] if f["options"] and not f["required"]
                  and not f["shown_default"] and "(default: " not in f["help"]]
    assert undocumented == [] and no_default == []
    options = {o for f in result["flags"] for o in f["options"]}
    assert "--data" not in options, "a data folder is --data-dir"


@pytest.mark.parametrize("script", [f"benchmarks/{s}" for s in BENCHMARKS])
def test_every_benchmark_writes_json(helps, script):
    options = {o for f in helps[(script, ())]["flags"] for o in f["options"]}
    assert ("--json" in options) != (script in NOT_NUMBERS)
