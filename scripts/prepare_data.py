"""Fetch the corpus, train the SentencePiece model and print corpus statistics, as `tmt-prepare`.

Takes the same Hydra overrides as training: `python scripts/prepare_data.py data=multi30k_de_en`.
"""

from transformer.commands.prepare import main

if __name__ == "__main__":
    raise SystemExit(main())
