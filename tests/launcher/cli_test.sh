#!/usr/bin/env bash
# End-to-end checks of the ecf8 command line: the demo, compress -> verify -> decompress, inspect (table,
# JSON, SVG), the decode benchmark, and clear failures on bad input. Usage: cli_test.sh ECF8 WORKDIR
set -u
ecf8=$1
work=$2
rm -rf "$work" && mkdir -p "$work"
source "$(dirname "$0")/check_lib.sh"

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
# The JSON carries the round-by-round speed-up and, with more than one thread, the machine's ceiling for it.
check bench-json 0 "ok" -- bash -c "'$ecf8' bench decode '$work/c.safetensors' --threads 2 --json | python3 -c 'import json,sys; e=json.load(sys.stdin)[\"ecf8\"]; assert all(0 < s[\"min\"] <= s[\"median\"] <= s[\"max\"] for s in (e[\"scaling_per_round\"], e[\"ceiling_per_round\"])), e; print(\"ok\")'"
check bench-json-1thread 0 "ok" -- bash -c "'$ecf8' bench decode '$work/c.safetensors' --threads 1 --json | python3 -c 'import json,sys; e=json.load(sys.stdin)[\"ecf8\"]; assert e[\"ceiling_per_round\"] is None, e; print(\"ok\")'"
check bad-granularity 1 "granularity" -- "$ecf8" compress "$orig" "$work/x.safetensors" --granularity rows
check unknown-flag 1 "unknown option --frob" -- "$ecf8" compress "$orig" "$work/x.safetensors" --frob 1
check missing-input 1 "no/such/file" -- "$ecf8" compress "$work/no/such/file.safetensors" "$work/x.safetensors"
check no-partial-output 2 "No such file" -- ls "$work/x.safetensors"
check negative-threads 1 "--threads must be >= 0 \\(0 = every core\\), got -2" -- "$ecf8" compress "$orig" \
    "$work/threads.safetensors" --threads -2
# Outputs are written to a .tmp file and renamed over the target: a target that exists and is not a
# regular file (a directory, a FIFO, a device node) is refused before any work.
mkdir -p "$work/out-dir" && mkfifo "$work/out-fifo"
check compress-over-dir 1 "out-dir' exists and is a directory, not a regular file" -- "$ecf8" compress "$orig" \
    "$work/out-dir"
check decompress-over-fifo 1 "out-fifo' exists and is a FIFO, not a regular file" -- "$ecf8" decompress \
    "$work/c.safetensors" "$work/out-fifo"
check fifo-kept 0 "fifo" -- stat -c %F "$work/out-fifo"

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

# Checkpoints, plans and shards: synth tiny -> plan -> shard -> verify-shards -> unshard, and bad input.
model="$work/tiny/model"
shards="$work/tiny/shards"
sed -e "s#out/tiny/model#$model#" -e "s#out/tiny/shards#$shards#" "$(dirname "$0")/../../configs/tiny-cpu.yaml" \
    >"$work/tiny.yaml"
check synth 0 "exponent entropy" -- "$ecf8" synth --preset tiny --out "$model" --threads 2
check synth-index 0 "weight_map" -- cat "$model/model.safetensors.index.json"
# synth's tokenizer: text -> ids -> text, the forms of tokenize's output, and bad input.
check synth-tokenizer 0 "BPE" -- cat "$model/tokenizer.json"
text='Hello, world! 你好 123456 — ünïcödé 🙂'
check tokenize 0 "^[0-9]+(,[0-9]+)+$" -- "$ecf8" tokenize --tokenizer "$model" "$text"
ids=$("$ecf8" tokenize --tokenizer "$model" "$text")
check detokenize-round-trip 0 "^${text}$" -- "$ecf8" detokenize --tokenizer "$model" "$ids"
check tokenize-json 0 "ok" -- bash -c "'$ecf8' tokenize --tokenizer '$model' --json '$text' | python3 -c 'import json,sys; a=json.load(sys.stdin); assert a == [int(x) for x in \"$ids\".split(\",\")], a; print(\"ok\")'"
check tokenize-stdin 0 "^${ids}$" -- bash -c "printf '%s' '$text' | '$ecf8' tokenize --tokenizer '$model' -"
check tokenize-pieces 0 "^ +[0-9]+ ' wor'$" -- "$ecf8" tokenize --tokenizer "$model" --pieces "Hello, world"
user_id=$(python3 -c "import json; print(next(t['id'] for t in json.load(open('$model/tokenizer.json'))['added_tokens'] if t['content'] == '<｜User｜>'))")
check tokenize-special 0 "^${user_id},[0-9,]+$" -- "$ecf8" tokenize --tokenizer "$model" --no-special \
    "<｜User｜>hi<｜Assistant｜>"
check detokenize-skip-special 0 "^hi$" -- "$ecf8" detokenize --tokenizer "$model" --skip-special 0,74,75,1
check tokenize-no-dir 1 "--tokenizer DIR is required" -- "$ecf8" tokenize "text"
check tokenize-missing-file 1 "$work.*tokenizer.json" -- "$ecf8" tokenize --tokenizer "$work" "text"
check detokenize-bad-id 1 "'x' is not a token id" -- "$ecf8" detokenize --tokenizer "$model" 1,x
check detokenize-id-outside 1 "99999" -- "$ecf8" detokenize --tokenizer "$model" 99999
check plan-tiny 0 "ECF8 +fits" -- "$ecf8" plan --config "$work/tiny.yaml"
check plan-json 0 "ok" -- bash -c "'$ecf8' plan --config '$work/tiny.yaml' --json | python3 -c 'import json,sys; d=json.load(sys.stdin); assert d[\"ratios\"][\"measured\"] and d[\"ecf8\"][\"fits\"] and d[\"decoded_experts_gb\"] == 0; print(\"ok\")'"
check plan-json-auto 0 "ok" -- bash -c "'$ecf8' plan --config '$work/tiny.yaml' --json --decoded-experts-gb auto | python3 -c 'import json,sys; d=json.load(sys.stdin); r=d[\"ecf8\"][\"ranks\"][0]; assert d[\"decoded_experts_gb\"] == \"auto\" and r[\"decoded_experts\"] == r[\"routed_experts\"] > 0; print(\"ok\")'"
repo="$(cd "$(dirname "$0")/../.." && pwd)"
check plan-dsv3 0 "FP8 16, ECF8 8" -- "$ecf8" plan --config "$repo/configs/deepseek-v3-8xh100.yaml" \
    --model "$repo/configs/models/deepseek-v3"
check shard 0 "saved" -- "$ecf8" shard --config "$work/tiny.yaml" --threads 2
check shard-manifest 0 "ecf8-shards" -- cat "$shards/manifest.json"
check verify-shards 0 "bit-identically" -- "$ecf8" verify-shards --config "$work/tiny.yaml"
check unshard 0 "wrote" -- "$ecf8" unshard --config "$work/tiny.yaml" --out "$work/tiny/back"
check unsharded-equal 0 "bit-identical" -- bash -c "'$ecf8' compress '$work/tiny/back/model.safetensors' '$work/tiny/back.ecf8' && '$ecf8' verify '$work/tiny/back/model.safetensors' '$work/tiny/back.ecf8'"
mkdir -p "$work/tiny/back-dir/model.safetensors"
check unshard-over-dir 1 "model.safetensors' exists and is a directory, not a regular file" -- "$ecf8" unshard \
    --config "$work/tiny.yaml" --out "$work/tiny/back-dir"
# verify-shards reports the manifest's rank count, and a YAML whose parallel section contradicts the
# manifest is an error naming the field and both values.
check verify-shards-rank-count 0 "from the 2 rank files" -- "$ecf8" verify-shards --config "$work/tiny.yaml"
sed 's/expert_parallel_size: 2/expert_parallel_size: 1/' "$work/tiny.yaml" >"$work/ep1.yaml"
check verify-shards-layout-mismatch 1 "ep1.yaml: parallel.expert_parallel_size is 1 but the shards in .* made with 2" \
    -- "$ecf8" verify-shards --config "$work/ep1.yaml"
check verify-shards-negative-threads 1 "--threads must be >= 0" -- "$ecf8" verify-shards --config "$work/tiny.yaml" \
    --threads -1
printf 'model: x\nparallel:\n  tensor_paralel_size: 2\n' >"$work/bad.yaml"
check bad-yaml-key 1 "parallel.tensor_paralel_size" -- "$ecf8" plan --config "$work/bad.yaml"
sed 's/tensor_parallel_size: 2/tensor_parallel_size: 3/; s/gpus_per_node: 2/gpus_per_node: 3/; s/expert_parallel_size: 2/expert_parallel_size: 1/' \
    "$work/tiny.yaml" >"$work/tp3.yaml"
check bad-tp 1 "tensor_parallel_size=3" -- "$ecf8" shard --config "$work/tp3.yaml" --out "$work/tp3"
check bad-tp-no-output 2 "No such file" -- ls "$work/tp3"
check no-model 1 "config.json" -- "$ecf8" plan --config "$work/tiny.yaml" --model "$work/nowhere"

echo "cli_test: $failures failure(s)"
[ "$failures" -eq 0 ]
