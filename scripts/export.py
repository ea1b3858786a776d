"""Export a checkpoint to CTranslate2: `python scripts/export.py CKPT OUT_DIR`.

Options: --quantization int8|int8_float32|int16|float16|float32 (`--help` tells the default).
"""

from transformer.commands.export import main

if __name__ == "__main__":
    raise SystemExit(main())
