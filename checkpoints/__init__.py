"""The shipped files, installed as the package ``ddpm_lite.weights`` (pyproject.toml maps this folder there).

So a wheel or a plain ``pip install .`` carries the release checkpoint and the evaluation classifier, and
``ddpm_lite.checkpoint.shipped(name)`` finds them without a checkout. The model card is README.md beside this file.
"""
