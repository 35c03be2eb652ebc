"""Warm wall time of ddpm_lite.sample for 64 digits from the shipped checkpoint (model card table).

    python -m benchmarks.sample64 [--bf16] [--fast]
    --bf16: every row again with the network under bf16 autocast; --fast: only the fast setting's row
"""
import sys
import time

import torch

from ddpm_lite import load_model, sample

m, s = load_model()
g = lambda: torch.Generator().manual_seed(0)  # noqa: E731
sample(m, s, 64, steps=2, generator=g())  # warm-up
# sampler, steps, guidance w, eta, labels (None: the "no label" path), eps scaling lambda; every setting given,
# so a row means the same whatever the checkpoint recommends
ROWS = [("ddim", 10, 0, 0, None, 1), ("dpm++", 10, 0, 0, None, 1), ("ddim", 20, 0, 0, None, 1),
        ("ddim", 50, 0, 0, None, 1), ("ddim", 20, 0, 1, "random", 1), ("ddim", 20, 0, 0.7, "random", 1),
        ("ddim", 20, 0, 0.7, "random", 0.98),  # the fast setting (model card)
        ("ddim", 50, 0, 1, "random", 1), ("ddim", 10, 2, 0, "all", 1), ("dpm++", 10, 2, 0, "all", 1),
        ("ddim", 20, 2, 0, "all", 1), ("ddpm", 100, 0, 0, None, 1)]
if "--fast" in sys.argv:  # only the fast setting's row
    ROWS = [r for r in ROWS if r[5] != 1]
for precision in ["fp32"] + (["bf16"] if "--bf16" in sys.argv else []):
    for sampler, steps, w, eta, label, lam in ROWS:
        labels = {None: "none", "all": torch.arange(64) % 10, "random": torch.randint(0, 10, (64,), generator=g())}[label]
        times = []
        for _ in range(2):
            t0 = time.perf_counter()
            sample(m, s, 64, sampler=sampler, steps=steps, eta=eta, labels=labels, guidance=w, generator=g(),
                   precision=precision, eps_scaling=lam)
            times.append(time.perf_counter() - t0)
        print(f"{precision} {sampler}-{steps} eta={eta} labels={label} guidance={w} eps_scaling={lam}: "
              f"best of 2 {min(times):.2f} s", flush=True)
print("threads", torch.get_num_threads(), "torch", torch.__version__)
