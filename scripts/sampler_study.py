"""Sampler settings for the shipped checkpoint at n = 2,000 (model card, "Which sampler setting"): one
`python -m ddpm_lite evaluate` per row, labels 0..9 in turn, seed 0, one thread each.

    python scripts/sampler_study.py [--jobs 2] [--only d50_eta1,d20_eta1]

Writes checkpoints/eval/study/<row>.json and prints a Markdown table.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from evaluate_release import run_rows, steps_cell  # the same one-process-per-row runner (this folder is on sys.path)

N = 2000
# name: extra `evaluate` flags (all rows: --n 2000 --seed 0 and --label all unless they give --label random)
ROWS = {
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
KEYS = ["fid", "precision", "recall", "confident", "conditional_accuracy"]


def markdown(out: Path) -> str:
    lines = ["| row | sampler | steps | eta | labels | guidance w | eps / lambda | arithmetic | " + " | ".join(KEYS)
             + " |", "|" + "---|" * (8 + len(KEYS))]
    real = None
    for name in ROWS:
        path = out / f"{name}.json"
        if path.is_file():
            r = json.loads(path.read_text())
            s, real = r["settings"], r["real"]
            eta = f"- (variance {s.get('variance')})" if s["sampler"] == "ddpm" else s["eta"]
            lines.append(f"| {name} | {s['sampler']} | {steps_cell(s)} | {eta} | {s.get('labels', 'all')} | "
                         f"{s['guidance']} | {s.get('eps_scaling', 1.0)} | {s.get('precision', 'fp32')} | "
                         + " | ".join(f"{r['model'][k]:.3f}" for k in KEYS) + " |")
    if real:
        lines.append("| real MNIST | - | - | - | - | - | - | - | " + " | ".join(f"{real[k]:.3f}" for k in KEYS) + " |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--only", default=None, help="comma-separated row names")
    p.add_argument("--out", default="checkpoints/eval/study")
    args = p.parse_args(argv)
    out = Path(args.out)
    rows = [(name, N, ["--label", "all", *flags]) for name, flags in ROWS.items()
            if not args.only or name in args.only.split(",")]
    run_rows(rows, out, args.jobs)  # seed 0, the shipped checkpoint
    (out / "table.md").write_text(markdown(out))
    print((out / "table.md").read_text())


if __name__ == "__main__":
    main()
