"""Programs to weights and back: tracr's passes, our fast compiler, model files and outputs."""

from tracr_decompiler.compiling import tracr_passes

# Before any module here imports a tracr pass: those imports would otherwise pull in JAX (tracr_passes.py).
tracr_passes.defer_init()
