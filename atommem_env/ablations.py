"""The paper's ablations: the reference's named files, reproduced, and when a clean switch advances.

Two kinds of ablation live side by side (README, "Rules and options"):

* **Reference ablations**, ``ablation="<name>"``: each reproduces one file of the reference's
  ``AtomMem/recurrent/impls/ablation_impls/`` (RUCBM/AtomMem at e5a9b3d) as a diff from its main
  agent, ``memory_long_short_multiquery.py``, and is layered on whichever protocol is in play (with
  ``protocol="reference"`` the episode is the reference file's; with ours, our fixes still apply). What
  those files do, and so what these do: the prompt text is unchanged (no note in the system message,
  every section header stays; a removed memory's slot is filled with ``""``); a disabled tag is a
  silent no-op (no feedback, no error; ``info["ops"]`` records it as ``ignored``); and several change
  the retrieval depth k as well, a confound the paper's ablation numbers carry.
* **Clean switches** (``show_scratchpad``, ``show_retrieval``, ``enable_update``, ``enable_delete``,
  ``freeze_scratchpad``, ``store_everything``, ``top_k``): ours. They hide a section with its header, say
  so in the system message, refuse disabled tags with feedback, and keep k unless ``top_k`` is set.

:func:`advance_rule` says what makes the chunk advance under the clean switches: with the store hidden,
Create and Update are unavailable, so the write that moves on is the scratchpad write, or a Create/Update
the agent still sends (refused with feedback, it keeps its meaning of "done with this chunk"); with no
write left at all, every turn moves on. Otherwise ``show_retrieval=False`` could never leave chunk 0.
"""

from __future__ import annotations

from dataclasses import dataclass

from atommem_env import actions as A
from atommem_env.errors import ConfigError

REFERENCE_DIR = "AtomMem/recurrent/impls/ablation_impls/"


@dataclass(frozen=True)
class Ablation:
    """One reference ablation file as the rules it changes.

    Attributes:
        name: the ``ablation=`` value.
        reference_file: the file it reproduces, under :data:`REFERENCE_DIR`.
        blank_scratchpad: the scratchpad slot of both prompts is ``""`` (the header stays); writes
            still run (they reset the read counter) but are never shown.
        blank_retrieval: nothing is retrieved: the memory slot of both prompts is ``""`` (not "No
            previous memory"; the query and its header stay) and no rank resolves, so Update and Delete
            never find an entry. Create still stores (unseen) and still advances.
        ignored: tags executed as silent no-ops: no effect, no read-counter reset, no feedback.
        ignored_advance: ignored tags that still move to the next chunk (alladd's ``add_memory``).
        reading_k, answering_k: entries retrieved in each phase (``None``: the config's ``top_k``, 6
            by default, as in the main agent).
        add_chunk_documents: every reading turn, before the response runs, every ``Document i:``
            piece of the shown chunk (overlap included, re-reads too) is stored as an entry.
    """

    name: str
    reference_file: str
    blank_scratchpad: bool = False
    blank_retrieval: bool = False
    ignored: frozenset[str] = frozenset()
    ignored_advance: frozenset[str] = frozenset()
    reading_k: int | None = None
    answering_k: int | None = None
    add_chunk_documents: bool = False

    def top_k(self, reading: bool, default: int) -> int:
        """The retrieval depth of a prompt of this phase (``default``, the config's ``top_k``, if unset)."""
        k = self.reading_k if reading else self.answering_k
        return default if k is None else k


def _file(stem: str) -> str:
    return f"memory_long_short_{stem}.py"


NONE = Ablation("none", "")  # the main agent: nothing changed
ABLATIONS: dict[str, Ablation] = {a.name: a for a in (
    Ablation("no_scratchpad", _file("disable_STM"), blank_scratchpad=True),
    Ablation("no_store", _file("disable_LTM"), blank_retrieval=True),
    Ablation("no_both", _file("disable_Both"), blank_scratchpad=True, blank_retrieval=True),
    # disable_update.py and disable_delete.py also raise k from 6 to 12 in both phases.
    Ablation("no_scratchpad_update", _file("disable_update"), ignored=frozenset({A.UPDATE_MEMORY}),
             reading_k=12, answering_k=12),
    Ablation("no_delete", _file("disable_delete"), ignored=frozenset({A.DELETE_MEMORY}),
             reading_k=12, answering_k=12),
    Ablation("k3", _file("k3"), reading_k=3, answering_k=3),
    # k12.py changed k in the answering prompt to 12 but in the reading prompt to 3 (a reference slip).
    Ablation("k12", _file("k12"), reading_k=3, answering_k=12),
    Ablation("store_everything", _file("alladd"), ignored=frozenset({A.ADD_MEMORY}),
             ignored_advance=frozenset({A.ADD_MEMORY}), reading_k=12, answering_k=12,
             add_chunk_documents=True),
)}


def resolve_ablation(value: str | Ablation | None) -> Ablation:
    """An :class:`Ablation` from its name, itself, or None (no ablation)."""
    if value is None:
        return NONE
    if isinstance(value, Ablation):
        return value
    if isinstance(value, str) and value in ABLATIONS:
        return ABLATIONS[value]
    raise ConfigError(f"ablation={value!r} is unknown; use None or one of {sorted(ABLATIONS)}.")


# ------------------------------------------------------------------------------- clean switches
ADVANCE_ON_STORE_WRITE = "store_write"  # a Create or Update (the paper's rule)
ADVANCE_ON_SCRATCHPAD_WRITE = "scratchpad_write"  # store hidden: a scratchpad write, a refused Create/Update
ADVANCE_ALWAYS = "always"  # no write is available (or advance="always")


def advance_rule(advance: str, show_scratchpad: bool, show_retrieval: bool, freeze_scratchpad: bool) -> str:
    """What makes the chunk advance under these clean switches (``EnvConfig.advance_rule`` asks this).

    The paper's rule ties advancing to a store write because a Read must cost a turn: a response with
    only a query re-reads the chunk. With the store hidden there is no Create or Update to make, so the
    rule keeps its meaning with the one write left, the scratchpad's, and with a Create/Update that a
    model trained on the paper's protocol still sends to move on (refused, with feedback); a turn with
    only a query still re-reads.
    """
    if advance == "always":
        return ADVANCE_ALWAYS
    if show_retrieval:
        return ADVANCE_ON_STORE_WRITE
    if show_scratchpad and not freeze_scratchpad:
        return ADVANCE_ON_SCRATCHPAD_WRITE
    return ADVANCE_ALWAYS
