#!/usr/bin/env bash
# End-to-end checks of the ecf8 command line: the demo, compress -> verify -> decompress, inspect (table,
# JSON, SVG), the decode benchmark, and clear failures on bad input. Usage: cli_test.sh ECF8 WORKDIR
set -u
ecf8=$1
work=$2
rm -rf "$work" && mkdir -p "$work"
failures=0
check() {  # check NAME EXPECTED_STATUS PATTERN -- CMD...
    local name=$1 want=$2 pattern=$3
    shift 4
    local out status
    out=$("$@" 2>&1)
    status=$?
    if [ "$status" -ne "$want" ] || ! grep -qE -- "$pattern" <<<"$out"; then
        echo "FAIL $name: status $status (want $want), pattern '$pattern'"
        echo "$out" | tail -n 20
        failures=$((failures + 1))
    else
        echo "ok   $name"
    fi
}

check help 0 "compress" -- "$ecf8" --help
check unknown-command 2 "unknown command" -- "$ecf8" frobnicate
check demo 0 "verified: every tensor" -- "$ecf8" demo --out "$work/demo" --threads 2
orig="$work/demo/demo.safetensors"
check compress 0 "compressed" -- "$ecf8" compress "$orig" "$work/c.safetensors" --threads 2
check compress-groups 0 "compressed" -- "$ecf8" compress "$orig" "$work/g.safetensors" --granularity group:65536
check verify 0 "bit-identical" -- "$ecf8" verify "$orig" "$work/c.safetensors"
check verify-groups 0 "bit-identical" -- "$ecf8" verify "$orig" "$work/g.safetensors"
check decompress 0 "wrote" -- "$ecf8" decompress "$work/c.safetensors" "$work/d.safetensors"
check verify-decompressed 0 "OK" -- "$ecf8" verify "$orig" "$work/c.safetensors"
check inspect 0 "coded tensors: .* bits/weight" -- "$ecf8" inspect "$work/c.safetensors"
check inspect-original 0 "total: " -- "$ecf8" inspect "$orig"
check inspect-json 0 "ok" -- bash -c "'$ecf8' inspect '$work/c.safetensors' --json | python3 -c 'import json,sys; d=json.load(sys.stdin); assert d[\"totals\"][\"ratio\"] < 0.9; print(\"ok\")'"
check inspect-plot 0 "wrote" -- "$ecf8" inspect "$work/c.safetensors" --plot "$work/plot.svg"
check plot-is-svg 0 "<svg" -- head -c 200 "$work/plot.svg"
check bench 0 "zstd -19" -- "$ecf8" bench decode "$work/c.safetensors" --threads 2 --repeat 5
check bad-granularity 1 "granularity" -- "$ecf8" compress "$orig" "$work/x.safetensors" --granularity rows
check unknown-flag 1 "unknown option --frob" -- "$ecf8" compress "$orig" "$work/x.safetensors" --frob 1
check missing-input 1 "no/such/file" -- "$ecf8" compress "$work/no/such/file.safetensors" "$work/x.safetensors"
check no-partial-output 2 "No such file" -- ls "$work/x.safetensors"

# A flipped byte inside a coded tensor is caught and named.
cp "$work/c.safetensors" "$work/corrupt.safetensors"
size=$(stat -c %s "$work/corrupt.safetensors")
python3 - "$work/corrupt.safetensors" <<'PY'
import json, struct, sys
path = sys.argv[1]
data = bytearray(open(path, "rb").read())
n = struct.unpack("<Q", data[:8])[0]
header = json.loads(data[8:8 + n])
name, entry = next((k, v) for k, v in header.items() if k != "__metadata__" and v["dtype"] == "U8")
begin, end = entry["data_offsets"]
data[8 + n + (begin + end) // 2] ^= 0x10
open(path, "wb").write(data)
print(name)
PY
check verify-corrupt 1 "MISMATCH .*tensor .* is corrupt" -- "$ecf8" verify "$orig" "$work/corrupt.safetensors"
check decompress-corrupt 1 "corrupt" -- "$ecf8" decompress "$work/corrupt.safetensors" "$work/y.safetensors"
check truncated 1 "demo.trunc" -- bash -c "head -c $((size / 2)) '$work/c.safetensors' > '$work/demo.trunc' && '$ecf8' verify '$orig' '$work/demo.trunc'"

echo "cli_test: $failures failure(s)"
[ "$failures" -eq 0 ]
