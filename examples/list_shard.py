#!/usr/bin/env python3
"""List the tensors of one ECF8 rank file with the `safetensors` package (pip install safetensors numpy).

An ECF8 shard is a valid safetensors file: each tensor is stored as one U8 blob (the ECF8 stream), and the
file's metadata says, per tensor, the original dtype and shape, the encoding and the checksums
(docs/FORMAT.md). This script needs nothing from ecf8.

Usage: python3 examples/list_shard.py out/examples/tiny/shards/rank-00000-of-00002.safetensors [--top N]
"""
import argparse
import json
import sys

import numpy as np
from safetensors import safe_open

ITEM_BYTES = {"F8_E4M3": 1, "F8_E5M2": 1, "BF16": 2, "F16": 2, "F32": 4, "F64": 8, "I64": 8, "I32": 4, "U8": 1}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("file", help="an ECF8 rank file (rank-RRRRR-of-WWWWW.safetensors)")
    parser.add_argument("--top", type=int, default=12, help="tensors listed, largest first (default 12)")
    args = parser.parse_args()

    with safe_open(args.file, framework="numpy") as f:
        meta = f.metadata() or {}
        if meta.get("ecf8.format") is None:
            print(f"{args.file}: no ecf8.format in the metadata; not an ECF8 file", file=sys.stderr)
            return 1
        rows = []
        for name in f.keys():
            blob = f.get_tensor(name)  # the stored bytes, a U8 array
            info = json.loads(meta.get("ecf8:" + name, "{}"))
            shape = info.get("shape", list(blob.shape))
            dtype = info.get("dtype", str(blob.dtype))
            original = int(np.prod(shape, dtype=np.int64)) * ITEM_BYTES.get(dtype, 1)
            rows.append((name, dtype, shape, info.get("encoding", "raw"), blob.nbytes, original))

    rank, world = meta.get("ecf8.rank", "?"), meta.get("ecf8.world_size", "?")
    stored = sum(r[4] for r in rows)
    original = sum(r[5] for r in rows)
    print(f"{args.file}: ECF8 format {meta['ecf8.format']}, rank {rank} of {world}, {len(rows)} tensors")
    print(f"  {stored:,} bytes stored for {original:,} original bytes: {100.0 * stored / original:.2f}%")
    print(f"\n  {'tensor':<56} {'dtype':<8} {'shape':<16} {'encoding':<8} {'ratio':>7}")
    for name, dtype, shape, encoding, nbytes, orig in sorted(rows, key=lambda r: -r[5])[: args.top]:
        print(f"  {name:<56} {dtype:<8} {str(shape):<16} {encoding:<8} {100.0 * nbytes / orig:6.2f}%")
    return 0


if __name__ == "__main__":
    sys.exit(main())
