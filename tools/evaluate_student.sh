#!/usr/bin/env bash
# The model card's distillation table: the distilled students at their own steps, and the release (the teacher) with
# deterministic DDIM on the same trailing grid and with DPM-Solver++(2M), at n = 10,000, seed 0, random labels.
#
#   bash tools/evaluate_student.sh teacher            # the release's rows
#   bash tools/evaluate_student.sh student [RUN]      # RUN/student_N.pt of `python -m ddpm_lite distill --out RUN`
#   bash tools/evaluate_student.sh parametrisation    # eps- against v-prediction: one stage 8 -> 4, n = 2,000
#
# Each row writes results/eval/distill/NAME.json (the figures and every setting they were measured with).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
N=${N:-10000}
OUT=results/eval/distill
mkdir -p "$OUT"
row() {  # NAME, then evaluate's flags
    local name=$1; shift
    if [ -f "$OUT/$name.json" ]; then echo "$name: done"; return; fi
    echo "$name: $*"
    "$PY" -m ddpm_lite evaluate --n "$N" --seed 0 --label random --no-progress "$@" --json "$OUT/$name.json"
}
case "${1:-}" in
teacher)
    # (the release's own setting, DDIM 20 with eta 0.7: results/eval/rand_ddim20_eta0.7_es0.98.json)
    for s in 8 4 2 1; do
        row "teacher_ddim${s}_eta0_trailing" --checkpoint checkpoints/ddpm_mnist.pt --sampler ddim --steps "$s" \
            --eta 0 --grid trailing --eps-scaling 1
    done
    for s in 8 4 2; do
        row "teacher_dpm${s}" --checkpoint checkpoints/ddpm_mnist.pt --sampler dpm++ --steps "$s"
    done ;;
student)
    run=${2:-runs/distill}
    for s in 8 4 2 1; do
        if [ -f "$run/student_$s.pt" ]; then row "student${s}" --checkpoint "$run/student_$s.pt"; fi
    done ;;
parametrisation)
    # the same stage from the release (8 -> 4 steps, 400 steps of 64) with each parametrisation, scored at n = 2,000
    for p in v eps; do
        [ -f "runs/param_$p/student_4.pt" ] || "$PY" -m ddpm_lite distill --start-steps 8 --final-steps 4 \
            --steps-per-stage 400 --prediction "$p" --out "runs/param_$p" --no-progress
        N=2000 row "param_${p}_8to4_n2000" --checkpoint "runs/param_$p/student_4.pt"
    done ;;
*) echo "usage: bash tools/evaluate_student.sh teacher|student [RUN]|parametrisation" >&2; exit 2 ;;
esac
