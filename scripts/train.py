"""Train a Transformer: `python scripts/train.py [key=value ...]` (Hydra overrides), as `tmt-train`.

Re-running the same command resumes from the run folder's checkpoints/last.pt.
Distributed: `torchrun --nproc_per_node=N scripts/train.py [key=value ...]`.
"""

from transformer.commands.train import main

if __name__ == "__main__":
    raise SystemExit(main())
