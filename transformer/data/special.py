"""The special token ids, defined here once: every SentencePiece model is trained with them, and
batching, the model and decoding take them from here (stdlib only, so decoding can import it).
"""

PAD_ID = 0
UNK_ID = 1
BOS_ID = 2
EOS_ID = 3
