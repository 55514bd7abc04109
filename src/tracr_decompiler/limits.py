"""Documented limits on inputs and flags (docs/usage.md, "Limits and errors"), in one place.

They bound time and memory for any input: a Tracr model's size grows with
the vocabulary and the sequence length (all inputs: |vocab| ** max_seq_len),
so a careless flag or a hostile file is refused up front instead of running
for minutes or exhausting memory. Each is far above what the shipped
decompiler reads (vocab 5, max_seq_len 5, at most 30 ops).
"""

MAX_VOCAB = 64  # tokens in --vocab / a model file's vocab
MAX_TOKEN_CHARS = 64  # characters in one string token
MAX_SEQ_LEN = 64  # --max-seq-len / a model file's max_seq_len
MAX_BEAM = 256  # --beam (candidates decoded and verified)
MAX_BEAM_AR = 64  # --beam with --mode ar (each step scores beam x vocabulary)
MAX_WORKERS = 64  # --workers, also capped at the CPU count and the number of shards

# Model files (loading/model_io.py): sizes claimed by the metadata.
MAX_LAYERS = 64
MAX_HEADS = 64
MAX_KEY_SIZE = 4096
MAX_RESIDUAL = 8192  # d_model
MAX_MLP_HIDDEN = 16384  # d_mlp per layer
MAX_MODEL_BYTES = 512 << 20  # all tensors together

# Compiling (compiling/compiler.py): tracr infers each SOp's value set from its
# inputs' (all combinations), which can be far larger than what any input
# produces; its MLPs are then quadratic in that size (a 24-op program asked for
# a 79,977 x 79,977 matrix, 48 GB). Programs past this are refused up front.
MAX_VALUE_SET = 1024
MAX_METADATA_BYTES = 4 << 20

# RASP sources (program/source.py).
MAX_SOURCE_BYTES = 1 << 20
MAX_SOURCE_LINES = 2000
MAX_SOURCE_DEPTH = 50  # nesting of expressions; ours are at most 5 deep
