"""The model card's distillation table, made from the JSON that `bash tools/evaluate_student.sh` writes.

    python -m tools.distill_table > results/eval/distill/table.md

A row whose JSON is missing says "not measured".
"""
from __future__ import annotations

import json
from pathlib import Path

RESULTS = Path(__file__).resolve().parent.parent / "results" / "eval"
HEADER = ["sampler", "steps", "n", "FID (real)", "FID / real", "precision", "recall", "confident (real)", "balance"]


def row(path: Path, label: str, steps: int) -> str:
    if not path.is_file():
        return f"| {label} | {steps} | not measured |"
    d = json.loads(path.read_text())
    m, r = d["model"], d["real"]
    cells = [label, str(steps), f"{m['n']:,}", f"{m['fid']:.2f} ({r['fid']:.2f})", f"{m['fid'] / r['fid']:.1f}x",
             f"{m['precision']:.3f}", f"{m['recall']:.3f}", f"{m['confident']:.3f} ({r['confident']:.3f})",
             f"{m['class_balance']:.3f}"]
    return "| " + " | ".join(cells) + " |"


def table() -> str:
    d = RESULTS / "distill"
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    for s in (8, 4, 2, 1):
        lines.append(row(d / f"student{s}.json", "**student**", s))
        lines.append(row(d / f"teacher_ddim{s}_eta0_trailing.json", "teacher, DDIM eta 0", s))
        if s > 1:
            lines.append(row(d / f"teacher_dpm{s}.json", "teacher, DPM-Solver++(2M)", s))
    lines.append(row(RESULTS / "rand_ddim20_eta0.7_es0.98.json", "teacher, its own setting (DDIM eta 0.7, eps / 0.98)", 20))
    return "\n".join(lines)


def parametrisation_table() -> str:
    d = RESULTS / "distill"
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    for p in ("v", "eps"):
        lines.append(row(d / f"param_{p}_8to4_n2000.json", f"student predicting {p}", 4))
    return "\n".join(lines)


if __name__ == "__main__":
    print(table())
    print()
    print(parametrisation_table())
