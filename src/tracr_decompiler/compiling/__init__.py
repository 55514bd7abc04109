"""Programs to weights and back: tracr's passes, our fast compiler, model files and outputs."""
