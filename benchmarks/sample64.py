"""Warm wall time of ddpm_lite.sample for 64 digits from the shipped checkpoint (model card table)."""
import time, torch
from ddpm_lite import load_model, sample
m, s = load_model()
g = lambda: torch.Generator().manual_seed(0)
sample(m, s, 64, steps=2, generator=g())  # warm-up
ROWS = [("ddim", 10, 0), ("dpm++", 10, 0), ("ddim", 20, 0), ("ddim", 50, 0), ("ddim", 10, 2), ("dpm++", 10, 2),
        ("ddim", 20, 2), ("ddpm", 100, 0)]
for sampler, steps, w in ROWS:
    labels = torch.arange(64) % 10 if w else None
    times = []
    for _ in range(2):
        t0 = time.perf_counter()
        sample(m, s, 64, sampler=sampler, steps=steps, labels=labels, guidance=w, generator=g())
        times.append(time.perf_counter() - t0)
    print(f"{sampler}-{steps} guidance={w}: best of 2 {min(times):.2f} s")
print("threads", torch.get_num_threads(), "torch", torch.__version__)
