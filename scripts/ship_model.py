"""Ships a run's last checkpoint as the packaged model: weights in float16 (half the size; loading casts back
to float32) and the config with what it was trained on.

Run:  python scripts/ship_model.py RUN [DEST]     (DEST: src/tracr_decompiler/pretrained)
"""

import pathlib
import shutil
import sys

from safetensors.torch import load_file, save_file


def main(run: str, dest: str = "src/tracr_decompiler/pretrained") -> None:
  src, dst = pathlib.Path(run) / "last", pathlib.Path(dest)
  dst.mkdir(parents=True, exist_ok=True)
  weights = load_file(src / "model.safetensors")
  save_file({k: (v.half() if v.is_floating_point() else v).contiguous() for k, v in weights.items()},
            dst / "model.safetensors")
  shutil.copy(src / "config.json", dst / "config.json")
  print("shipped", src, "->", dst)


if __name__ == "__main__":
  main(*sys.argv[1:])
