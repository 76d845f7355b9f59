"""Every deviation measured: one policy on identical episodes under the reference protocol, under ours,
and with each of our fixes switched on alone.

The library behind ``experiments/fidelity.py``. A *variant* is a :class:`~atommem_env.protocol.Protocol`:

* ``reference`` (:data:`~atommem_env.protocol.REFERENCE`) and ``atommem`` (:data:`~atommem_env.protocol.ATOMMEM`);
* ``reference+RULE`` (direction ``fix``): the reference with one rule set to ours, compared against
  ``reference``; its difference is what that one fix changes;
* ``atommem-RULE`` (direction ``quirk``): ours with one rule set to the reference's, compared against
  ``atommem``.

Every variant plays episode ``i`` of an env id (pinned index, reset seed ``seed + i``), so the questions
are identical and the comparisons are paired: a bootstrap that resamples whole episodes for the
difference, and an exact McNemar test on per-question correctness.

**Replaying.** The scoring rules (:data:`~atommem_env.protocol.SCORING_RULES`) change only how the final
answers are scored: the env's observations and transitions never read them. A variant that differs
from its baseline in a scoring rule only is therefore measured by *replaying the baseline's recorded
responses* through an env built with the variant (no policy call): the same actions, scored by the
variant's rules. That is exact for every policy, deterministic or not, and about ten times cheaper
than playing the heuristic again. Each replayed step is checked against the record (the same prompt,
the same operations, the same end of episode), so a replay that diverges stops with a
:class:`RunError`. Every other rule changes what the policy sees or what its actions do, so those
variants are played, with one exact shortcut for a policy whose ``deterministic`` attribute is true
(its response is a function of the observation alone, as for the scripted baselines and a
greedy :class:`~agents.hf_policy.TransformersPolicy` that decodes one prompt at a time): each episode is
first replayed through the variant's env and the baseline's side by side, and if the variant shows
exactly the baseline's observation at every turn, the policy would have given the recorded responses,
so the replay *is* the played episode; an episode whose observations differ anywhere is played.
The ``measured`` column says which: ``re-scored``, or ``played k/N`` (the other episodes replayed).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from agents.registry import parse_spec
from agents.training.cli import arg, json_object
from agents.training.envs import EnvSpec
from agents.training.errors import RunError
from agents.training.evaluation import PRESETS, append_lines, build_policy, load_trajectories, prepare_policy
from agents.training.metrics import confidence_intervals, summarize
from agents.training.progress import ProgressFactory, no_progress
from agents.training.rollout import Trajectory, Turn, rollout
from agents.training.stats import DEFAULT_RESAMPLES, MIN_RESAMPLES, WEIGHTINGS, mcnemar_by_episode, paired_change
from atommem_env import protocol_rules, registered_ids
from atommem_env.credentials import redact
from atommem_env.errors import ConfigError, DataError
from atommem_env.info import as_step_info
from atommem_env.protocol import ATOMMEM, REFERENCE, RULES, SCORING_RULES, Protocol, differing_rules, with_rules

DIRECTIONS = ("fix", "quirk")
PRESET_CHOICES = ("paper", "memagent", "synthetic")  # evaluation's presets (their ids only)
# Options that would override a protocol rule (and so hide it): the protocol sets them here.
RULE_OPTIONS = ("protocol", "max_turns", "shuffle")
RESULT_KEYS = ("answers", "golds", "skipped", "em", "f1", "substring_em", "reward")
CSV_COLUMNS = (
    "env_id", "policy", "variant", "rule", "baseline", "measured", "episodes", "questions",
    "em", "em_lo", "em_hi", "episode_em", "episode_em_lo", "episode_em_hi", "f1", "f1_lo", "f1_hi",
    "reward", "turns", "invalid_per_turn", "truncated",
    "em_diff", "em_diff_lo", "em_diff_hi", "episode_em_diff", "episode_em_diff_lo", "episode_em_diff_hi",
    "f1_diff", "f1_diff_lo", "f1_diff_hi", "baseline_only", "variant_only", "mcnemar_p",
)


@dataclass
class FidelityArgs:
    """Command-line arguments of ``experiments/fidelity.py`` (each field is a ``--flag``)."""

    env_ids: list[str] = arg(["AtomMem-HotpotQA-200-v0"], "env ids to measure")
    preset: str | None = arg(None, "paper (memagent): the nine HotpotQA / 2Wiki / MuSiQue x 200 / 400 / 800 "
                                   "AtomMem (MemAgent) ids")
    policy: str = arg("heuristic", "a baseline, a diagnostic (oracle, always-yes), a model spec, or your own: "
                      "path/to/file.py:NAME or module:NAME")
    policy_kwargs: str = arg("{}", "JSON object of policy options")
    episodes: int = arg(1000, "episodes per env id (a cap: an id has as many as its source)")
    seed: int = arg(0, "episode i is reset with seed + i")
    batch_size: int = arg(8, "envs stepped together")
    data_dir: str | None = arg(None, "benchmark data folder")
    env_kwargs: str = arg("{}", "JSON object of env options (not protocol, max_turns or shuffle)")
    out_dir: str = arg("runs/fidelity", "where fidelity.md, fidelity.csv and trajectories/ go; rerun to continue")
    rules: list[str] = arg([], "rules to switch one at a time (default: every rule where the protocols differ)")
    directions: list[str] = arg(["fix"], "fix: reference + one of our rules; quirk: ours + one reference rule")
    no_breakdown: bool = arg(False, "only the reference and atommem protocols, no per-rule variants")
    resamples: int = arg(DEFAULT_RESAMPLES, "bootstrap resamples (of episodes) for the intervals")

    def validate(self) -> None:
        """Check the flags and expand ``--preset``.

        Raises:
            ConfigError: a flag cannot work (the message names it and the fix).
        """
        if self.preset is not None:
            if self.preset not in PRESET_CHOICES:
                raise ConfigError(f"--preset {self.preset!r} is unknown here; use one of {list(PRESET_CHOICES)}.")
            self.env_ids = list(PRESETS[self.preset])
        known = set(registered_ids())
        for env_id in self.env_ids:
            if env_id not in known:
                raise ConfigError(f"--env-ids {env_id!r} is not a registered id; e.g. AtomMem-HotpotQA-200-v0.")
        try:
            parse_spec(self.policy)
        except ConfigError as error:
            raise ConfigError(f"--policy: {redact(str(error))}") from None
        json_object("--policy-kwargs", self.policy_kwargs, '{"temperature": 0}')
        clash = sorted(set(json_object("--env-kwargs", self.env_kwargs, '{"top_k": 3}')) & set(RULE_OPTIONS))
        if clash:
            raise ConfigError(f"--env-kwargs sets {clash}, which would override the protocol rules being measured; "
                              "leave them out.")
        if self.episodes < 1 or self.batch_size < 1:
            raise ConfigError("--episodes and --batch-size must be at least 1.")
        if self.resamples < MIN_RESAMPLES:
            raise ConfigError(f"--resamples must be at least {MIN_RESAMPLES} (default {DEFAULT_RESAMPLES}).")
        bad = [d for d in self.directions if d not in DIRECTIONS]
        if bad or not self.directions:
            raise ConfigError(f"--directions {bad or self.directions}: choose from {list(DIRECTIONS)}.")
        build_variants(self.rules, self.directions, breakdown=not self.no_breakdown)  # checks --rules


@dataclass(frozen=True)
class Variant:
    """One protocol to measure.

    Attributes:
        name: ``reference``, ``atommem``, ``reference+RULE`` or ``atommem-RULE``.
        protocol: its rules.
        rule: the one rule it changes against ``baseline`` (None for the two protocols).
        baseline: the variant it is compared with (None for ``reference``).
        replays: the variant whose recorded responses it re-scores (None: played by the policy).
    """

    name: str
    protocol: Protocol
    rule: str | None = None
    baseline: str | None = None
    replays: str | None = None


def build_variants(rules: Sequence[str] = (), directions: Sequence[str] = ("fix",), *,
                   breakdown: bool = True) -> list[Variant]:
    """The variants in the order they are run (each after the variant it replays).

    Args:
        rules: the rules to switch one at a time; empty for every rule where REFERENCE and ATOMMEM differ.
        directions: ``"fix"`` (reference + one of our rules) and/or ``"quirk"`` (ours + one reference rule).
        breakdown: False for only ``reference`` and ``atommem``.

    Raises:
        ConfigError: an unknown rule, a rule on which the two protocols agree, or an unknown direction.
    """
    differing = differing_rules(REFERENCE, ATOMMEM)
    unknown = [r for r in rules if r not in RULES]
    if unknown:
        raise ConfigError(f"--rules {unknown}: unknown; the rules are {list(RULES)}.")
    same = [r for r in rules if r not in differing]
    if same:
        raise ConfigError(f"--rules {same}: the reference and atommem protocols agree on it; "
                          f"choose from {list(differing)}.")
    variants = [Variant("reference", REFERENCE), Variant("atommem", ATOMMEM, baseline="reference")]
    if not breakdown:
        return variants
    ends = {"fix": ("reference", REFERENCE, ATOMMEM, "+"), "quirk": ("atommem", ATOMMEM, REFERENCE, "-")}
    for direction in directions:
        if direction not in ends:
            raise ConfigError(f"direction {direction!r} is unknown; choose from {list(DIRECTIONS)}.")
        base_name, base, source, sign = ends[direction]
        for rule in rules or differing:
            name = f"{base_name}{sign}{rule}"
            variants.append(Variant(name, with_rules(base, source, [rule], name=name), rule, base_name,
                                    base_name if rule in SCORING_RULES else None))
    return variants


def replay(env: Any, recorded: Sequence[Trajectory]) -> list[Trajectory]:
    """The recorded responses stepped again through ``env`` (reset to each episode): same actions, its rules.

    Raises:
        RunError: a replayed turn showed another prompt or did other operations than recorded, or the
            episode ended at another turn (the env's dynamics differ from the recording's, so the policy
            could have acted otherwise and re-scoring would not be exact).
    """
    return [t for rec in recorded if (t := _replay_one(env, rec)) is not None]


def replay_if_unchanged(env: Any, base_env: Any, rec: Trajectory) -> list[Trajectory]:
    """``[rec replayed through env]`` if ``env`` shows exactly the observations ``base_env`` shows at
    every turn (both reset to its episode, both given its responses); else ``[]`` (play it).

    For a policy that answers each observation deterministically, an unchanged observation sequence
    means its responses are the recorded ones, so the replay is exactly the episode it would play.
    """
    traj = _replay_one(env, rec, base_env)
    return [] if traj is None else [traj]


def _replay_one(env: Any, rec: Trajectory, base_env: Any = None) -> Trajectory | None:
    obs, info = env.reset(seed=rec.seed, options={"index": rec.index})
    base_obs = base_env.reset(seed=rec.seed, options={"index": rec.index})[0] if base_env is not None else None
    traj = Trajectory(rec.env_id, rec.seed, info["episode_id"], info["index"], obs["system"], version=rec.version,
                      tools=list(obs.get("tools", ())))
    for k, old in enumerate(rec.turns):
        if base_obs is not None and not _same_observation(obs, base_obs):
            return None
        next_obs, reward, terminated, truncated, raw = env.step(old.action)
        step = as_step_info(raw)
        if base_env is not None:
            base_obs, _, base_terminated, base_truncated, _ = base_env.step(old.action)
            if (terminated or truncated) != (base_terminated or base_truncated):
                return None  # one goes on where the other ended: the next response is unknown
        elif obs["user"] != old.user or step["ops"] != old.ops \
                or (terminated or truncated) != (k == len(rec.turns) - 1):
            raise RunError(f"{rec.env_id} episode {rec.index}: replaying turn {k} diverged from the record "
                           "(another prompt, other operations or another end); re-scoring would not be exact.")
        traj.turns.append(Turn(obs["user"], old.response, step["ops"], step["errors"], step["op_counts"],
                               step["memory_size"], step["phase"], old.prompt_ids, old.response_ids, old.logprobs,
                               old.tool_calls))
        obs = next_obs
        if terminated or truncated:
            traj.reward, traj.terminated, traj.truncated = float(reward), terminated, truncated
            traj.result = {key: raw[key] for key in RESULT_KEYS}
    return traj


def _same_observation(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return a.keys() == b.keys() and all(
        np.array_equal(a[k], b[k]) if isinstance(a[k], np.ndarray) else a[k] == b[k] for k in a)


def run_fidelity(args: FidelityArgs, progress: ProgressFactory = no_progress) -> list[dict[str, Any]]:
    """Play (or re-score) every variant on every env id, write the tables, return their rows.

    Trajectories go to ``out_dir/trajectories/<env id>/<variant>.jsonl``, a line per episode as
    batches finish; a rerun with the same flags keeps the episodes already there and plays the rest.
    An id gets no variant for a rule its env does not read (:func:`atommem_env.protocol_rules`: the
    MemAgent ids ignore the rules about the store, the action tags and feedback).

    Raises:
        ConfigError: the policy cannot be built.
        RunError: ``out_dir`` holds episodes of other flags (policy, env options, seed), or a replay diverged.
        DataError: a trajectory file is damaged, or two variants' episodes hold different questions.
    """
    out = Path(args.out_dir)
    policy = build_policy(args.policy, args.policy_kwargs)
    user_options = json_object("--env-kwargs", args.env_kwargs, '{"top_k": 3}')
    variants = build_variants(args.rules, args.directions, breakdown=not args.no_breakdown)
    shortcut = bool(getattr(policy, "deterministic", False))
    rows = []
    for env_id in args.env_ids:
        base_spec = EnvSpec(env_id, user_options, args.data_dir)
        count = min(args.episodes, base_spec.episode_count())
        prepare_policy(policy, base_spec, count)
        played: dict[str, list[Trajectory]] = {}
        read = protocol_rules(env_id)  # a rule the env ignores (MemAgent: the store's) would change nothing
        for variant in [v for v in variants if v.rule is None or v.rule in read]:
            spec = EnvSpec(env_id, {**user_options, "protocol": variant.protocol}, args.data_dir)
            path = out / "trajectories" / env_id / f"{variant.name}.jsonl"
            record = {"policy": policy.name, "variant": variant.name, "env_options": user_options,
                      "protocol": _rules(variant.protocol)}
            done, how = _stored(path, record, args.seed)
            missing = [i for i in range(count) if i not in done]
            with closing(progress(f"{env_id} {variant.name}", count, count - len(missing))) as bar:
                env = spec.make() if missing and (variant.replays or shortcut and variant.baseline) else None
                base_env = None
                if env is not None and not variant.replays:  # side by side with the baseline's env
                    base_options = {**user_options, "protocol": _protocol(variants, variant.baseline)}
                    base_env = EnvSpec(env_id, base_options, args.data_dir).make()
                for start in range(0, len(missing), args.batch_size):
                    ids = missing[start:start + args.batch_size]
                    batch: list[tuple[Trajectory, str]] = []
                    if variant.replays:  # a scoring rule only: re-score the recorded responses
                        source = {t.index: t for t in played[variant.replays]}
                        batch = [(t, "re-scored") for t in replay(env, [source[i] for i in ids])]
                    elif env is not None and variant.baseline:  # a deterministic policy: skip unchanged episodes
                        source = {t.index: t for t in played[variant.baseline]}
                        batch = [(t, "replayed") for i in ids for t in replay_if_unchanged(env, base_env, source[i])]
                    to_play = [i for i in ids if i not in {t.index for t, _ in batch}]
                    if to_play:
                        batch += [(t, "played") for t in rollout(
                            spec.factory(), policy, [args.seed + i for i in to_play], env_id=env_id,
                            indices=to_play, batch_size=args.batch_size)]
                    for traj, measured in batch:
                        done[traj.index], how[traj.index] = traj, measured
                    append_lines(path, [{**record, "measured": measured, **traj.to_json()} for traj, measured in batch])
                    bar.update(len(batch))
            played[variant.name] = [done[i] for i in range(count)]
            base = played[variant.baseline] if variant.baseline else None
            row = variant_row(env_id, policy.name, variant, played[variant.name], base, args.resamples)
            row["measured"] = _measured(variant, [how[i] for i in range(count)])
            rows.append(row)
    write_tables(rows, out, args)
    return rows


def _rules(protocol: Protocol) -> dict[str, Any]:
    """The rules where ``protocol`` differs from ours, as JSON-ready values."""
    return {r: getattr(protocol, r) for r in differing_rules(ATOMMEM, protocol)}


def _protocol(variants: Sequence[Variant], name: str | None) -> Protocol:
    return next(v.protocol for v in variants if v.name == name)


def _measured(variant: Variant, how: Sequence[str] = ()) -> str:
    """``re-scored (BASE)`` for a scoring rule, else ``played k/N`` (the others replayed unchanged)."""
    if variant.replays:
        return f"re-scored ({variant.replays})"
    return f"played {sum(h == 'played' for h in how)}/{len(how)}" if how else "played"


def _stored(path: Path, record: dict[str, Any], seed: int) -> tuple[dict[int, Trajectory], dict[int, str]]:
    """Episodes already in ``path`` and how each was measured, by index; refuses episodes of other flags."""
    done: dict[int, Trajectory] = {}
    how: dict[int, str] = {}
    for line in load_trajectories(path):
        for key in ("policy", "env_options", "protocol"):
            if line.get(key) != record[key]:
                raise RunError(f"{path} holds episodes with {key} {line.get(key)!r}, not {record[key]!r}; rerun "
                               "with that run's flags or choose another --out-dir.")
        if line["seed"] != seed + line["index"]:
            raise RunError(f"{path} holds episode {line['index']} reset with seed {line['seed']}, not "
                           f"{seed + line['index']}; rerun with that run's --seed or choose another --out-dir.")
        if int(line["index"]) not in done:
            done[int(line["index"])] = Trajectory.from_json(line)
            how[int(line["index"])] = line.get("measured", "played")
    return done, how


def variant_row(env_id: str, policy: str, variant: Variant, trajectories: Sequence[Trajectory],
                baseline: Sequence[Trajectory] | None, resamples: int = DEFAULT_RESAMPLES) -> dict[str, Any]:
    """One table row: the variant's EM and F1 with 95 % intervals, its turns per episode, invalid actions per
    turn (:func:`~agents.training.metrics.summarize`) and share of episodes cut off, and its paired change
    against its baseline.

    Raises:
        DataError: the baseline's episodes hold other questions (not the same episodes).
    """
    summary = summarize(trajectories)
    row: dict[str, Any] = {
        "env_id": env_id, "policy": policy, "variant": variant.name, "rule": variant.rule or "",
        "baseline": variant.baseline or "", "measured": _measured(variant),
        **{k: summary[k] for k in ("episodes", "questions", "em", "episode_em", "f1", "reward", "turns",
                                    "invalid_per_turn", "truncated")},
        **confidence_intervals(trajectories, resamples=resamples),
    }
    if baseline is None:
        return row
    for a, b in zip(baseline, trajectories, strict=True):
        if a.index != b.index or a.result["golds"] != b.result["golds"]:
            raise DataError(f"{env_id} episode {b.index}: {variant.name} and {variant.baseline} hold other "
                            "questions, so they cannot be paired.")
    values = {metric: ([[float(x) for x in t.result[metric]] for t in baseline],
                       [[float(x) for x in t.result[metric]] for t in trajectories]) for metric in ("em", "f1")}
    row.update(paired_change(*values["em"], "em", resamples=resamples))
    row.update(paired_change(*values["f1"], "f1", weightings=WEIGHTINGS[:1], resamples=resamples))  # per question
    test = mcnemar_by_episode(*values["em"])
    row.update(baseline_only=test.a_only, variant_only=test.b_only, mcnemar_p=test.p_value)
    return row


def fidelity_table(rows: Sequence[dict[str, Any]]) -> str:
    """Markdown table of :func:`variant_row` rows: estimates with ``[lo, hi]``, changes with signs."""
    header = ["env id", "variant", "measured", "episodes", "questions", "EM per question [95 % CI]",
              "EM per episode [95 % CI]", "F1 [95 % CI]", "change in EM per question", "change in EM per episode",
              "change in F1", "right only before / after", "McNemar p", "turns", "invalid actions/turn", "truncated"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in rows:
        compared = "em_diff" in r
        cells = [f"`{r['env_id']}`", f"`{r['variant']}`" + (f" vs `{r['baseline']}`" if compared else ""),
                 r["measured"], str(r["episodes"]), str(r["questions"]),
                 _cell(r, "em"), _cell(r, "episode_em"), _cell(r, "f1"),
                 *(_cell(r, f"{k}_diff", "+") if compared else "" for k in ("em", "episode_em", "f1")),
                 f"{r['baseline_only']} / {r['variant_only']}" if compared else "",
                 f"{r['mcnemar_p']:.2g}" if compared else "", f"{r['turns']:.1f}", f"{r['invalid_per_turn']:.3f}",
                 f"{r['truncated']:.2f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _cell(row: dict[str, Any], key: str, sign: str = "") -> str:
    return f"{row[key]:{sign}.3f} [{row[key + '_lo']:{sign}.3f}, {row[key + '_hi']:{sign}.3f}]"


def write_tables(rows: Sequence[dict[str, Any]], out: Path, args: FidelityArgs) -> None:
    """Write ``fidelity.md`` (the table and the flags that made it) and ``fidelity.csv`` into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    flags = redact({k: v for k, v in vars(args).items() if k not in ("out_dir",)})  # no API key in a report
    note = ("Intervals: 95 % bootstrap over episodes (paired for changes), "
            f"{args.resamples} resamples, seed 0. McNemar: exact, two-sided, on questions.")
    text = f"# Fidelity: policy `{args.policy}`\n\nFlags: `{json.dumps(flags)}`\n\n{note}\n\n{fidelity_table(rows)}\n"
    (out / "fidelity.md").write_text(text, encoding="utf-8")
    with open(out / "fidelity.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(CSV_COLUMNS), extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
