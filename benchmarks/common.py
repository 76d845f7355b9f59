"""What every benchmark script shares: its command line, percentiles, the machine record, tables and JSON."""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import statistics
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from agents.training.cli import HelpFormatter

REPO = Path(__file__).resolve().parents[1]
DATA_DIR = REPO.parent / "shared" / "data"
SIMD_FLAGS = ("sse4", "fma", "f16c", "avx", "amx")  # the CPU flags that decide which kernels torch and vLLM run


def benchmark_parser(doc: str | None) -> argparse.ArgumentParser:
    """The command line every benchmark starts from: its docstring as ``--help``, each flag shown with
    its default, and ``--json PATH`` (the numbers and the machine record, :func:`write_json`)."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=HelpFormatter)
    parser.add_argument("--json", default=None, metavar="PATH", help="also write the results to this file")
    return parser


def summarize(seconds: Sequence[float]) -> dict[str, float]:
    """p50 / p99 / mean of timings in seconds, reported in microseconds (n is the sample count)."""
    if not seconds:
        return {"n": 0, "p50_us": float("nan"), "p99_us": float("nan"), "mean_us": float("nan")}
    us = np.asarray(seconds, dtype=float) * 1e6
    return {"n": len(us), "p50_us": float(np.percentile(us, 50)), "p99_us": float(np.percentile(us, 99)),
            "mean_us": float(us.mean())}


def machine() -> dict[str, Any]:
    """What the numbers were measured on, including the load: a shared machine inflates absolute times.

    ``cpu_flags`` are the vector-instruction flags the kernel reports (``avx2``, ``avx512f``, ...): numpy
    and torch pick their kernels by them, so one CPU name can hide machines of different speed.
    """
    cpu, flags = "", []
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():  # the first core's lines
            key, _, value = (part.strip() for part in line.partition(":"))
            if key == "model name" and not cpu:
                cpu = value
            elif key == "flags":
                flags = sorted(f for f in value.split() if f.startswith(SIMD_FLAGS))
                break
    except OSError:
        pass
    return {
        "cpu": cpu or platform.processor() or platform.machine(),
        "cpu_flags": flags,
        "cores": os.cpu_count(),
        "load_average_1_5_15": [round(x, 2) for x in os.getloadavg()],
        "python": platform.python_version(),
        "numpy": np.__version__,
    }




def format_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A plain aligned text table (floats with 3 significant digits, ints with thousands separators)."""
    def cell(value: Any) -> str:
        if isinstance(value, float):
            return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.3g}"
        if isinstance(value, int):
            return f"{value:,}"
        return str(value)

    cells = [[cell(v) for v in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]
    lines = ["  ".join(h.rjust(w) for h, w in zip(headers, widths, strict=True))]
    lines += ["  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)) for row in cells]
    return "\n".join(lines)


def write_json(path: str | None, results: dict[str, Any]) -> None:
    """Write ``results`` (with the machine record at the end and the command line) when ``--json PATH``
    was given."""
    if path:
        record = {"machine": machine(), "command": shlex.join([sys.executable, *sys.argv]), **results}
        Path(path).write_text(json.dumps(record, indent=2) + "\n")


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))
