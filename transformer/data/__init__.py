"""Corpora, SentencePiece tokenizers, tokenised splits and token-budget batching.

Import the submodules directly (`transformer.data.corpus`, `.tokenizer`, `.prepare`,
`.batching`); this package imports nothing, so loading it costs nothing.
"""
