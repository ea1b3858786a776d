"""Print the results table from finished runs: `python scripts/results_table.py RUN ...`."""

from transformer.commands.results_table import main

if __name__ == "__main__":
    raise SystemExit(main())
