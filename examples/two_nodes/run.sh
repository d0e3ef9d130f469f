#!/usr/bin/env bash
# The tiny synthetic DeepSeek-V3 chatting across two nodes with a hostfile: one rank per node, tensor and
# expert parallel over MPI between them (docs/MULTINODE.md explains the layout and the network options).
#
# Usage: examples/two_nodes/run.sh HOSTFILE ["message"]
#   HOSTFILE: two lines like hosts.example. Needs passwordless ssh from this node to the other, the same
#   Open MPI on both, and ecf8 and WORK at the same paths on both (a shared filesystem, or copies).
#   ECF8=path/to/ecf8 (default build/launcher/ecf8), WORK=dir (default out/examples, run from there),
#   MPIRUN_ARGS="..." more mpirun options, e.g. "--mca btl_tcp_if_include eth0 --mca oob_tcp_if_include eth0".
# CI runs this script on two emulated nodes (network namespaces): tests/examples/examples_test.sh.
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
hostfile=$(realpath "${1:?usage: run.sh HOSTFILE [message]}")
message=${2:-"Hello from two nodes!"}
ecf8=${ECF8:-$repo/build/launcher/ecf8}
work=${WORK:-$repo/out/examples}
config=$repo/examples/two_nodes/tiny-2node.yaml
mkdir -p "$work" && cd "$work"

# Made once on this node; the other node reads them through the same path.
[ -f tiny/model/tokenizer.json ] || "$ecf8" synth --arch deepseek-v3 --preset tiny --out tiny/model >/dev/null
[ -f tiny/shards-2node/manifest.json ] || "$ecf8" shard --config "$config" >/dev/null

# -x forwards variables to the ranks (ssh does not carry the environment over).
forward=(-x PATH)
[ -z "${LD_LIBRARY_PATH:-}" ] || forward+=(-x LD_LIBRARY_PATH)
# shellcheck disable=SC2086  # MPIRUN_ARGS is a list of options
mpirun -np 2 --hostfile "$hostfile" --map-by slot "${forward[@]}" ${MPIRUN_ARGS:-} \
    "$ecf8" run --config "$config" --chat "$message" --max-new-tokens 16
