"""Training and decoding speed, as `tmt-benchmark` (`--help` lists the options)."""

from transformer.commands.benchmark import main

if __name__ == "__main__":
    raise SystemExit(main())
