"""Serve models over HTTP, as `tmt-serve` (needs `pip install -e ".[serve]"`).

python scripts/serve.py runs/multi30k/en-de --port 5000
"""

from transformer.commands.serve import main

if __name__ == "__main__":
    raise SystemExit(main())
