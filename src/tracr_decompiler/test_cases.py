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
    "mixed": ir.make_program([
        L("map", "categorical", "inc", ("tokens",), "a"),
        L("sequence_map", "categorical", "add", ("a", "indices"), "b"),
        L("map", "numerical", "gt2", ("tokens",), "c"),
        L("aggregate", "numerical", "GEQ", ("tokens", "indices", "c"), "d"),
        L("map", "categorical", "gthalf", ("d",), "e"),
        L("selector_width", "categorical", "EQ", ("b", "e"), "f")]),
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
