#!/usr/bin/env bash
# Runs an MPI program on two emulated nodes: two Linux network namespaces joined by a veth pair, with
# Open MPI launching RANKS_PER_NODE ranks into each one, so that traffic between the nodes crosses TCP.
#
# Usage: two_node_netns.sh WORKDIR -- PROGRAM [ARGS...]
#        two_node_netns.sh WORKDIR --script -- COMMAND [ARGS...]
#   The second form runs COMMAND (which starts mpirun itself) on node 0 with NETNS_HOSTFILE set to the
#   generated hostfile and MPIRUN_ARGS to the options that make mpirun reach node 1 (launch agent, network).
#   WORKDIR          folder for the generated hostfile and launch agent (created if missing)
#   RANKS_PER_NODE   ranks per node (default 1); world size = 2 x RANKS_PER_NODE, and rank r sits on node
#                    r / RANKS_PER_NODE (mpirun --map-by slot)
#   NETNS_TIMEOUT    seconds before mpirun is killed (default 300)
#   MIN_VETH_BYTES   bytes that must cross the veth in each direction (default 1024)
#   MPIRUN           the mpirun to use (default: mpirun on PATH)
# Exit status: PROGRAM's (through mpirun); 77 (skip) when namespaces cannot be made here (not root, no
# CAP_NET_ADMIN / CAP_SYS_ADMIN, no `ip` or `unshare`); 124 on timeout; 1 when too few bytes crossed the
# veth; 2 on bad usage.
set -euo pipefail

usage() {
    echo "usage: $0 WORKDIR -- PROGRAM [ARGS...]" >&2
    exit 2
}
skip() {
    echo "SKIP: $*" >&2
    exit 77
}

script=0
if [ $# -ge 4 ] && [ "$2" = "--script" ] && [ "$3" = "--" ]; then
    script=1
    set -- "$1" "${@:3}"
fi
if [ $# -lt 3 ] || [ "$2" != "--" ]; then usage; fi
work=$1
shift 2
rpn=${RANKS_PER_NODE:-1}
limit=${NETNS_TIMEOUT:-300}
min_bytes=${MIN_VETH_BYTES:-1024}
mpirun=${MPIRUN:-mpirun}
[[ $rpn =~ ^[1-9][0-9]*$ ]] || { echo "RANKS_PER_NODE must be a positive integer, got '$rpn'" >&2; exit 2; }
command -v "$mpirun" >/dev/null || { echo "error: $mpirun not found" >&2; exit 2; }
command -v timeout >/dev/null || { echo "error: timeout (coreutils) not found" >&2; exit 2; }
command -v ip >/dev/null || skip "the ip command (iproute2) is missing; cannot create network namespaces"
command -v unshare >/dev/null || skip "unshare (util-linux) is missing; cannot give each node its own hostname"

# $$ keeps concurrent runs apart. The veth ends are created inside the namespaces, so their names and the
# subnet never meet another run's (or the host's) interfaces. Each namespace name is also its node's
# hostname.
ns=("ecf8n0-$$" "ecf8n1-$$")
ips=(10.213.77.1 10.213.77.2)
subnet=10.213.77.0/24
veth=(ecf8veth0 ecf8veth1)

job=""  # the pid of timeout (whose child is mpirun) while it runs
stop_mpirun() {  # TERM lets mpirun end its ranks and daemons itself; give it 5 s
    [ -n "$job" ] && kill -0 "$job" 2>/dev/null || return 0
    kill -TERM "$job" 2>/dev/null || true
    for _ in $(seq 50); do
        kill -0 "$job" 2>/dev/null || return 0
        sleep 0.1
    done
}
cleanup() {
    local rc=$?
    stop_mpirun
    for n in "${ns[@]}"; do
        ip netns list 2>/dev/null | grep -qw "$n" || continue
        # A namespace outlives its name while processes hold it, so end what still runs in it first (only
        # processes inside our own namespaces); deleting the namespace then removes its veth end.
        for pid in $(ip netns pids "$n" 2>/dev/null); do
            echo "cleanup: killing pid $pid ($(cat "/proc/$pid/comm" 2>/dev/null)) left in $n" >&2
            kill -KILL "$pid" 2>/dev/null || true
        done
        ip netns del "$n" 2>/dev/null || echo "warning: could not delete namespace $n" >&2
    done
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Creating the first namespace is the capability check: it needs CAP_NET_ADMIN, and CAP_SYS_ADMIN for the
# bind mount under /run/netns.
if ! err=$(ip netns add "${ns[0]}" 2>&1); then
    [[ $err == *"File exists"* ]] && { echo "error: namespace ${ns[0]} exists already: $err" >&2; exit 1; }
    skip "cannot create a network namespace (need root, or CAP_NET_ADMIN and CAP_SYS_ADMIN): $err"
fi
ip netns add "${ns[1]}"
ip netns exec "${ns[0]}" unshare --uts hostname "${ns[0]}" 2>/dev/null ||
    skip "ip netns exec or unshare --uts does not work here (needs CAP_SYS_ADMIN)"
if ! err=$(ip link add "${veth[0]}" netns "${ns[0]}" type veth peer name "${veth[1]}" netns "${ns[1]}" 2>&1); then
    skip "cannot create a veth pair (veth driver missing?): $err"
fi
for i in 0 1; do
    ip -n "${ns[$i]}" addr add "${ips[$i]}/24" dev "${veth[$i]}"
    ip -n "${ns[$i]}" link set lo up
    ip -n "${ns[$i]}" link set "${veth[$i]}" up
done
# The link comes up asynchronously; wait until node 1 answers before starting a daemon that dials back.
if command -v ping >/dev/null; then
    for _ in $(seq 50); do
        ip netns exec "${ns[0]}" ping -c1 -W1 "${ips[1]}" >/dev/null 2>&1 && break
        sleep 0.1
    done
fi

mkdir -p "$work"
hostfile=$work/hostfile
agent=$work/rsh_agent.sh
printf '%s slots=%s\n' "${ips[0]}" "$rpn" "${ips[1]}" "$rpn" >"$hostfile"
# Open MPI starts a daemon (orted) on each non-local host as `AGENT [flags] HOST COMMAND...`, COMMAND
# being shell text as ssh would send it. This agent runs it in HOST's namespace instead of over ssh; the
# daemon inherits mpirun's environment (unlike ssh) and dials mpirun back over the veth. Each node gets its
# own hostname (a UTS namespace): Open MPI names vader's shared-memory segments and its session folders
# after the hostname, and two nodes that share one clobber each other's segments and crash.
cat >"$agent" <<EOF
#!/bin/sh
# Generated by two_node_netns.sh: Open MPI's rsh agent; runs COMMAND in the network namespace of HOST.
while [ \$# -gt 0 ]; do
    case "\$1" in
        ${ips[0]}) ns=${ns[0]}; shift; break ;;
        ${ips[1]}) ns=${ns[1]}; shift; break ;;
        -*) shift ;;  # ssh-style flags
        *) echo "rsh_agent: unknown host \$1" >&2; exit 255 ;;
    esac
done
[ -n "\${ns:-}" ] || { echo "rsh_agent: no host given" >&2; exit 255; }
exec ip netns exec "\$ns" unshare --uts /bin/sh -c 'hostname "\$0" && exec /bin/sh -c "\$1"' "\$ns" "\$*"
EOF
chmod +x "$agent"

bytes() {  # bytes rx|tx: a counter of node 0's veth end
    ip netns exec "${ns[0]}" cat "/sys/class/net/${veth[0]}/statistics/${1}_bytes"
}

np=$((2 * rpn))
echo "node 0: host and network namespace ${ns[0]}, ${veth[0]} ${ips[0]}, ranks 0..$((rpn - 1)); runs mpirun"
echo "node 1: host and network namespace ${ns[1]}, ${veth[1]} ${ips[1]}, ranks $rpn..$((np - 1))"

# - pml ob1 with btl tcp,self,vader: ranks on different nodes can only reach each other over TCP (vader is
#   node-local); naming ob1 keeps UCX or libfabric from taking over.
# - btl/oob tcp_if_include: ranks and daemons use the veth subnet only.
# - vader's single-copy mechanism (CMA) is off because containers often forbid it.
reach=(--oversubscribe --mca plm_rsh_agent "$agent" --mca plm_rsh_no_tree_spawn 1
    --mca pml ob1 --mca btl "tcp,self,vader"
    --mca btl_tcp_if_include "$subnet" --mca oob_tcp_if_include "$subnet"
    --mca btl_vader_single_copy_mechanism none)
for var in PATH LD_LIBRARY_PATH ASAN_OPTIONS LSAN_OPTIONS UBSAN_OPTIONS; do
    if [ -n "${!var:-}" ]; then reach+=(-x "$var"); fi
done
args=(-np "$np" --hostfile "$hostfile" --map-by slot "${reach[@]}")
launch=("$mpirun" "${args[@]}" "$@")
if [ "$script" = 1 ]; then
    export NETNS_HOSTFILE=$hostfile MPIRUN_ARGS="${reach[*]}"
    launch=("$@")
fi
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_btl_vader_single_copy_mechanism=none

rx0=$(bytes rx)
tx0=$(bytes tx)
# Every link of this chain execs the next, so timeout's signal reaches mpirun itself. It runs in the
# background so that a TERM or INT sent to this script is handled at once (stop_mpirun), not after it.
# shellcheck disable=SC2016  # $0 and $@ belong to the inner sh
timeout -k 10 "$limit" ip netns exec "${ns[0]}" unshare --uts /bin/sh -c 'hostname "$0" && exec "$@"' "${ns[0]}" \
    "${launch[@]}" &
job=$!
rc=0
wait "$job" || rc=$?
job=""
rx=$(($(bytes rx) - rx0))
tx=$(($(bytes tx) - tx0))
echo "veth ${ips[0]} <-> ${ips[1]}: node 0 sent $tx bytes and received $rx bytes"

if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
    echo "FAIL: mpirun did not finish within ${limit}s" >&2
    exit 124
fi
[ "$rc" -eq 0 ] || { echo "FAIL: mpirun exited with status $rc" >&2; exit "$rc"; }
if [ "$tx" -lt "$min_bytes" ] || [ "$rx" -lt "$min_bytes" ]; then
    echo "FAIL: fewer than $min_bytes bytes crossed the veth in a direction; the nodes did not talk over TCP" >&2
    exit 1
fi
echo "ok: $np ranks on 2 nodes, traffic crossed TCP"
