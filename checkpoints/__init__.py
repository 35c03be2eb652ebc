"""The shipped files, installed as the package ``ddpm_lite.weights`` (pyproject.toml maps this folder there).

So a wheel or a plain ``pip install .`` carries the release checkpoint, the evaluation classifier and the progress
snapshots of progress/ (notebook 03's slider), and ``ddpm_lite.checkpoint.shipped(name)`` and
``ddpm_lite.lab.snapshots.shipped_snapshots()`` find them without a checkout. The model card is README.md beside this
file.
"""
