"""Running training on several processes (torchrun, DistributedDataParallel) and guarding a run's folder.

Plumbing that training.py and distill.py use and a reader of the core can skip: it imports nothing of the package
but errors.py.
"""
