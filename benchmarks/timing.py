"""Side-by-side timing: A/B repetitions interleaved in one run, medians and per-pair ratios."""

from __future__ import annotations

import os
import platform
import statistics
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field


@dataclass
class Samples:
    """Seconds (or any value) per repetition, keyed by variant name, in run order."""

    values: dict[str, list[float]] = field(default_factory=dict)

    def add(self, name: str, value: float) -> None:
        self.values.setdefault(name, []).append(value)

    def median(self, name: str) -> float:
        return statistics.median(self.values[name])

    def ratio(self, numerator: str, denominator: str) -> float:
        """Median of per-repetition ratios: each pair ran back to back, so drift cancels."""
        pairs = zip(self.values[numerator], self.values[denominator], strict=True)
        return statistics.median(a / b for a, b in pairs)

    def count(self, name: str) -> int:
        return len(self.values[name])


def interleaved(variants: Mapping[str, Callable[[], float | None]], repetitions: int) -> Samples:
    """Run A B C, A B C, ...; each call returns its own figure, or None to be timed here."""
    samples = Samples()
    for _ in range(repetitions):
        for name, run in variants.items():
            start = time.perf_counter()
            figure = run()
            samples.add(name, time.perf_counter() - start if figure is None else figure)
    return samples


def median_ms(run: Callable[[], object], repetitions: int, warmup: int = 1) -> float:
    for _ in range(warmup):
        run()
    times = []
    for _ in range(repetitions):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def load_average() -> tuple[float, float, float] | None:
    try:
        return os.getloadavg()
    except OSError:
        return None


def cpu_busy_fraction(seconds: float = 2.0) -> float | None:
    """Share of all CPUs busy over a short window (other people's work, on a shared machine)."""

    def sample() -> tuple[int, int]:
        with open("/proc/stat", encoding="utf-8") as handle:
            fields = [int(v) for v in handle.readline().split()[1:]]
        idle = fields[3] + fields[4]  # idle + iowait
        return sum(fields) - idle, sum(fields)

    try:
        busy_a, total_a = sample()
        time.sleep(seconds)
        busy_b, total_b = sample()
    except (OSError, ValueError, IndexError):
        return None
    return (busy_b - busy_a) / max(total_b - total_a, 1)


def machine() -> dict[str, object]:
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    import torch

    return {
        "cpu": model,
        "logical_cpus": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "os": platform.platform(),
    }


def gemm_peak_gflops(size: int = 2048, repetitions: int = 7) -> float:
    """Best fp32 GEMM rate on all torch threads: the most this CPU does with a model's math."""
    import torch

    a = torch.randn(size, size)
    b = torch.randn(size, size)
    torch.mm(a, b)
    best = float("inf")
    for _ in range(repetitions):
        start = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best / 1e9
