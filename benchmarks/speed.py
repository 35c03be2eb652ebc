"""The speed suite (ddpm-lite against diffusers) lives in the package: ddpm_lite/speed.py. This runs it.

    python benchmarks/speed.py [flags]          the same as: python -m ddpm_lite benchmark [flags]
"""
import sys

from ddpm_lite.cli import main

if __name__ == "__main__":
    sys.exit(main(["benchmark", *sys.argv[1:]]))
