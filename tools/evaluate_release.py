"""Evaluate the shipped checkpoint for the model card: one `python -m ddpm_lite evaluate` process per row.

    python -m tools.evaluate_release [--jobs 2] [--scale 1.0] [--only ROW,ROW] [--seed 1 --out results/eval/seed1]
    python -m tools.evaluate_release --study [--only d50_eta1,d20_eta1]      # the sampler study, n = 2,000

Runs the rows below (each its own process, `--jobs` at a time with one thread each), writes one JSON per row to
results/eval/ (the study: results/eval/study/) and the Markdown table table.md beside them. `--scale` multiplies
every sample count (e.g. 0.1 for a quick look). Every row states every sampling setting: what a row leaves out is
the plain one (PLAIN), never the checkpoint's recommendation, so a row means the same whatever the checkpoint
recommends. Counts are limited by 2-core CPU time: DDPM's 1000 steps cost 50x DDIM-20 per sample, and guidance
doubles the batch.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

# settings of every row unless the row's own flags say otherwise (argparse keeps the last of a repeated flag)
PLAIN = ["--sampler", "ddim", "--eta", "0", "--eps-scaling", "1", "--spacing", "1", "--guidance", "0",
         "--precision", "fp32", "--variance", "beta_tilde", "--label", "none"]
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
    ("cond_w0", 10000, ["--steps", "20", "--label", "all", "--guidance", "0"]),  # unconditional via labels 0..9
    ("ddpm1000", 100, ["--sampler", "ddpm", "--steps", "1000"]),
    ("ddim50", 2000, ["--sampler", "ddim", "--steps", "50"]),
    ("ddim50_eta1", 2000, ["--sampler", "ddim", "--steps", "50", "--eta", "1"]),
    ("ddim10", 2000, ["--sampler", "ddim", "--steps", "10"]),
    ("dpm10", 2000, ["--sampler", "dpm++", "--steps", "10"]),
    ("cond_ddim10_w0", 2000, ["--sampler", "ddim", "--steps", "10", "--label", "all", "--guidance", "0"]),
    ("cond_dpm10_w0", 2000, ["--sampler", "dpm++", "--steps", "10", "--label", "all", "--guidance", "0"]),
    ("cond_w1", 1000, ["--steps", "20", "--label", "all", "--guidance", "1"]),
    ("cond_w2", 1000, ["--steps", "20", "--label", "all", "--guidance", "2"]),
    ("cond_w4", 1000, ["--steps", "20", "--label", "all", "--guidance", "4"]),
]
STUDY_N = 2000
# the sampler study: name -> extra flags (all rows: --n 2000 --seed 0, labels 0..9 in turn unless they say random)
STUDY_ROWS = {
    "d20": ["--steps", "20"],
    "d50": ["--steps", "50"],
    "d20_eta1": ["--steps", "20", "--eta", "1"],
    "d20_eta1_s2": ["--steps", "20", "--eta", "1", "--spacing", "2"],
    "d20_eta1_s2.5": ["--steps", "20", "--eta", "1", "--spacing", "2.5"],
    "d20_eta1_s3": ["--steps", "20", "--eta", "1", "--spacing", "3"],
    "d15_eta1_s2.5": ["--steps", "15", "--eta", "1", "--spacing", "2.5"],
    "d50_eta1": ["--steps", "50", "--eta", "1"],
    "d20_w0.15": ["--steps", "20", "--guidance", "0.15"],
    "d20_w0.3": ["--steps", "20", "--guidance", "0.3"],
    "d50_eta1_w0.1": ["--steps", "50", "--eta", "1", "--guidance", "0.1"],
    "d20_bf16": ["--steps", "20", "--precision", "bf16"],
    "p15_eta1": ["--sampler", "dpm++", "--steps", "15", "--eta", "1"],
    "p20_eta1": ["--sampler", "dpm++", "--steps", "20", "--eta", "1"],
    "b20": ["--sampler", "ddpm", "--steps", "20", "--variance", "beta"],
    "b15": ["--sampler", "ddpm", "--steps", "15", "--variance", "beta"],
    # epsilon scaling (Ning et al. 2024) at the 20-step setting nearest the bar: random labels, eta 0.7
    **{f"r20_eta0.7_es{lam}": ["--steps", "20", "--eta", "0.7", "--eps-scaling", lam, "--label", "random"]
       for lam in ("1", "1.01", "0.995", "0.99", "0.98", "0.97")},
}
LABELS = {"all": "0..9 in turn", "random": "random", "none": "no label", None: "no label"}
KEYS = [("fid", "{:.2f}"), ("precision", "{:.3f}"), ("recall", "{:.3f}"), ("confident", "{:.3f}"),
        ("class_balance", "{:.3f}"), ("conditional_accuracy", "{:.3f}")]


def run_row(name, n, flags, out: Path, checkpoint, seed) -> Path:
    path = out / f"{name}.json"
    cmd = [sys.executable, "-m", "ddpm_lite", "evaluate", "--n", str(n), "--seed", str(seed), "--json", str(path),
           "--no-progress", *(["--checkpoint", checkpoint] if checkpoint else []), *PLAIN, *flags]
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


def sampler_cell(s: dict) -> str:
    return s["sampler"] + ("" if s.get("precision", "fp32") == "fp32" else f" ({s['precision']})") + \
        ("" if s.get("eps_scaling", 1.0) == 1.0 else f", eps / {s['eps_scaling']}")


def table_row(name: str, r: dict) -> list:
    """The model's and the real digits' lines of one row's JSON."""
    fmt = lambda f, v: "-" if v is None else f.format(v)  # noqa: E731
    s = r["settings"]
    eta = str(s["eta"]) if s["sampler"] in ("ddim", "dpm++") else "-"
    labels = LABELS[s.get("labels", "all" if s["conditional"] else None)]  # files before --label: no key
    mine = [sampler_cell(s), steps_cell(s), eta, labels, str(s["guidance"]) if s["conditional"] else "-"]
    return ["| " + " | ".join([label, *(mine if who == "model" else ["-"] * len(mine)), str(r[who]["n"])]
                              + [fmt(f, r[who][k]) for k, f in KEYS]) + " |"
            for who, label in (("model", name), ("real", "real MNIST"))]


def markdown(out: Path, names) -> str:
    head = "| row | sampler | steps | eta | labels | guidance w | n | " + " | ".join(k for k, _ in KEYS) + " |"
    lines = [head, "|" + "---|" * (7 + len(KEYS))]
    for name in names:
        if (out / f"{name}.json").is_file():
            lines += table_row(name, json.loads((out / f"{name}.json").read_text()))
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--study", action="store_true", help="the sampler study's rows (n = 2,000) instead")
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--scale", type=float, default=1.0)
    p.add_argument("--checkpoint", default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="default: results/eval, or results/eval/study with --study")
    p.add_argument("--only", default=None, help="comma-separated row names")
    args = p.parse_args(argv)
    out = Path(args.out or ("results/eval/study" if args.study else "results/eval"))
    table = [(name, STUDY_N, ["--label", "all", *flags]) for name, flags in STUDY_ROWS.items()] if args.study \
        else ROWS
    rows = [(name, max(10, int(n * args.scale)), flags) for name, n, flags in table
            if not args.only or name in args.only.split(",")]
    run_rows(rows, out, args.jobs, args.checkpoint, args.seed)
    (out / "table.md").write_text(markdown(out, [name for name, _, _ in table]))
    print((out / "table.md").read_text())


if __name__ == "__main__":
    main()
