#!/usr/bin/env python3
"""Compares two `ecf8 run --dump-logits` files (float32): bit-identical, or max |a - b| relative to max |b|.

usage: compare_logits.py A B [--rtol R]   exits 1 when they differ by more than R (default 0: identical bits)
"""
import sys

import numpy as np

args = sys.argv[1:]
rtol = 0.0
if "--rtol" in args:
    i = args.index("--rtol")
    rtol = float(args[i + 1])
    del args[i : i + 2]
if len(args) != 2:
    sys.exit(__doc__)
a, b = (np.fromfile(p, dtype=np.float32) for p in args)
if a.shape != b.shape:
    sys.exit(f"{args[0]} has {a.size} logits, {args[1]} has {b.size}")
if not np.isfinite(a).all() or not np.isfinite(b).all():
    sys.exit("non-finite logits")
diff = float(np.max(np.abs(a.astype(np.float64) - b))) if a.size else 0.0
scale = max(1.0, float(np.max(np.abs(b))) if b.size else 1.0)
same = a.tobytes() == b.tobytes()
print(f"{args[0]} vs {args[1]}: {a.size} logits, {'bit-identical' if same else 'differ'}, "
      f"max |a - b| = {diff:.3g} ({diff / scale:.3g} of max |b| = {scale:.3g})")
sys.exit(0 if same or diff <= rtol * scale else 1)
