"""Evaluate the shipped checkpoint for the model card: one `python -m ddpm_lite evaluate` per row.

    python scripts/evaluate_release.py [--jobs 2] [--scale 1.0]

Runs the rows below (each its own process, `--jobs` at a time with one thread each), writes one JSON per
row to checkpoints/eval/ and the Markdown table checkpoints/eval/table.md. `--scale` multiplies every
sample count (e.g. 0.1 for a quick look). Counts are limited by 2-core CPU time: DDPM's 1000 steps cost
50x DDIM-20 per sample, and guidance doubles the batch.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

# name, sample count, extra flags for `evaluate`
ROWS = [
    # the release bar's rows: unconditional digits through uniformly random labels, DDIM with eta = 1 at 50
    # steps; at 20 steps (about 2 s for 64 digits) eta, step placement and bf16 tried
    # the fast setting: eta 0.7 with epsilon scaling, lambda 0.98 (Ning et al. 2024), fp32 and bf16
    ("rand_ddim20_eta0.7_es0.98", 10000, ["--steps", "20", "--eta", "0.7", "--eps-scaling", "0.98", "--label",
                                          "random"]),
    ("rand_ddim20_eta0.7_es0.98_bf16", 10000, ["--steps", "20", "--eta", "0.7", "--eps-scaling", "0.98", "--label",
                                               "random", "--precision", "bf16"]),
    ("rand_ddim20_eta1_s2.5", 10000, ["--steps", "20", "--eta", "1", "--spacing", "2.5", "--label", "random"]),
    ("rand_ddim20_eta1_s2.5_bf16", 10000, ["--steps", "20", "--eta", "1", "--spacing", "2.5", "--label", "random",
                                           "--precision", "bf16"]),
    ("rand_ddim20_eta1", 10000, ["--steps", "20", "--eta", "1", "--label", "random"]),
    ("rand_ddim20_eta0.5", 10000, ["--steps", "20", "--eta", "0.5", "--label", "random"]),
    ("rand_ddim20_eta0.6", 10000, ["--steps", "20", "--eta", "0.6", "--label", "random"]),
    ("rand_ddim20_eta0.7", 10000, ["--steps", "20", "--eta", "0.7", "--label", "random"]),
    ("rand_ddim20_eta0.85", 10000, ["--steps", "20", "--eta", "0.85", "--label", "random"]),
    ("rand_ddim50_eta1", 10000, ["--steps", "50", "--eta", "1", "--label", "random"]),
    ("ddim20", 10000, ["--sampler", "ddim", "--steps", "20"]),
    ("cond_w0", 10000, ["--steps", "20", "--conditional", "--guidance", "0"]),  # unconditional via labels 0..9
    ("ddpm1000", 100, ["--sampler", "ddpm", "--steps", "1000"]),
    ("ddim50", 2000, ["--sampler", "ddim", "--steps", "50"]),
    ("ddim50_eta1", 2000, ["--sampler", "ddim", "--steps", "50", "--eta", "1"]),
    ("ddim10", 2000, ["--sampler", "ddim", "--steps", "10"]),
    ("dpm10", 2000, ["--sampler", "dpm++", "--steps", "10"]),
    ("cond_ddim10_w0", 2000, ["--sampler", "ddim", "--steps", "10", "--conditional", "--guidance", "0"]),
    ("cond_dpm10_w0", 2000, ["--sampler", "dpm++", "--steps", "10", "--conditional", "--guidance", "0"]),
    ("cond_w1", 1000, ["--steps", "20", "--conditional", "--guidance", "1"]),
    ("cond_w2", 1000, ["--steps", "20", "--conditional", "--guidance", "2"]),
    ("cond_w4", 1000, ["--steps", "20", "--conditional", "--guidance", "4"]),
]
LABELS = {"all": "0..9 in turn", "random": "random", None: "no label"}
KEYS = [("fid", "{:.2f}"), ("precision", "{:.3f}"), ("recall", "{:.3f}"), ("confident", "{:.3f}"),
        ("class_balance", "{:.3f}"), ("conditional_accuracy", "{:.3f}")]


def run_row(name, n, flags, out: Path, checkpoint, seed) -> Path:
    path = out / f"{name}.json"
    cmd = [sys.executable, "-m", "ddpm_lite", "evaluate", "--n", str(n), "--seed", str(seed), "--json", str(path),
           "--no-progress", *(["--checkpoint", checkpoint] if checkpoint else []), *flags]
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("EVAL_THREADS", "1")}
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL)
    print("done", name, flush=True)
    return path


def run_rows(rows, out: Path, jobs: int, checkpoint=None, seed: int = 0) -> None:
    """Each (name, n, flags) row as its own `evaluate` process, `jobs` at a time; JSON files into out/."""
    out.mkdir(parents=True, exist_ok=True)
    with ThreadPoolExecutor(jobs) as pool:
        for job in [pool.submit(run_row, name, n, flags, out, checkpoint, seed) for name, n, flags in rows]:
            job.result()


def steps_cell(s: dict) -> str:
    """The steps column: the count, and the spacing power where it is not the default 1."""
    return str(s["steps"]) + ("" if s.get("spacing", 1.0) == 1.0 else f" (spacing {s['spacing']})")


def markdown(out: Path) -> str:
    fmt = lambda f, v: "-" if v is None else f.format(v)  # noqa: E731
    head = "| row | sampler | steps | eta | labels | guidance w | n | " + " | ".join(k for k, _ in KEYS) + " |"
    lines = [head, "|" + "---|" * (7 + len(KEYS))]
    for name, _, _ in ROWS:
        path = out / f"{name}.json"
        if not path.is_file():
            continue
        r = json.loads(path.read_text())
        s = r["settings"]
        w = s["guidance"] if s["conditional"] else "-"
        labels = LABELS[s.get("labels", "all" if s["conditional"] else None)]  # files before --label: no key
        for who in ("model", "real"):
            row = r[who]
            label = name if who == "model" else "real MNIST"
            eta = str(s["eta"]) if s["sampler"] in ("ddim", "dpm++") else "-"
            sampler = s["sampler"] + ("" if s.get("precision", "fp32") == "fp32" else f" ({s['precision']})") + \
                ("" if s.get("eps_scaling", 1.0) == 1.0 else f", eps / {s['eps_scaling']}")
            mine = [sampler, steps_cell(s), eta, labels, str(w)]
            cells = [label, *(mine if who == "model" else ["-"] * len(mine)), str(row["n"])] + \
                [fmt(f, row[k]) for k, f in KEYS]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--scale", type=float, default=1.0)
    p.add_argument("--checkpoint", default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="checkpoints/eval")
    p.add_argument("--only", default=None, help="comma-separated row names")
    args = p.parse_args(argv)
    out = Path(args.out)
    rows = [(name, max(10, int(n * args.scale)), flags) for name, n, flags in ROWS
            if not args.only or name in args.only.split(",")]
    run_rows(rows, out, args.jobs, args.checkpoint, args.seed)
    (out / "table.md").write_text(markdown(out))
    print((out / "table.md").read_text())


if __name__ == "__main__":
    main()
