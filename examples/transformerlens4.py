"""Decompile a tracr model held in TransformerLens 4 (run from any folder: it writes hist.safetensors/.json there)."""
import json

import safetensors.torch
from tracr.compiler import compiling, lib
from transformer_lens.model_bridge import TransformerBridge
from transformer_lens.utilities import tracr as tl_tracr

import tracr_decompiler

# A tracr model in a TransformerBridge, built with TransformerLens' own converter.
program = lib.make_hist()
model = compiling.compile_rasp_to_model(program, {0, 1, 2, 3, 4}, 5, compiler_bos="BOS")
bridge = TransformerBridge.boot_native(tl_tracr.make_tracr_transformer_bridge_config(model))
bridge.load_state_dict(tl_tracr.make_tracr_transformer_bridge_state_dict(model, output_label=program.label),
                       strict=False)  # TransformerLens 4.3's converter names the MLPs fc_in/fc_out

# The weights do not say which token is which embedding row, or what the outputs are: tracr's encoders do.
result = tracr_decompiler.decompile(bridge, input_encoder=model.input_encoder, output_encoder=model.output_encoder)
print(result.source)
print(result.status, "|", result.output_block)

# The bridge's state dict (canonical names `embed.weight`, `blocks.0.attn.q.weight`, ...) does not say how many
# heads a layer has either; as a file, those settings go in a JSON beside it (or flags on the command line).
outputs = sorted(model.output_encoder.encoding_map, key=model.output_encoder.encoding_map.get)
safetensors.torch.save_file({k: v.contiguous() for k, v in bridge.state_dict().items()}, "hist.safetensors")
with open("hist.json", "w") as f:
  json.dump({"vocab": [0, 1, 2, 3, 4], "bos": "BOS", "n_heads": bridge.cfg.n_heads, "output_values": outputs}, f)
print(tracr_decompiler.decompile("hist.safetensors").status)  # the same as `tracr-decompiler decompile hist.safetensors`
