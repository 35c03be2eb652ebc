"""Making the release and running studies: not part of the installed package.

Run from the repository root, as modules: `python -m tools.run_notebooks --fast` (the notebooks' smoke run),
`python -m tools.make_assets`, `python -m tools.export_progress`, `python -m tools.evaluate_release`,
`python -m tools.ema_horizon_study`, `python -m tools.inpaint_accuracy`; `bash tools/train_release.sh` trains the
release. Tests import these modules as a package.
"""
