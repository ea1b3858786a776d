"""Fork a run from an earlier update, as `tmt-fork RUN_DIR --update N`.

The next training command in RUN_DIR then resumes from update N; the checkpoints of later
updates move to RUN_DIR/checkpoints/later-than-N.<time>/ (nothing is deleted).
"""

from transformer.commands.fork import main

if __name__ == "__main__":
    raise SystemExit(main())
