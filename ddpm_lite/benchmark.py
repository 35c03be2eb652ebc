"""Speed benchmarks: `python -m ddpm_lite benchmark` runs benchmarks/speed.py (ours against diffusers) and prints
its tables. Benchmarks report figures and ratios measured in the same run; they never assert times.

The measuring helpers live here so that every script in benchmarks/ measures the same way:
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

SUITE = Path(__file__).resolve().parent.parent / "benchmarks" / "speed.py"


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


def int_tuple(s: str) -> tuple:
    return tuple(int(v) for v in s.split(",") if v.strip())


def add_options(p) -> None:
    """The suite's flags, shared by `python -m ddpm_lite benchmark` and `python benchmarks/speed.py`."""
    p.add_argument("--threads", type=int, default=torch.get_num_threads(),
                   help="torch threads (default: all cores; use 1 on a machine busy with other work)")
    p.add_argument("--n", type=int, default=64, help="digits per sampling run and forward batch (default: 64)")
    p.add_argument("--batch", type=int, default=128, help="training batch size (default: 128)")
    p.add_argument("--repeat", type=int, default=3, help="timed repeats of each short measurement (default: 3)")
    p.add_argument("--ddim-steps", type=int_tuple, default=(50, 20, 10), help="default: 50,20,10")
    p.add_argument("--ddpm-prefix", type=int, default=10,
                   help="DDPM 1000 steps is extrapolated from this many measured steps (default: 10)")
    p.add_argument("--guidance", type=float, default=2.0, help="guidance weight w of the guided rows (default: 2)")
    p.add_argument("--diffusers-widths", type=int_tuple, default=None,
                   help="UNet2DModel block_out_channels (default: the widths that match our parameter count)")
    p.add_argument("--only", default="train,sample,efficiency", help="sections to run (default: all three)")
    p.add_argument("--no-diffusers", action="store_true", help="measure ours only")
    p.add_argument("--no-memory", action="store_true", help="skip the peak-memory subprocesses")
    p.add_argument("--smoke", action="store_true", help="tiny model and sizes: checks the code runs, measures nothing")


def add_parser(sub):
    p = sub.add_parser("benchmark", help="speed against diffusers: training, sampling latency, share of machine peak")
    add_options(p)
    p.set_defaults(func=run)


def load_suite():
    """benchmarks/speed.py of the source checkout (it is not part of the installed package)."""
    import importlib.util
    from .cli import UsageError
    if not SUITE.is_file():
        raise UsageError(f"the benchmark suite {SUITE} is missing: it ships with the source repository, not the "
                         f"package; run `python -m ddpm_lite benchmark` from a clone of the repository")
    spec = importlib.util.spec_from_file_location("ddpm_lite_benchmarks_speed", SUITE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run(args) -> int:
    return load_suite().main(args)


def check_options(args) -> None:
    from .cli import UsageError
    if args.threads < 1 or args.n < 1 or args.batch < 1 or args.repeat < 1 or args.ddpm_prefix < 1:
        raise UsageError("--threads, --n, --batch, --repeat and --ddpm-prefix must be positive integers")
    if not args.ddim_steps or not all(1 <= s <= 1000 for s in args.ddim_steps):
        raise UsageError(f"--ddim-steps must be numbers of steps between 1 and 1000, got {args.ddim_steps}")
    unknown = set(args.only.split(",")) - {"train", "sample", "efficiency"}
    if unknown:
        raise UsageError(f"unknown --only section(s) {', '.join(sorted(unknown))}; choose from train,sample,efficiency")
