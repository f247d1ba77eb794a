"""Benchmarks behind ``facenormals3d bench NAME``.

Each benchmark module defines ``DESCRIPTION``, ``add_arguments(parser)`` and
``run(args) -> BenchReport``. Timings are compared with a reference measured in the same
process (ratios hold on a noisy machine; seconds do not), and targets are reported as
pass/fail lines, never asserted in tests.
"""

from __future__ import annotations

import platform
import time
from dataclasses import dataclass, field
from typing import Any, Callable


@dataclass
class BenchReport:
    """What a benchmark measured."""

    name: str
    """Benchmark name (``integration``, ``synth``, ...)."""
    rows: list[dict[str, Any]]
    """One dict per measured case; keys are the table's columns."""
    targets: list[dict[str, Any]] = field(default_factory=list)
    """Checks against the issue's targets: ``{"target": str, "value": float, "limit": float, "ok": bool}``."""
    notes: list[str] = field(default_factory=list)
    """Free-text remarks printed under the table."""
    reference: dict[str, float] = field(default_factory=dict)
    """Numbers measured beside the rows (yardsticks, counts), by name; the notes quote them."""
    machine: dict[str, Any] = field(default_factory=lambda: machine_info())
    """Where it ran."""

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "machine": self.machine, "rows": self.rows,
                "targets": self.targets, "notes": self.notes, "reference": self.reference}

    def table(self, title: str | None = None) -> str:
        """The rows as an aligned text table, then the targets and notes."""
        lines = [title if title is not None else f"bench {self.name}"]
        if self.rows:
            cols = list(dict.fromkeys(k for row in self.rows for k in row))
            cells = [[_fmt(row.get(c, "")) for c in cols] for row in self.rows]
            widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(cols)]
            lines.append("  ".join(c.rjust(w) for c, w in zip(cols, widths)))
            lines += ["  ".join(v.rjust(w) for v, w in zip(r, widths)) for r in cells]
        for t in self.targets:
            mark = "PASS" if t["ok"] else "MISS"
            lines.append(f"[{mark}] {t['target']}: {_fmt(t['value'])} (limit {_fmt(t['limit'])})")
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines)


def target(description: str, value: float, limit: float, lower_is_better: bool = True) -> dict[str, Any]:
    """A target line for :attr:`BenchReport.targets`."""
    ok = value <= limit if lower_is_better else value >= limit
    return {"target": description, "value": float(value), "limit": float(limit), "ok": bool(ok)}


def time_call(fn: Callable[[], Any], repeats: int = 3, warmup: int = 1) -> tuple[float, Any]:
    """Best wall time in seconds of ``fn()`` over ``repeats`` runs (after ``warmup``), and its last result."""
    result = None
    for _ in range(warmup):
        result = fn()
    best = float("inf")
    for _ in range(max(1, repeats)):
        t0 = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - t0)
    return best, result


def machine_info() -> dict[str, Any]:
    import os

    return {"python": platform.python_version(), "platform": platform.platform(),
            "cpu_count": os.cpu_count(), "processor": platform.processor() or platform.machine(),
            "cpu_model": cpu_model()}


def cpu_model(cpuinfo: str = "/proc/cpuinfo") -> str:
    """The CPU's model name as Linux reports it ('' where ``cpuinfo`` is not there)."""
    try:
        with open(cpuinfo, encoding="utf-8", errors="replace") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() == "model name":
                    return value.strip()
    except OSError:
        pass
    return ""


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)
