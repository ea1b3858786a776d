"""The GPU check (see transformer/benchmarks/gpu_check.py); on the GPU machine run gpu_check.sh."""

from transformer.commands.gpu_check import main

if __name__ == "__main__":
    raise SystemExit(main())
