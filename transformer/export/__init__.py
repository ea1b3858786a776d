"""Deployment: a checkpoint converted to a CTranslate2 model folder, and decoding with it.

`ctranslate2` is an optional dependency (`pip install ".[ct2]"`), imported only inside the
functions that need it, so `import transformer` never loads it.
"""
