"""Measuring ddpm-lite, against other libraries and against itself: not part of the installed package.

Run from the repository root, as modules: `python -m benchmarks.versus_diffusers` (the speed suite against diffusers,
also `python -m ddpm_lite benchmark` from a checkout), `python -m benchmarks.time_to_quality_race`, ... Each says in
its docstring what it measures; timing.py holds the measuring helpers they share. Results: benchmarks/README.md.
"""
