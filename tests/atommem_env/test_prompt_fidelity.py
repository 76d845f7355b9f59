"""The paper's prompts, pinned byte for byte (FIDELITY.md §1.3: "add a hash test against the reference").

Each prompt is pinned by the SHA-256 of its *canonical text*: the template as the model sees it, with
every slot shown as ``{slot}`` under the reference's own slot names (so ``\\boxed{{}}`` appears as
``\\boxed{}``, as in every rendered message). Our side renders it through :mod:`atommem_env.prompts` with
those slot names as values; the reference side formats the reference's constant the same way. A refactor
that drifts one byte, a typo fixed, a trailing space dropped, fails :func:`test_our_prompts_match_their_pins`.

:func:`test_the_reference_mirrors_hash_the_same` reads the reference repositories' files from local git
mirrors (``$ATOMMEM_REFERENCE_MIRRORS``, default ``/work/.mirror``, laid out ``owner+name/repo``) at the
commits named below and checks that they hash the same; it is skipped where a mirror is absent, so CI
without them still passes.
"""

from __future__ import annotations

import ast
import hashlib
import os
import string
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from atommem_env import prompts
from atommem_env.prompts import PromptView

ATOMMEM = "RUCBM/AtomMem"
ATOMMEM_HEAD = "7b50580830f19d748d658b15c2e2b80e3b16c76c"  # HEAD when the suite was audited (FIDELITY.md)
ATOMMEM_BASELINES = "e5a9b3d613b8c1b90f1c42d69436a3062a67ad1b"  # still has the MemAgent baseline and ablations
MEMAGENT = "BytedTsinghua-SIA/MemAgent"
MEMAGENT_HEAD = "76b7a658988e4ea53d7388a62de6c0ce79084146"
ATOMMEM_IMPL = "AtomMem/recurrent/impls/memory_long_short_multiquery.py"
ATOMMEM_BASELINE_IMPL = "AtomMem/recurrent/impls/memory_multiquery.py"
MEMAGENT_IMPL = "recurrent/impls/memory.py"


@dataclass(frozen=True)
class Source:
    """Where a pinned text lives in a reference repository: names assigned there, concatenated."""

    repo: str
    commit: str
    path: str
    names: tuple[str, ...]
    formatted: bool = True  # the reference calls .format on it (the system prompt is sent as it is)


# name: (SHA-256 of the canonical text, where the reference has it)
PINS: dict[str, tuple[str, Source]] = {
    "system": (
        "53383fc7be4aed3f1809277be8ca889ac012791cc5da3a2fad51ff2f629238cc",
        Source(ATOMMEM, ATOMMEM_HEAD, ATOMMEM_IMPL, ("SYSTEM_PROMPT",), formatted=False),
    ),
    "reading": (
        "6215cbbc175ea84c0e9646473230df364cf6e019cd3ef268c5c04d53a74f9896",
        Source(ATOMMEM, ATOMMEM_HEAD, ATOMMEM_IMPL, ("TEMPLATE_MEMORY", "STRATEGY_INJECTION_1")),
    ),
    "reading_memory": (
        "a96c87bb24322712eb46bfe1a1a56cfe24c808edae0d8c0267c61e47e8d9fb82",
        Source(ATOMMEM, ATOMMEM_HEAD, ATOMMEM_IMPL, ("TEMPLATE_MEMORY",)),
    ),
    "strategy_injection": (
        "12ac3cec615cdd144f94f5d81c126bdc43e9e6c4fe9c531eb75844d1275aae4a",
        Source(ATOMMEM, ATOMMEM_HEAD, ATOMMEM_IMPL, ("STRATEGY_INJECTION_1",)),
    ),
    "answering": (
        "ee81e76c43a8dbefb18bde3966a63ec051f432b172ac4105330ef8797d18dc86",
        Source(ATOMMEM, ATOMMEM_HEAD, ATOMMEM_IMPL, ("TEMPLATE_FINAL_BOXED",)),
    ),
    "default_query": (
        "d2ab2ff75799692204b6aea2bba22e254dadadde4d04e2908c2cef7e8812a530",
        Source(ATOMMEM, ATOMMEM_HEAD, ATOMMEM_IMPL, ("query",), formatted=False),
    ),
    "no_memory": (
        "1dd86650b232de2f2d2cb11bab363c49d658e706f1accecb39f7b3e7c1272608",
        Source(ATOMMEM, ATOMMEM_HEAD, ATOMMEM_IMPL, ("NO_MEMORY_TOKENS",), formatted=False),
    ),
    "memagent_reading": (
        "49fa58187bb7d23e58b08ed1a15732c71008196a1f633be2b4a3be507ee366b3",
        Source(MEMAGENT, MEMAGENT_HEAD, MEMAGENT_IMPL, ("TEMPLATE",)),
    ),
    "memagent_answering": (
        "64632c4a5ae63b70e018366632a44d6a4ac7cb62cef4f977bf8afa30eb0a6622",
        Source(MEMAGENT, MEMAGENT_HEAD, MEMAGENT_IMPL, ("TEMPLATE_FINAL_BOXED",)),
    ),
    "memagent_no_memory": (
        "1dd86650b232de2f2d2cb11bab363c49d658e706f1accecb39f7b3e7c1272608",
        Source(MEMAGENT, MEMAGENT_HEAD, MEMAGENT_IMPL, ("NO_MEMORY_TOKENS",), formatted=False),
    ),
    "atommem_paper_memagent_reading": (
        "49fa58187bb7d23e58b08ed1a15732c71008196a1f633be2b4a3be507ee366b3",
        Source(ATOMMEM, ATOMMEM_BASELINES, ATOMMEM_BASELINE_IMPL, ("TEMPLATE",)),
    ),
    "atommem_paper_memagent_answering": (
        "a25a14d6c49753390a76f31ef9dfc5bf40980e5db29955d9fd2a1063adf59736",
        Source(ATOMMEM, ATOMMEM_BASELINES, ATOMMEM_BASELINE_IMPL, ("TEMPLATE_FINAL_BOXED",)),
    ),
}

# A memory list is rendered by code, not by a template: show one entry, then put the slot name back.
_ENTRY = "\x00entry\x00"


def _view() -> PromptView:
    return PromptView(scratchpad="{short_memory}", query="{query}", memories=[_ENTRY],
                      reads="{query_times}", max_reads=3)  # type: ignore[arg-type]  # a slot name, not a count


def _slot(text: str) -> str:
    return text.replace(prompts.render_memory_list([_ENTRY]), "{long_memory}")


def ours() -> dict[str, str]:
    """The canonical text of every pinned prompt, rendered by :mod:`atommem_env.prompts`."""
    reading = _slot(prompts.render_reading(["{prompt}"], "{chunk}", _view()))
    split = reading.index("\nImportant:\n")  # where the reference's STRATEGY_INJECTION_1 begins
    return {
        "system": prompts.render_system(),
        "reading": reading,
        "reading_memory": reading[:split],
        "strategy_injection": reading[split:],
        "answering": _slot(prompts.render_answering("{prompt}", _view())),
        "default_query": prompts.DEFAULT_QUERY,
        "no_memory": prompts.NO_MEMORY,
        "memagent_reading": prompts.render_memagent_reading(["{prompt}"], "{chunk}", "{memory}"),
        "memagent_answering": prompts.render_memagent_answering("{prompt}", "{memory}", "memagent"),
        "memagent_no_memory": prompts.render_memagent_answering("{prompt}", "").split("<memory>\n")[1]
                                                                             .split("\n</memory>")[0],
        "atommem_paper_memagent_reading": prompts.render_memagent_reading(["{prompt}"], "{chunk}", "{memory}"),
        "atommem_paper_memagent_answering": prompts.render_memagent_answering("{prompt}", "{memory}",
                                                                              "atommem-paper"),
    }


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def test_every_pin_has_a_rendering():
    assert set(ours()) == set(PINS)


@pytest.mark.parametrize("name", sorted(PINS))
def test_our_prompts_match_their_pins(name):
    digest, source = PINS[name]
    assert sha256(ours()[name]) == digest, (
        f"prompt {name!r} drifted from {source.repo}@{source.commit[:7]}:{source.path} {'+'.join(source.names)}")


def test_the_papers_memagent_answer_adds_exactly_one_sentence():
    paper, own = ours()["atommem_paper_memagent_answering"], ours()["memagent_answering"]
    assert paper.replace(" Output the answer only as an exact match\u2014do not add any description.", "", 1) == own


# ------------------------------------------------------------------------ the reference mirrors
def mirror(repo: str) -> Path:
    root = Path(os.environ.get("ATOMMEM_REFERENCE_MIRRORS", "/work/.mirror"))
    return root / repo.replace("/", "+") / "repo"


def reference_file(source: Source) -> str:
    """The file at the pinned commit, or a skip when the mirror (or that commit) is not here."""
    folder = mirror(source.repo)
    if not folder.is_dir():
        pytest.skip(f"no local mirror of {source.repo} at {folder} (set ATOMMEM_REFERENCE_MIRRORS)")
    try:
        shown = subprocess.run(["git", "-C", str(folder), "show", f"{source.commit}:{source.path}"],
                               capture_output=True, check=False)
    except FileNotFoundError:
        pytest.skip("git is not installed")
    if shown.returncode != 0:
        pytest.skip(f"the mirror of {source.repo} lacks {source.commit[:7]}:{source.path}")
    return shown.stdout.decode("utf-8")


def assigned_string(module: str, name: str) -> str:
    """The first string assigned to ``name`` (a variable or ``self.name``) in ``module``'s source.

    Also reads the string inside ``["..."] * n`` (the reference's batch of default queries) and inside a
    call such as ``tokenizer.encode("...")`` (MemAgent's pre-tokenized "No previous memory").
    """
    found = []
    for node in ast.walk(ast.parse(module)):
        if not isinstance(node, ast.Assign):
            continue
        if not any(getattr(t, "id", getattr(t, "attr", None)) == name for t in node.targets):
            continue
        value = node.value
        if isinstance(value, ast.BinOp) and isinstance(value.left, ast.List) and len(value.left.elts) == 1:
            value = value.left.elts[0]
        elif isinstance(value, ast.Call) and value.args:
            value = value.args[0]
        if isinstance(value, ast.Constant) and isinstance(value.value, str):
            found.append((node.lineno, value.value))
    assert found, f"no string assigned to {name}"
    return min(found)[1]


def canonical(template: str, formatted: bool) -> str:
    """The template as the model sees it, each slot shown as ``{slot}``."""
    if not formatted:
        return template
    slots = {field for _, field, _, _ in string.Formatter().parse(template) if field}
    return template.format(**{slot: "{" + slot + "}" for slot in slots})


@pytest.mark.parametrize("name", sorted(PINS))
def test_the_reference_mirrors_hash_the_same(name):
    digest, source = PINS[name]
    module = reference_file(source)
    text = "".join(canonical(assigned_string(module, n), source.formatted) for n in source.names)
    assert sha256(text) == digest, f"{source.repo}@{source.commit[:7]}:{source.path} {name} does not hash as pinned"
    assert ours()[name] == text
