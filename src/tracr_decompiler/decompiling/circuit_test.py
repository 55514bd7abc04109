"""The circuit a decompiled program implies, against the published official circuit of tracr's make_reverse."""

import json

import pytest
from tracr.compiler import lib
from tracr.rasp import rasp

from tracr_decompiler import cli
from tracr_decompiler.compiling import compiler
from tracr_decompiler.decompiling.decompile import decompile
from tracr_decompiler.loading import tl_files

SETTINGS = compiler.CompileSettings(compiler_bos="BOS")

# auto-circuit 1.0.1, metrics/official_circuits/circuits/tracr/reverse_official.py, `tracr_reverse_acdc_edges`:
# the ACDC circuit of tracr-reverse (Conmy et al. 2023), the set of edges to keep under zero ablation. Its model is
# `Aggregate(Select(indices, length - indices - 1, EQ), tokens)` with length = SelectorWidth(Select(TRUE)),
# which is lib.make_reverse.
OFFICIAL_REVERSE = {
    "A3.0->Resid End", "MLP 2->A3.0.Q", "Resid Start->A3.0.K", "Resid Start->A3.0.V", "MLP 1->MLP 2",
    "MLP 0->MLP 1", "Resid Start->MLP 1", "A0.0->MLP 0", "Resid Start->MLP 0", "Resid Start->A0.0.V"}
# What the weights read beyond it (docs/usage.md, "Circuits"): the selector-width head's query and key (its TRUE
# comparison and always-attend-to-BOS term) and the reversing head's query reading `one` (tracr's BOS default).
EXTRA_REVERSE = {"Resid Start->A0.0.Q", "Resid Start->A0.0.K", "Resid Start->A3.0.Q"}
# auto-circuit's `tracr_xproportion_acdc_edges`: make_frac_prevs(tokens == "x").
OFFICIAL_XPROPORTION = {"A1.0->Resid End", "Resid Start->A1.0.Q", "Resid Start->A1.0.K", "MLP 0->A1.0.V",
                        "Resid Start->MLP 0"}


@pytest.fixture(scope="module")
def reverse():
  model = compiler.tracr_compile(lib.make_reverse(rasp.tokens), SETTINGS)
  return model, decompile(model)


def test_make_reverse_contains_the_official_circuit_and_the_rest_is_explained(reverse):
  _, result = reverse
  assert result.status == "proved" and result.circuit is not None and result.circuit.exact
  edges = {result.circuit.auto_circuit(e) for e in result.circuit.edges}
  assert OFFICIAL_REVERSE <= edges, OFFICIAL_REVERSE - edges
  assert edges - OFFICIAL_REVERSE == EXTRA_REVERSE


def test_frac_prevs_matches_the_official_xproportion_circuit():
  model = compiler.tracr_compile(lib.make_frac_prevs(rasp.tokens == 1), SETTINGS)
  result = decompile(model)
  assert result.status == "proved" and result.circuit is not None
  edges = {result.circuit.auto_circuit(e) for e in result.circuit.edges}
  assert edges == OFFICIAL_XPROPORTION


def test_every_component_names_its_sops_and_lines_and_hooks_are_transformerlens_names(reverse):
  _, result = reverse
  c = result.circuit
  assert c is not None
  by = {x.name: x for x in c.components}
  assert by["A0.0"].sops == by["MLP 0"].sops == ("v1",) and by["A3.0"].lines == (4,)  # a selector width: both
  hooks = {c.tl_hook(e) for e in c.edges}
  assert ("blocks.2.hook_mlp_out", "blocks.3.hook_q_input[0]") in hooks
  assert ("blocks.3.attn.hook_result[0]", "blocks.3.hook_resid_post") in hooks
  assert all(e.carries for e in c.edges)
  assert next(e for e in c.edges if c.auto_circuit(e) == "MLP 2->A3.0.Q").carries == ("v3",)


def test_cli_writes_the_circuit_json(tmp_path, capsys, reverse):
  model, result = reverse
  tl_files.save(model, tmp_path / "reverse.safetensors")
  assert cli.main(["decompile", str(tmp_path / "reverse.safetensors"), "--circuit", str(tmp_path / "c.json")]) == 0
  assert "# circuit (" in capsys.readouterr().out
  doc = json.loads((tmp_path / "c.json").read_text())
  assert doc["format"] == "tracr-decompiler/circuit" and doc["exact"] is True
  assert {e["auto_circuit"] for e in doc["edges"]} == {result.circuit.auto_circuit(e) for e in result.circuit.edges}
