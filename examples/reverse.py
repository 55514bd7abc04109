"""tracr's lib.make_reverse as RASP source that `tracr-decompiler compile` reads (its syntax tree, never exec)."""
from tracr.rasp import rasp

length = rasp.categorical(rasp.SelectorWidth(rasp.Select(rasp.tokens, rasp.tokens, rasp.Comparison.TRUE)))
opp_idx = rasp.categorical(rasp.SequenceMap(lambda x, y: x - y, length, rasp.indices))
opp_idx_1 = rasp.categorical(rasp.Map(lambda x: x - 1, opp_idx, simplify=False))
reverse = rasp.categorical(rasp.Aggregate(rasp.Select(rasp.indices, opp_idx_1, rasp.Comparison.EQ), rasp.tokens,
                                          default=None))
program = reverse
