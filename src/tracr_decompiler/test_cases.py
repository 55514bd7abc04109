"""Named programs shared by every stage's tests (tracr's test_cases.py style)."""

from __future__ import annotations

from tracr_decompiler.program import ir

L = ir.Line

PROGRAMS = {
    "frac_prevs": ir.make_program([
        L("map", "numerical", "eq1", ("tokens",), "bools"),
        L("aggregate", "numerical", "LEQ", ("indices", "indices", "bools"), "frac")]),
    "sort_unique": ir.make_program([
        L("selector_width", "categorical", "LT", ("tokens", "tokens"), "smaller"),
        L("aggregate", "categorical", "EQ", ("smaller", "indices", "tokens"), "sort")]),
    "mixed": ir.make_program([  # drawn by the generator (seed 11): valid under tracr
        L("map", "numerical", "mod2", ("tokens",), "v1"),
        L("sequence_map", "categorical", "max", ("indices", "tokens"), "v2"),
        L("aggregate", "numerical", "LEQ", ("indices", "indices", "v1"), "v3"),
        L("map", "categorical", "eq0", ("v3",), "v4"),
        L("map", "categorical", "not", ("v4",), "v5"),
        L("selector_width", "categorical", "NEQ", ("v2", "v5"), "v6")]),
    "linear": ir.make_program([
        L("map", "numerical", "ident", ("tokens",), "x"),
        L("map", "numerical", "eq0", ("indices",), "y"),
        L("linear_sequence_map", "numerical", "lin_2_m1", ("x", "y"), "z")]),
}

# Sources the parser must reject, with a fragment of the expected message.
BAD_SOURCES = {
    "unknown_function": ("v1 = rasp.Map(lambda x: x ** 3, rasp.tokens)", "unknown function"),
    "syntax": ("v1 = rasp.Map(lambda x: x +, rasp.tokens)", "not valid Python"),
    "undefined": ("v1 = rasp.Map(lambda x: x + 1, v0)", "expected an SOp"),
    "call": ("import os\nos.system('echo hi')", "only assignments"),
    "factor": ("v1 = rasp.numerical(rasp.LinearSequenceMap(rasp.tokens, rasp.tokens, 7, 7))", "not in the registry"),
    "empty": ("", "no RASP operations"),
    "comparison": ("v1 = rasp.SelectorWidth(rasp.Select(rasp.tokens, rasp.tokens, rasp.Comparison.XOR))",
                   "unknown comparison"),
}
