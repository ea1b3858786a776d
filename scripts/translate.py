#!/usr/bin/env python
"""Translate with a checkpoint: sentences as arguments, `--input FILE`, or standard input, as
`tmt-translate`.

python scripts/translate.py CKPT "A man rides a bike."
echo "Ein Mann fährt Fahrrad." | python scripts/translate.py CKPT
"""

import sys

from transformer.inference_cli import translate_main

if __name__ == "__main__":
    sys.exit(translate_main())
