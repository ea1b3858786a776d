"""Write a synthetic parallel corpus of N pairs from a small one (by default Multi30k's training
split from $MULTI30K_DIR): `python scripts/make_corpus.py --pairs 1M --out corpora/big/train`.
"""

from transformer.commands.make_corpus import main

if __name__ == "__main__":
    raise SystemExit(main())
