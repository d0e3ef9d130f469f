#!/usr/bin/env bash
# End-to-end checks of `mpirun -np 2 ecf8 run` on the tiny synthetic model: generation, bit-identical
# logits for --weights ecf8 vs raw, with routed experts kept decoded and for the host tier, reproducible
# sampling, the serving benchmark, and bad input (a world size that does not match the shards, a missing or a corrupt rank file,
# one rank failing at set-up alone, a host budget below the shards' host tier) stopping every rank with a
# clear error within seconds; a YAML or --gemm whose plan would place weights otherwise runs on the shards'
# tiers with a warning. With `two-node`, the same run across two network
# namespaces (exit 77 = skipped).
# Usage: run_test.sh ECF8 WORKDIR REPO_ROOT [local|two-node]
set -u
ecf8=$1
work=$2
repo=$3
mode=${4:-local}
rm -rf "$work" && mkdir -p "$work" && cd "$work" || exit 1
source "$repo/tests/launcher/check_lib.sh"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_btl_vader_single_copy_mechanism=none
mpi=(mpirun --oversubscribe -np)
prompt=(--prompt-ids 3,141,59,26 --max-new-tokens 8)

"$ecf8" synth --arch deepseek-v3 --preset tiny --out out/tiny/model >/dev/null || exit 1

if [ "$mode" = two-node ]; then
    "$ecf8" shard --config "$repo/configs/tiny-cpu.yaml" >/dev/null || exit 1
    "$ecf8" shard --config "$repo/configs/tiny-cpu-2node.yaml" >/dev/null || exit 1
    "${mpi[@]}" 2 "$ecf8" run --config "$repo/configs/tiny-cpu.yaml" "${prompt[@]}" --dump-logits one.bin >/dev/null ||
        exit 1
    MIN_VETH_BYTES=65536 bash "$repo/tests/launcher/two_node_netns.sh" "$work/netns" -- "$ecf8" run \
        --config "$repo/configs/tiny-cpu-2node.yaml" "${prompt[@]}" --dump-logits two.bin
    status=$?
    [ "$status" -eq 0 ] || exit "$status"  # 77: namespaces unavailable here, skipped
    check two-nodes-match-one-node 0 "" -- cmp one.bin two.bin
    exit $((failures > 0))
fi

check shard 0 "sharded" -- "$ecf8" shard --config "$repo/configs/tiny-cpu.yaml"
check run-ecf8 0 "ECF8 .* saved" -- "${mpi[@]}" 2 "$ecf8" run --config "$repo/configs/tiny-cpu.yaml" \
    "${prompt[@]}" --dump-logits ecf8.bin --trace trace.json
check run-raw 0 "sequence 0:( [0-9]+){8}" -- "${mpi[@]}" 2 "$ecf8" run --config "$repo/configs/tiny-cpu.yaml" \
    "${prompt[@]}" --weights raw --dump-logits raw.bin
check ecf8-equals-raw 0 "" -- cmp ecf8.bin raw.bin
# Routed experts kept decoded (memory.decoded_experts_gb; the flag overrides it): same logits, and the run says so.
# auto keeps them all on tiny, whose KV pool is far beyond what max_num_seqs sequences can use.
check run-decoded-experts 0 "routed experts kept decoded" -- "${mpi[@]}" 2 "$ecf8" run \
    --config "$repo/configs/tiny-cpu.yaml" "${prompt[@]}" --decoded-experts-gb auto --dump-logits decoded.bin
check decoded-experts-equal-raw 0 "" -- cmp decoded.bin raw.bin
# memory.expert_area: half (groups 2 and 3 decode into the places of groups 0 and 1): same logits.
check run-half-expert-area 0 "decode into a half expert area" -- "${mpi[@]}" 2 "$ecf8" run --config "$repo/configs/tiny-cpu.yaml" \
    "${prompt[@]}" --expert-area half --dump-logits half.bin
check half-expert-area-equals-raw 0 "" -- cmp half.bin raw.bin
check plan-half-expert-area 0 "ecf8 +0 " -- "$ecf8" plan --config "$repo/configs/tiny-cpu.yaml" --expert-area half
# Text in, text out: a chat and a plain prompt; the streamed text is the decoding of the generated ids.
"${mpi[@]}" 2 "$ecf8" run --config "$repo/configs/tiny-cpu.yaml" --system "Be brief." --chat "Hello there!" \
    --max-new-tokens 8 --eos-id -1 >chat.out 2>&1
check run-chat 0 "^output: " -- cat chat.out
"${mpi[@]}" 2 "$ecf8" run --config "$repo/configs/tiny-cpu.yaml" --prompt "Once upon a time" --max-new-tokens 12 \
    --eos-id -1 --temperature 1 --seed 3 --show-special >text-run.out 2>&1
check streamed-text-is-decoded-ids 0 "ok" -- python3 -c "
import re, subprocess
out = open('text-run.out', encoding='utf-8').read()
streamed = re.search(r'^output: (.*?)\nmodel: ', out, re.S | re.M).group(1)
ids = re.search(r'^sequence 0: ([0-9 ]+)', out, re.M).group(1).split()
assert len(ids) == 12, ids
text = subprocess.run(['$ecf8', 'detokenize', '--tokenizer', 'out/tiny/model', ','.join(ids)], capture_output=True,
                      text=True, check=True).stdout[:-1]
assert streamed == text, (streamed, text); print('ok')"
check trace-has-lanes 0 "ok" -- python3 -c "
import json; d = json.load(open('trace.json')); ev = d['traceEvents'] if isinstance(d, dict) else d
names = {e.get('name', '') for e in ev}
assert any(n.startswith('decode L2') for n in names) and any(n.startswith('compute L1') for n in names)
assert any(n.startswith('all-reduce') for n in names); print('ok')"
check shard-offload 0 "sharded" -- "$ecf8" shard --config "$repo/configs/tiny-cpu-offload.yaml"
check run-offload 0 "on pinned host tier" -- "${mpi[@]}" 2 "$ecf8" run \
    --config "$repo/configs/tiny-cpu-offload.yaml" "${prompt[@]}" --dump-logits offload.bin
check offload-equals-resident 0 "" -- cmp ecf8.bin offload.bin
check batch-sampling 0 "sequence 2:" -- "${mpi[@]}" 2 "$ecf8" run --config "$repo/configs/tiny-cpu.yaml" \
    "${prompt[@]}" --batch 3 --temperature 0.8 --top-p 0.9 --seed 7 --dump-logits s1.bin
check sampling-reproducible 0 "sequence 2:" -- "${mpi[@]}" 2 "$ecf8" run --config "$repo/configs/tiny-cpu.yaml" \
    "${prompt[@]}" --batch 3 --temperature 0.8 --top-p 0.9 --seed 7 --dump-logits s2.bin
check same-seed-same-logits 0 "" -- cmp s1.bin s2.bin

# Many requests through the scheduler: one result line per request, in input order; a request's greedy
# tokens do not depend on the others (the first request here is the prompt above, run alone as run-ecf8).
cat >requests.jsonl <<'JSONL'
{"id": "alone-twin", "prompt_ids": [3, 141, 59, 26], "max_new_tokens": 8}
{"id": "long", "prompt_ids": [5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20], "max_new_tokens": 3}
{"id": "text", "prompt": "Once upon a time", "max_new_tokens": 5, "temperature": 0.7, "seed": 11}

{"prompt_ids": [42], "max_new_tokens": 2, "stop_ids": []}
{"id": "chat", "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello there!"}], "max_new_tokens": 8, "stop_ids": []}
JSONL
check run-requests 0 "results: results.jsonl \\(5 requests, JSON Lines\\): 26 output tokens" -- "${mpi[@]}" 2 "$ecf8" run \
    --config "$repo/configs/tiny-cpu.yaml" --requests requests.jsonl --output results.jsonl
check requests-results 0 "ok" -- python3 -c "
import json, re
rows = [json.loads(l) for l in open('results.jsonl')]
assert [r['id'] for r in rows] == ['alone-twin', 'long', 'text', '5', 'chat'], rows
assert [len(r['output_ids']) for r in rows] == [8, 3, 5, 2, 8], rows
assert all(r['finish_reason'] in ('length', 'stop') for r in rows) and 'text' in rows[2]
# The chat request's prompt is rendered as ecf8 run --chat renders it: the same greedy tokens.
chat = re.search(r'^sequence 0: ([0-9 ]+)', open('chat.out').read(), re.M).group(1).split()
assert [int(t) for t in chat] == rows[4]['output_ids'], (chat, rows[4])
print('ok')"
# Stop strings: the first request again, with a piece of its own text as a stop string: it ends at the token
# that completes the piece, with the text cut before it.
python3 - >stop.jsonl <<'PY'
import json
first = json.loads(open("results.jsonl").readline())
text = first["text"]
stop = text[len(text) // 2:len(text) // 2 + 2]
print(json.dumps({"id": "stop", "prompt_ids": [3, 141, 59, 26], "max_new_tokens": 8, "stop": ["never there", stop]}))
PY
check run-stop-string 0 "1 ended on a stop id or string" -- "${mpi[@]}" 2 "$ecf8" run \
    --config "$repo/configs/tiny-cpu.yaml" --requests stop.jsonl --output stop-results.jsonl
check stop-string-cuts-text 0 "ok" -- python3 -c "
import json, subprocess
first = json.loads(open('results.jsonl').readline())
stop = json.loads(open('stop.jsonl').readline())['stop'][1]
r = json.loads(open('stop-results.jsonl').readline())
n = len(r['output_ids'])
assert r['finish_reason'] == 'stop' and r['stop_string'] == stop, r
assert r['output_ids'] == first['output_ids'][:n], (r, first)
assert r['text'] == first['text'][:first['text'].find(stop)], (r, first)
decode = lambda ids: subprocess.run(['$ecf8', 'detokenize', '--tokenizer', 'out/tiny/model', '--skip-special',
                                     ','.join(map(str, ids))], capture_output=True, text=True, check=True).stdout[:-1]
assert stop in decode(r['output_ids']) and stop not in decode(r['output_ids'][:-1]), r
print('ok')"
"${mpi[@]}" 2 "$ecf8" run --config "$repo/configs/tiny-cpu.yaml" "${prompt[@]}" >alone.out 2>&1
check request-equals-alone 0 "ok" -- python3 -c "
import json, re
alone = re.search(r'^sequence 0: ([0-9 ]+)', open('alone.out').read(), re.M).group(1).split()
first = json.loads(open('results.jsonl').readline())['output_ids']
assert [int(t) for t in alone] == first, (alone, first); print('ok')"
# The serving benchmark: two levels, the second above tiny's max_num_seqs (4), so the note says requests queue;
# every request's output counted, the KV pool's peak at most max_num_seqs sequences' blocks; raw weights too.
serve=("${mpi[@]}" 2 "$ecf8" bench serve --config "$repo/configs/tiny-cpu.yaml" --concurrency 1,8 --num-prompts 6
    --input-len 8 --output-len 4)
check bench-serve 0 "note: levels above max_num_seqs 4 .*queue" -- "${serve[@]}" --json serve.json
check bench-serve-json 0 "ok" -- python3 -c "
import json
d = json.load(open('serve.json'))
assert d['weights'] == 'ecf8' and [l['concurrency'] for l in d['levels']] == [1, 8], d
for l in d['levels']:
    assert l['requests'] == 6 and 6 * 2 <= l['output_tokens'] <= 6 * 6, l
    assert l['output_tokens_per_s'] > 0 and l['ttft_ms']['median'] <= l['ttft_ms']['p99'], l
    assert 1 <= l['peak_kv_blocks'] <= 4 and l['preemptions'] == 0, l
print('ok')"
check bench-serve-raw 0 "concurrency 8: [0-9.]+x the output tokens/s of concurrency 1" -- "${serve[@]}" --weights raw
printf '{"id": "x", "prompt_ids": [1, 2], "max_new_token": 4}\n' >bad-field.jsonl
printf '{"id": "x", "prompt_ids": [1, 2]}\n{"id": "x", "prompt_ids": [3]}\n' >dup-id.jsonl
printf '{"id": "ok", "prompt_ids": [1]}\n{"id": "v", "prompt_ids": [1, 5000]}\n' >big-id.jsonl

# Bad input: each must fail on every rank, with the cause named, well within the timeout.
bad() {  # bad NAME PATTERN -- CMD...: exit non-zero, match PATTERN, and finish within 30 s
    local name=$1 pattern=$2 start end
    shift 3
    start=$(date +%s)
    check "$name" 1 "$pattern" -- timeout 60 "$@"
    end=$(date +%s)
    if [ $((end - start)) -gt 30 ]; then
        echo "FAIL $name took $((end - start)) s"
        failures=$((failures + 1))
    fi
}
bad world-size-mismatch "holds shards for 2 ranks .* mpirun started 3" -- "${mpi[@]}" 3 "$ecf8" run \
    --config "$repo/configs/tiny-cpu.yaml" "${prompt[@]}"
bad bad-expert-area "--expert-area must be 'full' .* 'half' .* or 'auto'" -- "$ecf8" plan --config "$repo/configs/tiny-cpu.yaml" \
    --expert-area third
cp -r out/tiny/shards missing && rm missing/rank-00001-of-00002.safetensors
bad missing-rank-file "rank-00001-of-00002.safetensors" -- "${mpi[@]}" 2 "$ecf8" run \
    --config "$repo/configs/tiny-cpu.yaml" --shards missing "${prompt[@]}"
cp -r out/tiny/shards corrupt
python3 -c "
import os; p = 'corrupt/rank-00001-of-00002.safetensors'; n = os.path.getsize(p)
with open(p, 'r+b') as f: f.seek(n * 3 // 4); b = f.read(1); f.seek(n * 3 // 4); f.write(bytes([b[0] ^ 0x10]))"
bad corrupt-rank-file "rank-00001-of-00002.safetensors.*(checksum|corrupt)" -- "${mpi[@]}" 2 "$ecf8" run \
    --config "$repo/configs/tiny-cpu.yaml" --shards corrupt "${prompt[@]}"
bad bad-prompt "not a token id" -- "${mpi[@]}" 2 "$ecf8" run --config "$repo/configs/tiny-cpu.yaml" \
    --prompt-ids 1,x,3
bad token-outside-vocab "outside the vocabulary" -- "${mpi[@]}" 2 "$ecf8" run \
    --config "$repo/configs/tiny-cpu.yaml" --prompt-ids 1,99999
bad batch-over-plan "max_num_seqs" -- "${mpi[@]}" 2 "$ecf8" run --config "$repo/configs/tiny-cpu.yaml" \
    "${prompt[@]}" --batch 5
bad bad-weights "--weights must be ecf8" -- "${mpi[@]}" 2 "$ecf8" run --config "$repo/configs/tiny-cpu.yaml" \
    "${prompt[@]}" --weights fp4
bad bad-backend "--backend must be auto, cpu or cuda" -- "${mpi[@]}" 2 "$ecf8" run \
    --config "$repo/configs/tiny-cpu.yaml" "${prompt[@]}" --backend tpu
if ! nvidia-smi -L >/dev/null 2>&1; then  # where no GPU is visible, asking for CUDA is a clear error
    bad cuda-without-gpu "--backend cuda: (no CUDA device|this ecf8 was built without CUDA)" -- "${mpi[@]}" 2 \
        "$ecf8" run --config "$repo/configs/tiny-cpu.yaml" "${prompt[@]}" --backend cuda
fi
bad decoded-experts-negative "--decoded-experts-gb must be >= 0" -- "${mpi[@]}" 2 "$ecf8" run \
    --config "$repo/configs/tiny-cpu.yaml" "${prompt[@]}" --decoded-experts-gb -1
bad decoded-experts-not-a-number "--decoded-experts-gb 'lots' is neither a number of GiB nor auto" -- "$ecf8" plan \
    --config "$repo/configs/tiny-cpu.yaml" --decoded-experts-gb lots
bad fp8-gemm-on-cpu "--gemm fp8 needs the CUDA backend .*pass --gemm fp32" -- "${mpi[@]}" 2 "$ecf8" run \
    --config "$repo/configs/tiny-cpu.yaml" "${prompt[@]}" --backend cpu --gemm fp8
{ cat "$repo/configs/tiny-cpu.yaml"; printf 'compute:\n  gemm: fp8\n'; } >gemm-fp8.yaml
bad yaml-fp8-gemm-on-cpu "gemm-fp8.yaml: compute.gemm fp8 needs the CUDA backend" -- "${mpi[@]}" 2 "$ecf8" run \
    --config gemm-fp8.yaml "${prompt[@]}" --backend cpu
# Shards placed with compute.gemm fp8 (its larger workspace sends weights to the host tier); --gemm fp32 would
# plan them on the device: the run keeps the shards' tiers, sizes the KV pool for them, and says so.
sed 's/gpu_memory_gb: 0.017/gpu_memory_gb: 0.05/; s#shards-offload#shards-fp8#' "$repo/configs/tiny-cpu-offload.yaml" \
    >offload-fp8.yaml
printf 'compute:\n  gemm: fp8\n' >>offload-fp8.yaml
"$ecf8" shard --config offload-fp8.yaml >/dev/null || exit 1
check gemm-override-keeps-the-shards-tiers 0 "offload-fp8.yaml with --gemm fp32 plans weights on other tiers than \
the shards in out/tiny/shards-fp8 hold them \(rank 0: tensor .*\); the run keeps the shards' tiers" -- \
    "${mpi[@]}" 2 "$ecf8" run --config offload-fp8.yaml "${prompt[@]}" --backend cpu --gemm fp32 --dump-logits fp8-shards.bin
check gemm-override-same-logits 0 "" -- cmp fp8-shards.bin ecf8.bin
# The offload shards with a YAML whose budget grew after sharding: same warning, and the host tier is still
# used; with a host budget smaller than the shards' host tier the run refuses.
sed 's/gpu_memory_gb: 0.017/gpu_memory_gb: 0.05/' "$repo/configs/tiny-cpu-offload.yaml" >offload-grown.yaml
check yaml-memory-changed-since-shard 0 "offload-grown.yaml plans weights on other tiers than the shards in \
out/tiny/shards-offload hold them \(rank 0: tensor .* is on the host tier in the shards and on the device tier in \
the plan.*re-shard" -- "${mpi[@]}" 2 "$ecf8" run --config offload-grown.yaml "${prompt[@]}"
sed 's/cpu_offload_gb: 1/cpu_offload_gb: 0.0001/' "$repo/configs/tiny-cpu-offload.yaml" >offload-no-host.yaml
bad host-budget-below-shards "offload-no-host.yaml: rank 0's shard in out/tiny/shards-offload holds .* on the \
pinned host tier, but memory.cpu_offload_gb gives .*; raise cpu_offload_gb" -- "${mpi[@]}" 2 "$ecf8" run \
    --config offload-no-host.yaml "${prompt[@]}"
sed 's/tensor_parallel_size: 2/tensor_parallel_size: 1/; s/expert_parallel_size: 2/expert_parallel_size: 1/' \
    "$repo/configs/tiny-cpu.yaml" | sed 's/gpus_per_node: 2/gpus_per_node: 1/' >tp1.yaml
bad yaml-contradicts-manifest "tp1.yaml: parallel.tensor_parallel_size is 1 but the shards in .* were made with 2" \
    -- "${mpi[@]}" 2 "$ecf8" run --config tp1.yaml "${prompt[@]}"
bad eos-outside-vocab "--eos-id 99999 is outside the vocabulary \\[0, [0-9]+\\)" -- "${mpi[@]}" 2 "$ecf8" run \
    --config "$repo/configs/tiny-cpu.yaml" "${prompt[@]}" --eos-id 99999
bad negative-threads "--threads .*must be >= " -- "${mpi[@]}" 2 "$ecf8" run --config "$repo/configs/tiny-cpu.yaml" \
    "${prompt[@]}" --threads -3
bad requests-unknown-field "bad-field.jsonl:1: unknown field \"max_new_token\"" -- "${mpi[@]}" 2 "$ecf8" run \
    --config "$repo/configs/tiny-cpu.yaml" --requests bad-field.jsonl
bad requests-token-outside-vocab "request 'v': the prompt holds token 5000, outside the vocabulary \\[0, 1024\\)" -- \
    "${mpi[@]}" 2 "$ecf8" run --config "$repo/configs/tiny-cpu.yaml" --requests big-id.jsonl
bad requests-repeated-id "dup-id.jsonl:2: request id 'x' is repeated" -- "${mpi[@]}" 2 "$ecf8" run \
    --config "$repo/configs/tiny-cpu.yaml" --requests dup-id.jsonl
bad requests-and-prompt "--requests FILE gives the prompts" -- "${mpi[@]}" 2 "$ecf8" run \
    --config "$repo/configs/tiny-cpu.yaml" --requests dup-id.jsonl --prompt-ids 1
bad bench-serve-zero-concurrency "--concurrency: '0' is not a positive count" -- "${mpi[@]}" 2 "$ecf8" bench serve \
    --config "$repo/configs/tiny-cpu.yaml" --concurrency 0
bad bench-serve-too-long "exceeds kv_cache.max_model_len 256 of .*tiny-cpu.yaml" -- "${mpi[@]}" 2 "$ecf8" bench serve \
    --config "$repo/configs/tiny-cpu.yaml" --output-len 1000
bad two-prompts "give only one prompt" -- "${mpi[@]}" 2 "$ecf8" run --config "$repo/configs/tiny-cpu.yaml" \
    --prompt-ids 1,2 --chat "hi"
bad system-without-chat "--system goes with --chat" -- "${mpi[@]}" 2 "$ecf8" run \
    --config "$repo/configs/tiny-cpu.yaml" --prompt "hi" --system "Be brief."
bad no-tokenizer "no tokenizer.json in 'missing-tok' \\(--tokenizer\\)" -- "${mpi[@]}" 2 "$ecf8" run \
    --config "$repo/configs/tiny-cpu.yaml" --chat "hi" --tokenizer missing-tok

# One rank fails at set-up while the other starts normally (its shard directory is missing, the other's is
# not): start-up holds no collective before the ranks agree, so both exit with the error, whichever fails.
tiny_run=("$ecf8" run --config "$repo/configs/tiny-cpu.yaml" "${prompt[@]}")
bad one-rank-fails-setup-rank1 "no-such-dir: no manifest.json" -- mpirun --oversubscribe -np 1 "${tiny_run[@]}" : \
    -np 1 "${tiny_run[@]}" --shards no-such-dir
bad one-rank-fails-setup-rank0 "no-such-dir: no manifest.json" -- mpirun --oversubscribe -np 1 "${tiny_run[@]}" \
    --shards no-such-dir : -np 1 "${tiny_run[@]}"

echo "$failures failure(s)"
exit $((failures > 0))
