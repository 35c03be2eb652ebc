"""Measuring sample quality: a small MNIST classifier (classifier.py) and the figures computed in its feature space
(metrics.py: classifier-FID, precision/recall, class scores), each beside the same figures for real digits.

Apart from the core, which never imports it; the command line's `evaluate` and `train-classifier` and notebooks
05-08 use it.
"""
