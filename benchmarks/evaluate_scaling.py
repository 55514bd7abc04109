"""`evaluate --workers 2` against one worker on the same programs, side by side, through the CLI.

Run:  python benchmarks/evaluate_scaling.py [--programs 200] [--seed 11] [--beam 4] [--rounds 1] [--ray]

Generates `--programs` fresh programs (vocab {0..4}, length 5, up to 6 SOps) into a temporary folder, then
runs `tracr-decompiler evaluate --split all` on them with `--workers 1` and `--workers 2` (and, with `--ray`,
on a local Ray cluster), alternating for `--rounds` rounds, each into a fresh output folder so nothing is
resumed. Prints each run's wall time, the speed-up of two workers over one, and whether every per-program
record (statuses, sources, scores; the measured seconds aside) is the same as one worker's.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import subprocess
import sys
import tempfile
import time

CLI = [sys.executable, "-m", "tracr_decompiler.cli"]


def _records(out: pathlib.Path) -> list[dict]:
  records = json.loads((out / "report.json").read_text())["records"]
  return [{k: v for k, v in r.items() if not k.endswith("seconds")} for r in records]


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--programs", type=int, default=200)
  parser.add_argument("--seed", type=int, default=11)
  parser.add_argument("--beam", type=int, default=4)
  parser.add_argument("--rounds", type=int, default=1)
  parser.add_argument("--ray", action="store_true", help="also run with --ray on a local cluster")
  args = parser.parse_args()
  with tempfile.TemporaryDirectory() as tmp:
    data = pathlib.Path(tmp) / "data"
    subprocess.run([*CLI, "generate", "--n", str(args.programs), "--max-sops", "6", "--seed", str(args.seed),
                    "--workers", "2", "--out", str(data), "--quiet"], check=True)
    variants = {"1 worker": ["--workers", "1"], "2 workers": ["--workers", "2"]}
    if args.ray:
      variants["ray (local, 2 CPUs)"] = ["--ray", "local"]
    times: dict[str, list[float]] = {v: [] for v in variants}
    reference = None
    same: dict[str, bool] = {}
    for r in range(args.rounds):
      for name, flags in (variants.items() if r % 2 == 0 else reversed(variants.items())):
        out = pathlib.Path(tmp) / f"out-{r}-{name.split()[0]}"
        t = time.perf_counter()
        env = dict(os.environ, RAY_ADDRESS="") if "--ray" in flags else os.environ
        subprocess.run([*CLI, "evaluate", "--data", str(data), "--split", "all", "--limit", str(args.programs),
                        "--beam", str(args.beam), "--out", str(out), "--quiet", *flags],
                       check=True, stdout=subprocess.DEVNULL, env=env)
        times[name].append(time.perf_counter() - t)
        records = _records(out)
        if name == "1 worker" and reference is None:
          reference = records
        same[name] = same.get(name, True) and (reference is None or records == reference)
        print(f"round {r}: {name}: {times[name][-1]:.1f} s, {len(records)} programs", flush=True)
  best = {name: min(ts) for name, ts in times.items()}
  print(f"\n{args.programs} programs (generated with seed {args.seed}), beam {args.beam}, best of "
        f"{args.rounds} round(s), on {os.cpu_count()} CPUs:")
  print("| run | wall (s) | speed-up over 1 worker | records same as 1 worker |")
  print("|---|---|---|---|")
  for name in times:
    print(f"| {name} | {best[name]:.1f} | {best['1 worker'] / best[name]:.2f}x | {same[name]} |")


if __name__ == "__main__":
  main()
