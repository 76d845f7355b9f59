"""Names for the integer fields of an observation, shared by the envs and the policies that read them.

``observation["phase"]`` is a :class:`Phase`, and ``observation["progress"]`` an int64 array indexed by
:class:`Progress`::

    if obs["phase"] == Phase.READING:
        chunk, chunks = obs["progress"][Progress.CHUNK], obs["progress"][Progress.CHUNKS]

Both are ``IntEnum`` s, so they compare equal to the plain integers the observation holds and index a
numpy array directly; the observation itself keeps plain ``int`` / ``int64`` values.
"""

from __future__ import annotations

from enum import IntEnum


class Phase(IntEnum):
    """``observation["phase"]``: what the current turn is for."""

    READING = 0  # a chunk of the context is shown; answers are refused
    ANSWERING = 1  # one question is shown; also the value after the episode ended


class Progress(IntEnum):
    """Positions in ``observation["progress"]`` (the same counts ``info`` reports by name)."""

    CHUNK = 0  # index of the chunk being read (equals CHUNKS once reading is over)
    CHUNKS = 1  # number of chunks in the episode's context
    QUESTION = 2  # index of the question being answered
    QUESTIONS = 3  # number of questions in the episode
    READS = 4  # consecutive reads (reading) or reads of the current question (answering)
    TURN = 5  # turns taken so far in the episode
