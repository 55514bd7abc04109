"""The inputs a model and a program are compared on: one policy, used everywhere.

Valid inputs of a Tracr model are BOS followed by 1..max_seq_len vocab tokens.
When there are at most MAX_EXHAUSTIVE of them, all are used and a match is a
statement about every input; otherwise a fixed-seed sample of SAMPLED inputs
over all lengths is used, and every report says "sampled".

Tokens are grouped by length into arrays: the token values themselves when the
vocab is all numbers, else codes into `labels` (see program/evaluate.py).
"""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np

from tracr_decompiler.program import evaluate

MAX_EXHAUSTIVE = 5000  # vocab 5, max_seq_len 5 has 3,905 inputs: checked exhaustively
SAMPLED = 2000  # otherwise this many, lengths uniform in 1..max_seq_len


@dataclasses.dataclass(frozen=True)
class InputSet:
  inputs: list[tuple]  # token sequences without BOS
  exhaustive: bool  # True when `inputs` is every valid input
  labels: tuple | None  # code table for tokens when they are not all numbers
  batches: dict[int, np.ndarray]  # length -> tokens [N, L] (values, or codes into labels)
  index: dict[int, list[int]]  # length -> positions in `inputs`, in batch row order

  def __len__(self) -> int:
    return len(self.inputs)

  def describe(self) -> str:
    return f"all {len(self)}" if self.exhaustive else f"{len(self)} sampled"


def input_count(vocab_size: int, max_seq_len: int) -> int:
  return sum(vocab_size ** n for n in range(1, max_seq_len + 1))


def from_inputs(inputs: list[tuple], exhaustive: bool) -> InputSet:
  labels = evaluate.token_labels(inputs)
  code = {evaluate.value_key(t): i for i, t in enumerate(labels)} if labels is not None else None
  index = evaluate.group_by_length(inputs)
  batches = {}
  for n, idx in index.items():
    rows = [inputs[i] for i in idx]
    batches[n] = (np.array(rows, dtype=float) if code is None
                  else np.array([[code[evaluate.value_key(t)] for t in r] for r in rows], dtype=float))
  return InputSet(inputs, exhaustive, labels, batches, index)


def input_set(vocab, max_seq_len: int, seed: int = 0, max_exhaustive: int = MAX_EXHAUSTIVE,
              samples: int = SAMPLED) -> InputSet:
  """Every input when there are at most `max_exhaustive`, else a fixed-seed sample."""
  vocab = sorted(vocab, key=lambda v: (type(v).__name__, v))
  if input_count(len(vocab), max_seq_len) <= max_exhaustive:  # exact (Python ints): vocab 16 x length 12 is 3e14
    inputs = [seq for n in range(1, max_seq_len + 1) for seq in itertools.product(vocab, repeat=n)]
    return from_inputs(inputs, True)
  rng = np.random.default_rng(seed)
  lengths = rng.integers(1, max_seq_len + 1, size=samples)
  inputs = [tuple(vocab[i] for i in rng.integers(0, len(vocab), size=k)) for k in lengths]
  return from_inputs(inputs, False)

