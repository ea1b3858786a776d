"""BLEU against wall-clock minutes for given time budgets (`--help` lists the options).

python scripts/time_to_bleu.py --budgets 5 10 20 --data multi30k_de_en
python scripts/time_to_bleu.py experiment=smoke --budgets 2   # Hydra overrides come first
"""

from transformer.commands.time_to_bleu import main

if __name__ == "__main__":
    raise SystemExit(main())
