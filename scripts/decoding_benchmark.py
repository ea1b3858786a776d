"""Decoding speed and BLEU, ours against CTranslate2: `python scripts/decoding_benchmark.py RUN`."""

from transformer.commands.decoding_benchmark import main

if __name__ == "__main__":
    raise SystemExit(main())
