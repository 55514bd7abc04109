"""The command line: end to end on a lib program, and one-line errors for bad input."""

import json
import subprocess
import sys

import hypothesis
import hypothesis.strategies as st
import numpy as np
import pytest
from safetensors.numpy import save_file

from tracr_decompiler import cli, test_cases
from tracr_decompiler.compiling import compiler
from tracr_decompiler.loading import model_io
from tracr_decompiler.program import source

SORT_UNIQUE = source.to_source(test_cases.PROGRAMS["sort_unique"])  # tracr's lib.make_sort_unique(tokens, tokens)


def _run(*args):
  return subprocess.run([sys.executable, "-m", "tracr_decompiler.cli", *args], capture_output=True, text=True)


def test_compile_then_decompile_a_lib_program(tmp_path):
  (tmp_path / "sort.py").write_text(SORT_UNIQUE)
  r = _run("compile", str(tmp_path / "sort.py"), "--out", str(tmp_path / "sort.safetensors"))
  assert r.returncode == 0, r.stderr
  r = _run("decompile", str(tmp_path / "sort.safetensors"))
  assert r.returncode == 0, r.stderr
  decompiled = source.parse_source(r.stdout)  # what it prints is valid RASP source
  assert "# verified" in r.stdout or "# UNVERIFIED" in r.stdout
  if "# verified" in r.stdout:
    from tracr_decompiler.evaluation import metrics
    assert metrics.functional(decompiled, test_cases.PROGRAMS["sort_unique"], compiler.CompileSettings())


def test_a_folder_of_models_is_decompiled_in_turn_and_a_bad_one_is_one_line_in_its_place(tmp_path):
  """decompile DIR / several paths: each model as it would come back alone; a bad file does not stop the rest."""
  folder = tmp_path / "models"
  folder.mkdir()
  for name in ("frac_prevs", "sort_unique"):
    model_io.save_model(compiler.compile_program(test_cases.PROGRAMS[name]), str(folder / f"{name}.safetensors"))
  (folder / "broken.safetensors").write_bytes(b"not a model")
  (folder / "notes.txt").write_text("not a model either, and not a .safetensors file: left alone")
  r = _run("decompile", str(folder))
  assert r.returncode == 2, r.stderr
  assert len(r.stderr.strip().splitlines()) == 1 and "1 of 3 models" in r.stderr, r.stderr
  blocks = r.stdout.split("## ")[1:]
  assert [b.splitlines()[0] for b in blocks] == [str(folder / f) for f in
                                                 ("broken.safetensors", "frac_prevs.safetensors", "sort_unique.safetensors")]
  assert blocks[0].splitlines()[1].startswith("# error: ")
  alone = _run("decompile", str(folder / "frac_prevs.safetensors"))
  body = lambda text: [l for l in text.splitlines() if not l.startswith("# verified")]  # seconds differ
  assert body("\n".join(blocks[1].splitlines()[1:])) == body(alone.stdout)
  assert "# verified (proved)" in blocks[1] and "# verified (proved)" in blocks[2]
  assert r.stdout.splitlines()[-1] == "# 3 models: 2 proved, 1 refused"
  r = _run("decompile", str(folder / "frac_prevs.safetensors"), str(folder / "sort_unique.safetensors"),
           "--report", str(tmp_path / "r.html"))
  assert r.returncode == 2 and "--report names one file" in r.stderr, r.stderr


@pytest.mark.parametrize("args,fragment", [
    (["compile", "/nonexistent.py", "--out", "/tmp/x.safetensors"], "cannot read"),
    (["decompile", "/nonexistent.safetensors"], "cannot read"),
    (["generate", "--n", "0", "--out", "/tmp/tdx"], "--n: 0 is out of range"),
    (["generate", "--n", "5", "--out", "/proc/forbidden/x"], "cannot create folder /proc/forbidden/x"),
    (["generate", "--n", "5", "--out", "/tmp/tdy", "--min-sops", "5", "--max-sops", "2"], "min_sops"),
])
def test_bad_input_gives_one_line(args, fragment, capsys):
  try:
    code = cli.main(args)
  except SystemExit as e:  # argparse's rejections
    code = e.code
  assert code == 2
  err = capsys.readouterr().err.strip()
  assert len(err.splitlines()) == 1 and fragment in err and "Traceback" not in err


def test_unknown_function_in_source(tmp_path, capsys):
  (tmp_path / "bad.py").write_text("v1 = rasp.Map(lambda x: x ** 3, rasp.tokens)\n")
  assert cli.main(["compile", str(tmp_path / "bad.py"), "--out", str(tmp_path / "o.safetensors")]) == 2
  assert "unknown function" in capsys.readouterr().err


def _valid_file(path):
  model_io.save_model(compiler.compile_program(test_cases.PROGRAMS["frac_prevs"]), str(path))
  return path.read_bytes()


def _corruptions(good: bytes, rng: np.random.Generator, tmp_path):
  """Truncations, byte flips, random bytes, and well-formed files with bad contents."""
  for i in range(60):
    yield good[:int(rng.integers(0, len(good)))]
  for i in range(60):
    b = bytearray(good)
    for j in rng.integers(0, len(b), size=int(rng.integers(1, 20))):
      b[j] = int(rng.integers(0, 256))
    yield bytes(b)
  for i in range(40):
    yield rng.bytes(int(rng.integers(0, 2000)))
  model = compiler.compile_program(test_cases.PROGRAMS["frac_prevs"])
  tensors = {f"{m}/{p}": v for m, ps in model.params.items() for p, v in ps.items()}
  meta = json.loads(json.dumps({"format_version": 1, "settings": model.settings.to_json(), "num_layers": model.num_layers,
                                "num_heads": model.num_heads, "key_size": model.key_size,
                                "input_encoding": [[t, i] for t, i in model.input_encoding.items()]}))
  variants = []
  for key, value in [("format_version", 99), ("num_layers", 7), ("key_size", -1), ("settings", "x"),
                     ("input_encoding", [[0, 99]]), ("num_heads", 10**9)]:
    variants.append(({**meta, key: value}, tensors))
  nan = dict(tensors)
  nan["token_embed/embeddings"] = np.full_like(tensors["token_embed/embeddings"], np.nan)
  variants.append((meta, nan))
  wrong = dict(tensors)
  wrong["transformer/layer_0/attn/query/w"] = np.zeros((3, 3), np.float32)
  variants.append((meta, wrong))
  noise = {k: rng.normal(size=v.shape).astype(np.float32) for k, v in tensors.items()}
  variants.append((meta, noise))  # right shapes, not a Tracr model
  variants.append(({"other": 1}, tensors))
  for k, (m, t) in enumerate(variants):
    p = tmp_path / f"v{k}.safetensors"
    save_file(t, str(p), metadata={model_io.META_KEY: json.dumps(m)})
    yield p.read_bytes()
  for k in range(30):  # metadata that is not JSON, or not an object
    p = tmp_path / f"m{k}.safetensors"
    save_file(tensors, str(p), metadata={model_io.META_KEY: rng.bytes(10).hex()[:k]})
    yield p.read_bytes()


def test_fuzz_malformed_model_files(tmp_path, capsys):
  good = _valid_file(tmp_path / "good.safetensors")
  rng = np.random.default_rng(0)
  count = 0
  for k, blob in enumerate(_corruptions(good, rng, tmp_path)):
    path = tmp_path / f"fuzz{k}.safetensors"
    path.write_bytes(blob)
    code = cli.main(["decompile", str(path), "--beam", "2"])
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    if code != 0:
      assert code == 2 and len(err.strip().splitlines()) == 1, err
    count += 1
  assert count >= 200


@hypothesis.settings(max_examples=60, deadline=None)
@hypothesis.given(st.binary(max_size=300))
def test_fuzz_program_files(tmp_path_factory, blob):
  path = tmp_path_factory.mktemp("src") / "p.py"
  path.write_bytes(blob)
  code = cli.main(["compile", str(path), "--out", str(path.with_suffix(".safetensors"))])
  assert code in (0, 2)


def test_train_from_a_bad_model_folder_fails_before_making_the_run_folder(tmp_path, capsys):
  from tracr_decompiler.dataset import writer
  from tracr_decompiler.generation.config import GenerationConfig
  data = tmp_path / "data"
  writer.build_dataset(writer.DatasetConfig(n=4, out=str(data), workers=1, seed=3, shard_size=4, val_percent=0,
                                            test_percent=0, generation=GenerationConfig(max_sops=2)), progress=False)
  code = cli.main(["train", "--data", str(data), "--out", str(tmp_path / "run"), "--init-from", str(tmp_path / "none")])
  err = capsys.readouterr().err.strip()
  assert code == 2 and len(err.splitlines()) == 1 and "cannot read" in err
  assert not (tmp_path / "run").exists()
