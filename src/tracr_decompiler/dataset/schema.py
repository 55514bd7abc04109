"""The dataset's Parquet schema: every column, who writes it, and how to read it back.

One row per program. Weight matrices are stored sparse (Tracr weights are
1-4 % non-zero): row/col indices and values of the non-zero entries.

Example row (abridged):
    id            "3f9c0e1a2b4d5e6f"             sha256 of `source`, 16 hex digits
    source        "from tracr.rasp import rasp\\n\\nv1 = rasp.categorical(...)\\nprogram = v2\\n"
    lines         [{"op": "map", "encoding": "categorical", "fn": "inc", "args": ["tokens"], "out": "v1"}, ...]
    n_sops        2
    split         "train"                        from the hash of `source` (never from order)
    settings      '{"vocab": [0, 1, 2, 3, 4], "max_seq_len": 5, ...}'
    weights       [{"name": "transformer/layer_0/mlp/linear_1/w", "layer": 0, "kind": "mlp",
                    "shape": [23, 5], "rows": [...], "cols": [...], "values": [...]}, ...]
    residual_labels ["indices:0", ..., "v1:1", ...]   analysis only, never a model input
    allocation    [{"var": "v1", "layer": 0, "sublayer": "mlp"}, ...]
    input_encoding  '{"0": 0, ..., "compiler_bos": 5, ...}' (JSON; keys are JSON-encoded tokens)
    output_values   '[1, 2, 3, 4, 5]'  (JSON; empty for a numerical output)
"""

from __future__ import annotations

import pyarrow as pa

SCHEMA_VERSION = 1

LINE = pa.struct([("op", pa.string()), ("encoding", pa.string()), ("fn", pa.string()),
                  ("args", pa.list_(pa.string())), ("out", pa.string())])
WEIGHT = pa.struct([("name", pa.string()), ("layer", pa.int32()), ("kind", pa.string()),
                    ("shape", pa.list_(pa.int32())), ("rows", pa.list_(pa.int32())),
                    ("cols", pa.list_(pa.int32())), ("values", pa.list_(pa.float32()))])
ALLOCATION = pa.struct([("var", pa.string()), ("layer", pa.int32()), ("sublayer", pa.string())])

SCHEMA = pa.schema([
    ("id", pa.string()),
    ("source", pa.string()),
    ("lines", pa.list_(LINE)),
    ("n_sops", pa.int32()),
    ("split", pa.string()),
    ("settings", pa.string()),
    ("num_layers", pa.int32()),
    ("num_heads", pa.int32()),
    ("key_size", pa.int32()),
    ("weights", pa.list_(WEIGHT)),
    ("residual_labels", pa.list_(pa.string())),
    ("allocation", pa.list_(ALLOCATION)),
    ("input_encoding", pa.string()),
    ("output_values", pa.string()),
    ("categorical_output", pa.bool_()),
    ("output_dims", pa.list_(pa.int32())),
], metadata={"schema_version": str(SCHEMA_VERSION)})

SPLITS = ("train", "val", "test")
