"""The compile settings people use, as ranges each generated program draws its own settings from.

With `GenerationConfig.mixed_settings`, every program gets settings drawn here
instead of the fixed `GenerationConfig.settings`; they travel with its row and
its model file. The ranges cover what others publish models at (TracrBench:
vocab {0..9}, length 10, mlp_exactness 1000; InterpBench: vocab 0..10, length
9-10; tracr's docs: letter vocabularies) and are documented in docs/usage.md:

  vocab size      2..16, uniform
  token type      ints 0..k-1 (50 %), ints with gaps (15 %), letters (25 %), letters and ints mixed (10 %)
  max_seq_len     2..12, uniform
  mlp_exactness   100 or 1000, equally likely
  causal          25 % of programs
  BOS / PAD       one of SPECIAL_TOKENS, equally likely

Settings whose exhaustive input set is larger than compiling/inputs.py's
MAX_EXHAUSTIVE are checked on a sample (the row records how many inputs).
"""

from __future__ import annotations

import string

import numpy as np

from tracr_decompiler.compiling.compiled import CompileSettings

VOCAB_SIZES = (2, 16)
MAX_SEQ_LENS = (2, 12)
TOKEN_TYPES = {"int": 0.5, "int_gaps": 0.15, "letters": 0.25, "mixed": 0.1}
MLP_EXACTNESS = (100, 1000)
CAUSAL_FRACTION = 0.25
SPECIAL_TOKENS = (("compiler_bos", "compiler_pad"), ("BOS", "PAD"), ("bos", "pad"), ("<s>", "<pad>"))


def _vocab(kind: str, size: int, rng: np.random.Generator) -> tuple:
  if kind == "int":
    return tuple(range(size))
  if kind == "int_gaps":  # e.g. {1, 4, 5, 9}: values people pick, not positions
    return tuple(sorted(int(v) for v in rng.choice(np.arange(-2, 3 * size), size=size, replace=False)))
  letters = tuple(string.ascii_lowercase[:size])
  if kind == "letters":
    return letters
  ints = size // 2
  return tuple(range(ints)) + letters[:size - ints]  # mixed: tracr sorts such vocabularies by str()


def draw(rng: np.random.Generator) -> CompileSettings:
  """One program's compile settings (see the module docstring for the ranges)."""
  kinds = list(TOKEN_TYPES)
  kind = kinds[rng.choice(len(kinds), p=np.array(list(TOKEN_TYPES.values())) / sum(TOKEN_TYPES.values()))]
  size = int(rng.integers(VOCAB_SIZES[0], VOCAB_SIZES[1] + 1))
  bos, pad = SPECIAL_TOKENS[rng.integers(len(SPECIAL_TOKENS))]
  return CompileSettings(vocab=_vocab(kind, size, rng),
                         max_seq_len=int(rng.integers(MAX_SEQ_LENS[0], MAX_SEQ_LENS[1] + 1)),
                         compiler_bos=bos, compiler_pad=pad,
                         mlp_exactness=int(MLP_EXACTNESS[rng.integers(len(MLP_EXACTNESS))]),
                         causal=bool(rng.random() < CAUSAL_FRACTION))


def token_type(settings: CompileSettings) -> str:
  """How a model's vocabulary is made, for reports: int, int_gaps, letters or mixed."""
  numbers = [v for v in settings.vocab if isinstance(v, (int, float)) and not isinstance(v, bool)]
  if not numbers:
    return "letters"
  if len(numbers) < len(settings.vocab):
    return "mixed"
  return "int" if sorted(numbers) == list(range(len(numbers))) else "int_gaps"


def coverage(generation: dict | None) -> dict | None:
  """The settings ranges a dataset's generator config draws from, as plain numbers.

  Stored with a trained decompiler (config.json "trained_on"), so `decompile`
  can say when a model lies outside them without importing the generator.
  """
  if not generation:
    return None
  sops = [generation.get("min_sops", 1), generation.get("max_sops", 8)]
  if generation.get("mixed_settings"):
    return {"vocab_size": list(VOCAB_SIZES), "max_seq_len": list(MAX_SEQ_LENS),
            "mlp_exactness": list(MLP_EXACTNESS), "n_ops": sops}
  fixed = generation.get("settings") or {}
  vocab, n = len(fixed.get("vocab") or ()), fixed.get("max_seq_len")
  return {"vocab_size": [vocab, vocab] if vocab else None, "max_seq_len": [n, n] if n else None,
          "mlp_exactness": [fixed["mlp_exactness"]] if fixed.get("mlp_exactness") else None, "n_ops": sops}
