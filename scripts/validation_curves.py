"""Print runs' validation curves side by side: `python scripts/validation_curves.py RUN ...`."""

from transformer.commands.validation_curves import main

if __name__ == "__main__":
    raise SystemExit(main())
