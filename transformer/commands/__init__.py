"""Command lines (argparse): one module per command, each with `main(argv=None) -> int`."""
