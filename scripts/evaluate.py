"""Decode a test set and report sacreBLEU/chrF: `python scripts/evaluate.py CKPT_OR_EXPORTED_DIR`.

`python scripts/evaluate.py CKPT [--split test_2017_flickr] [--src FILE --ref FILE] ...`
(`--help` lists the options).
"""

from transformer.commands.evaluate import main

if __name__ == "__main__":
    raise SystemExit(main())
