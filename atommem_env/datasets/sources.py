"""Where benchmark data comes from, and the per-process cache that parses each file once.

Lookup order (first that applies wins):

1. explicit ``data_files`` (relative paths are taken relative to ``data_dir`` when it is given);
2. explicit ``data_dir`` (a folder with ``hotpotqa/``, ``2wikimultihopqa/``, ``musique/`` subfolders,
   or the files directly inside) -- an explicit argument that finds nothing is an error, never a
   silent fallback;
3. the folder named by the environment variable ``ATOMMEM_DATA_DIR`` (same layout);
4. the Hugging Face hub through ``datasets`` (imported lazily; network needed on first use);
5. otherwise a :class:`DataError` listing every place tried and how to fix it.

Nothing here touches the disk or the network at import time.
"""

from __future__ import annotations

import difflib
import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ConfigError, DataError
from ._records import ParsedFile, read_records
from .corpus import SplitCorpus, make_corpus
from .hotpotqa import parse_hotpotqa
from .musique import parse_musique
from .twowiki import parse_twowiki

ENV_VAR = "ATOMMEM_DATA_DIR"
SPLITS = ("dev", "train")
_SPLIT_ALIASES = {"dev": "dev", "validation": "dev", "val": "dev", "train": "train"}


@dataclass(frozen=True)
class HubSpec:
    """One split on the Hugging Face hub: ``datasets.load_dataset(path, name, data_files=..., split=...)``."""

    path: str
    split: str
    name: str | None = None
    data_files: str | None = None

    def describe(self) -> str:
        """A short human-readable form for messages."""
        args = [repr(self.path)] + ([repr(self.name)] if self.name else [])
        if self.data_files:
            args.append(f"data_files={self.data_files!r}")
        return f"datasets.load_dataset({', '.join(args)}, split={self.split!r})"


@dataclass(frozen=True)
class BenchmarkSpec:
    """How to find and parse one benchmark."""

    name: str
    display: str
    folders: tuple[str, ...]
    #: per split: the official file name first, then globs for renamed copies (e.g. subsets).
    patterns: dict[str, tuple[str, ...]]
    parse: Callable[[Any, str, str], ParsedFile]
    hub: dict[str, HubSpec]


# Hub sources. HotpotQA: the canonical dataset (config "distractor", splits train/validation).
# 2WikiMultihopQA and MuSiQue have no canonical hub dataset; these hold the official files unchanged
# (2Wiki: the first author's upload as parquet; MuSiQue: the official musique_ans_v1.0_*.jsonl), read
# through the generic parquet/json builders so no dataset script runs.
BENCHMARKS: dict[str, BenchmarkSpec] = {
    "hotpotqa": BenchmarkSpec(
        name="hotpotqa", display="HotpotQA", folders=("hotpotqa", "HotpotQA", "hotpot_qa"),
        patterns={"dev": ("hotpot_dev_distractor_v1.json", "hotpot_dev_distractor*.json"),
                  "train": ("hotpot_train_v1.1.json", "hotpot_train*.json")},
        parse=parse_hotpotqa,
        hub={"dev": HubSpec("hotpotqa/hotpot_qa", "validation", name="distractor"),
             "train": HubSpec("hotpotqa/hotpot_qa", "train", name="distractor")},
    ),
    "2wikimultihopqa": BenchmarkSpec(
        name="2wikimultihopqa", display="2WikiMultihopQA",
        folders=("2wikimultihopqa", "2WikiMultihopQA", "2wiki"),
        patterns={"dev": ("dev.json", "dev_*.json", "2wiki*dev*.json"),
                  "train": ("train.json", "train_*.json", "2wiki*train*.json")},
        parse=parse_twowiki,
        hub={"dev": HubSpec("parquet", "train", data_files="hf://datasets/xanhho/2WikiMultihopQA/dev.parquet"),
             "train": HubSpec("parquet", "train",
                              data_files="hf://datasets/xanhho/2WikiMultihopQA/train.parquet")},
    ),
    "musique": BenchmarkSpec(
        name="musique", display="MuSiQue", folders=("musique", "MuSiQue"),
        patterns={"dev": ("musique_ans_v1.0_dev.jsonl", "musique_ans*dev*.json*"),
                  "train": ("musique_ans_v1.0_train.jsonl", "musique_ans*train*.json*")},
        parse=parse_musique,
        hub={"dev": HubSpec("json", "train",
                            data_files="hf://datasets/dgslibisey/MuSiQue/musique_ans_v1.0_dev.jsonl"),
             "train": HubSpec("json", "train",
                              data_files="hf://datasets/dgslibisey/MuSiQue/musique_ans_v1.0_train.jsonl")},
    ),
}


@dataclass(frozen=True)
class DataLocation:
    """Where one split was found: local files, or a hub split. Small, so sources pickle cheaply."""

    files: tuple[str, ...] = ()
    hub: HubSpec | None = None

    def describe(self) -> str:
        """A short human-readable form for messages and the CLI."""
        return ", ".join(self.files) if self.files else f"hub: {self.hub.describe() if self.hub else '?'}"


def canonical_benchmark(benchmark: str) -> str:
    """Map a user-given benchmark name to its canonical form (case- and punctuation-insensitive).

    Raises:
        ConfigError: unknown name; the message suggests the closest known one.
    """
    key = str(benchmark).lower().replace("-", "").replace("_", "").replace(" ", "")
    aliases = {"hotpotqa": "hotpotqa", "hotpot": "hotpotqa", "2wikimultihopqa": "2wikimultihopqa",
               "2wiki": "2wikimultihopqa", "2wikimultihop": "2wikimultihopqa", "musique": "musique",
               "musiqueans": "musique"}
    if key in aliases:
        return aliases[key]
    close = difflib.get_close_matches(key, list(BENCHMARKS), n=1, cutoff=0.4)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    raise ConfigError(f"Unknown benchmark {benchmark!r}; expected one of {sorted(BENCHMARKS)}.{hint}")


def canonical_split(split: str) -> str:
    """Map ``dev``/``validation``/``val``/``train`` to ``dev`` or ``train``.

    Raises:
        ConfigError: any other split (the test splits of these datasets have no public answers).
    """
    try:
        return _SPLIT_ALIASES[str(split).lower()]
    except KeyError:
        raise ConfigError(f"Unknown split {split!r}; expected 'dev' (alias 'validation') or 'train'. "
                          "The datasets' test splits have no public answers.") from None


def find_in_dir(data_dir: Path, spec: BenchmarkSpec, split: str) -> tuple[str, ...]:
    """The split's file in ``data_dir`` (its benchmark subfolder first), or ``()`` if none.

    Raises:
        DataError: one pattern matches several files, so the choice would be a guess.
    """
    folders = [data_dir / f for f in spec.folders if (data_dir / f).is_dir()] + [data_dir]
    for pattern in spec.patterns[split]:
        for folder in folders:
            matches = sorted(p for p in folder.glob(pattern) if p.is_file())
            if len(matches) == 1:
                return (str(matches[0].resolve()),)
            if len(matches) > 1:
                raise DataError(
                    f"Several {spec.display} {split} files match {pattern!r} in {str(folder)!r}: "
                    f"{[m.name for m in matches]}. Pass data_files= naming the one(s) to use."
                )
    return ()


def _expected(spec: BenchmarkSpec, split: str) -> str:
    return f"{spec.patterns[split][0]} (or {', '.join(spec.patterns[split][1:])}) in {spec.folders[0]}/ or directly"


def locate(benchmark: str, split: str, data_dir: str | os.PathLike | None = None,
           data_files: str | os.PathLike | Sequence[str | os.PathLike] | None = None) -> DataLocation:
    """Find a split's data following the lookup order of this module.

    Raises:
        DataError: nothing found; the message lists every place tried and how to fix it.
    """
    spec, split = BENCHMARKS[canonical_benchmark(benchmark)], canonical_split(split)
    if data_files is not None:
        files = [data_files] if isinstance(data_files, (str, os.PathLike)) else list(data_files)
        if not files:
            raise ConfigError("data_files is empty; pass at least one file, or leave it None.")
        base = Path(data_dir) if data_dir is not None else Path.cwd()
        resolved = tuple(str((base / Path(f)).resolve()) for f in files)
        for f in resolved:
            if not Path(f).is_file():
                raise DataError(f"No {spec.display} file at {f!r} (from data_files=). Check the path.")
        return DataLocation(files=resolved)
    tried: list[str] = []
    if data_dir is not None:
        found = find_in_dir(Path(data_dir), spec, split) if Path(data_dir).is_dir() else ()
        if found:
            return DataLocation(files=found)
        raise DataError(
            f"No {spec.display} {split} file in data_dir={str(data_dir)!r} "
            f"({'not a folder' if not Path(data_dir).is_dir() else 'no match'}); expected "
            f"{_expected(spec, split)}. Fix the folder, or pass data_files= with the file path."
        )
    env_dir = os.environ.get(ENV_VAR)
    if env_dir:
        found = find_in_dir(Path(env_dir), spec, split) if Path(env_dir).is_dir() else ()
        if found:
            return DataLocation(files=found)
        tried.append(f"${ENV_VAR}={env_dir!r}: no {_expected(spec, split)}")
    else:
        tried.append(f"${ENV_VAR}: not set")
    if _datasets_available():
        return DataLocation(hub=spec.hub[split])
    tried.append(f"Hugging Face hub ({spec.hub[split].describe()}): the 'datasets' package is not installed")
    raise DataError(
        f"Cannot find {spec.display} {split} data. Tried:\n  - " + "\n  - ".join(tried) +
        f"\nFix: pass data_dir= (a folder with {_expected(spec, split)}) or data_files=, "
        f"or set {ENV_VAR}, or `pip install datasets` (extra 'atommem[hub]') to download from the hub."
    )


def _datasets_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("datasets") is not None


def load_from_hub(spec: HubSpec) -> list[dict[str, Any]]:
    """Download (or read from the ``datasets`` cache) one hub split as plain records.

    Raises:
        DataError: ``datasets`` is missing or the download fails (e.g. no network).
    """
    try:
        import datasets  # lazy: a heavy optional dependency, only for users loading from the hub
    except ImportError as exc:
        raise DataError(f"Loading {spec.describe()} needs the 'datasets' package: pip install datasets "
                        "(extra 'atommem[hub]'), or pass data_dir= with local files.") from exc
    kwargs: dict[str, Any] = {"split": spec.split}
    if spec.data_files:
        kwargs["data_files"] = spec.data_files
    try:
        rows = datasets.load_dataset(spec.path, spec.name, **kwargs) if spec.name else \
            datasets.load_dataset(spec.path, **kwargs)
    except Exception as exc:  # the hub raises many types (connection, auth, file-not-found)
        raise DataError(f"Hub download failed for {spec.describe()}: {type(exc).__name__}: {exc}. "
                        f"Pass data_dir= with the official files, or set {ENV_VAR}, or check the network.") from exc
    return [dict(row) for row in rows]


_LOCK = threading.Lock()
_FILE_CACHE: dict[tuple[Any, ...], ParsedFile] = {}
_CORPUS_CACHE: dict[tuple[Any, ...], SplitCorpus] = {}


def _file_key(benchmark: str, path: str) -> tuple[Any, ...]:
    st = Path(path).stat()
    return (benchmark, str(Path(path).resolve()), st.st_mtime_ns, st.st_size)


def _parse_file(spec: BenchmarkSpec, path: str, id_prefix: str) -> ParsedFile:
    key = _file_key(spec.name, path) + (id_prefix,)
    with _LOCK:
        cached = _FILE_CACHE.get(key)
    if cached is None:
        cached = spec.parse(read_records(path), path, id_prefix)
        with _LOCK:
            _FILE_CACHE[key] = cached
    return cached


def load_corpus(benchmark: str, split: str, location: DataLocation) -> SplitCorpus:
    """The split's corpus, parsed at most once per process per file version (path, mtime, size).

    Raises:
        DataError: a file is missing, malformed, or has no usable records; the hub fails.
    """
    spec, split = BENCHMARKS[canonical_benchmark(benchmark)], canonical_split(split)
    if location.files:
        if not all(Path(f).is_file() for f in location.files):
            missing = [f for f in location.files if not Path(f).is_file()]
            raise DataError(f"{spec.display} {split} file(s) {missing} no longer exist. Pass data_dir= again.")
        key: tuple[Any, ...] = (spec.name, split, tuple(_file_key(spec.name, f) for f in location.files))
    else:
        key = (spec.name, split, location.hub)
    with _LOCK:
        corpus = _CORPUS_CACHE.get(key)
    if corpus is not None:
        return corpus
    if location.files:
        # Derived ids (records without _id) follow the brief's ``train-{position}``; a file index keeps
        # them unique when a split spans several files.
        parsed = [_parse_file(spec, f, split if i == 0 else f"{split}-f{i}") for i, f in enumerate(location.files)]
    elif location.hub is not None:
        name = f"hub:{location.hub.describe()}"
        parsed = [spec.parse(load_from_hub(location.hub), name, split)]
    else:
        raise ConfigError("DataLocation has neither files nor a hub split; use locate() to make one.")
    corpus = make_corpus(spec.name, split, parsed)
    with _LOCK:
        _CORPUS_CACHE[key] = corpus
    return corpus


def clear_cache() -> None:
    """Forget every parsed file and corpus (tests and long-lived processes that reload data)."""
    with _LOCK:
        _FILE_CACHE.clear()
        _CORPUS_CACHE.clear()
