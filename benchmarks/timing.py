"""Measuring helpers, so that `python -m ddpm_lite benchmark` (speed.py) and every script in benchmarks/ measure the
same way. Benchmarks report figures and ratios measured in the same run; they never assert times.

- time: `measure` calls each contender once to warm up, then `repeat` times, round-robin, so a burst of load on a
  shared machine hits all of them alike; it keeps the least disturbed (minimum) wall time and process CPU time.
- FLOPs: torch.utils.flop_counter.FlopCounterMode, which counts convolutions and matrix products only.
- machine peak: a large matmul and a large conv2d, timed the same way in the same run.
- memory: peak resident set size (VmHWM, or getrusage's ru_maxrss off Linux) of a fresh subprocess per
  configuration, less its resident size just before the measured work (tracemalloc does not see torch's tensors).
"""
from __future__ import annotations

import os
import platform
import sys
import time
from pathlib import Path
from typing import NamedTuple

import torch


class Timing(NamedTuple):
    wall_s: float  # minimum over the repeats
    cpu_s: float  # process CPU time (all threads) of the fastest repeat


def measure(contenders: dict, repeat: int = 3, warmup: int = 1) -> dict:
    """{name: Timing} for {name: zero-argument callable}, interleaved round-robin."""
    for fn in contenders.values():
        for _ in range(warmup):
            fn()
    runs = {name: [] for name in contenders}
    for _ in range(repeat):
        for name, fn in contenders.items():
            wall, cpu = time.perf_counter(), time.process_time()
            fn()
            runs[name].append(Timing(time.perf_counter() - wall, time.process_time() - cpu))
    return {name: min(r) for name, r in runs.items()}


def count_flops(fn) -> int:
    """Floating-point operations of one call, counted by torch (convolutions and matrix products)."""
    from torch.utils.flop_counter import FlopCounterMode
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


def machine_peak(size: int = 1024, conv_batch: int = 32, repeat: int = 3) -> dict:
    """GFLOP/s per wall and per CPU second (as a Timing) of a size x size matmul and of a 64 -> 64 channel 3x3
    conv2d on (conv_batch, 64, 28, 28)."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    x, w = torch.randn(conv_batch, 64, 28, 28), torch.randn(64, 64, 3, 3)
    work = {"matmul": lambda: a @ b, "conv2d": lambda: torch.nn.functional.conv2d(x, w, padding=1)}
    with torch.inference_mode():
        times = measure(work, repeat)
    return {name: Timing(*(count_flops(fn) / s / 1e9 for s in times[name])) for name, fn in work.items()}


def rss_mb() -> float:
    """Resident set size now (Linux), or the peak so far elsewhere."""
    try:
        return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2 ** 20
    except (OSError, ValueError, IndexError):
        return peak_rss_mb()


def peak_rss_mb() -> float:
    """Peak resident set size of this program: VmHWM on Linux, where getrusage's ru_maxrss would also count the
    parent's memory at fork time; ru_maxrss elsewhere."""
    try:
        status = Path("/proc/self/status").read_text().splitlines()
        return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:")) / 2 ** 10  # KiB
    except (OSError, StopIteration):
        import resource  # Unix only
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak / 2 ** 20 if sys.platform == "darwin" else peak / 2 ** 10  # bytes on macOS, KiB on Linux


def load_average() -> str:
    """How busy the machine is: runnable processes averaged over 1, 5 and 15 minutes."""
    return " / ".join(f"{v:.1f}" for v in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"


def machine_note(threads: int) -> str:
    """One line naming what the figures were measured on, including how busy the machine was."""
    return (f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
            f"{threads} thread(s); load average (1/5/15 min) {load_average()}")


def format_table(headers: list, rows: list) -> str:
    """A plain-text table, first column left-aligned, the others right-aligned."""
    cells = [[str(h) for h in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]

    def line(row):
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths)))
    return "\n".join([line(cells[0]), "  ".join("-" * w for w in widths)] + [line(r) for r in cells[1:]])
