#!/usr/bin/env python
"""Serve models over HTTP (the same as `tmt-serve`; needs `pip install -e ".[serve]"`).

python scripts/serve.py runs/multi30k/en-de --port 5000
"""

import sys

from transformer.commands.serve import main

if __name__ == "__main__":
    sys.exit(main())
