"""Translate with a checkpoint or exported folder: arguments, `--input FILE`, or standard input.

python scripts/translate.py CKPT "A man rides a bike."
echo "Ein Mann fährt Fahrrad." | python scripts/translate.py CKPT
"""

from transformer.commands.translate import main

if __name__ == "__main__":
    raise SystemExit(main())
