"""Checks that two training runs got the same results; exit status 1 and the differences if not.

  python launch/compare_runs.py RUN_A RUN_B

Compares every number in metrics.jsonl (per step; wall-clock rates excepted) and in the
<split>_metrics.json files, to a relative 1e-4: identical computations on different process
layouts may still sum partial results in a different order.
"""
import glob
import json
import os
import sys

import numpy as np

RTOL = 1e-4
ATOL = 1e-6
WALL_CLOCK = ("train/images_per_sec",)


def _flatten(tree, prefix):
  """{path: leaf} for nested dicts and lists."""
  if isinstance(tree, dict):
    items = tree.items()
  elif isinstance(tree, list):
    items = enumerate(tree)
  else:
    return {prefix: tree}
  flat = {}
  for key, value in items:
    flat.update(_flatten(value, f"{prefix}/{key}"))
  return flat


def load_results(run_dir):
  """Every result of a run as {path: leaf}: metrics.jsonl merged per step, then *_metrics.json."""
  results = {}
  with open(os.path.join(run_dir, "metrics.jsonl"), encoding="utf-8") as f:
    for line in filter(str.strip, f):
      record = json.loads(line)
      step = record.pop("step")
      for name in WALL_CLOCK:
        record.pop(name, None)
      results.update(_flatten(record, f"metrics.jsonl/step {step}"))
  split_files = sorted(glob.glob(os.path.join(run_dir, "*_metrics.json")))
  if not split_files:
    raise FileNotFoundError(f"no *_metrics.json in {run_dir}: did the run finish?")
  for path in split_files:
    with open(path, encoding="utf-8") as f:
      results.update(_flatten(json.load(f), os.path.basename(path)))
  return results


def differences(a, b):
  """Lines describing each path missing from one side or with values that differ."""
  lines = [f"{path}: only in the first run" for path in sorted(a.keys() - b.keys())]
  lines += [f"{path}: only in the second run" for path in sorted(b.keys() - a.keys())]
  for path in sorted(a.keys() & b.keys()):
    x, y = a[path], b[path]
    numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (x, y))
    same = (np.isclose(x, y, rtol=RTOL, atol=ATOL, equal_nan=True) if numbers else x == y)
    if not same:
      lines.append(f"{path}: {x!r} != {y!r}")
  return lines


def main(argv):
  if len(argv) != 3:
    print(__doc__, file=sys.stderr)
    return 2
  a, b = load_results(argv[1]), load_results(argv[2])
  lines = differences(a, b)
  if lines:
    print(f"MISMATCH: {len(lines)} of {len(a.keys() | b.keys())} results differ between "
          f"{argv[1]} and {argv[2]}:", file=sys.stderr)
    print("\n".join(f"  {line}" for line in lines[:20]), file=sys.stderr)
    return 1
  print(f"match: {len(a)} results agree (rtol {RTOL:g}) between {argv[1]} and {argv[2]}")
  return 0


if __name__ == "__main__":
  sys.exit(main(sys.argv))
