#!/usr/bin/env bash
# Continuous batching on one GPU (issue 19), run by scripts/gpu_checks.sh after it has made out/tiny's
# tp-1 shards: 16 greedy requests of mixed prompt lengths (1 to 200 tokens) and max_new_tokens (1 to 16)
# go through the scheduler on tiny with --backend cuda.
#   - ecf8 against raw on the same schedule: results and logits bit-identical (fails the check if not);
#   - the CPU backend on the same requests: how many requests give the same tokens, and the logits'
#     largest difference while the tokens agree (reported, not failed: greedy ties may fall either way);
#   - 3 requests run alone: the same tokens as in the batch (reported).
# Usage (repo root): scripts/gpu_requests_check.sh ECF8_BINARY LOG_DIR [BACKEND (default cuda)]
set -uo pipefail
cd "$(dirname "$0")/.."
ecf8=$1
out=$2
backend=${3:-cuda}
dir=out/tiny/requests
mkdir -p "$dir" "$out"
# Up to 16 sequences at once and room for the longest prompt and output.
sed -e 's/max_num_seqs: .*/max_num_seqs: 16/' -e 's/max_model_len: .*/max_model_len: 512/' \
    configs/tiny-gpu1.yaml >"$dir/serve.yaml"
python3 - "$dir/requests.jsonl" <<'PY'
import json, random, sys
rng = random.Random(19)
lens = [1, 2, 7, 31, 64, 65, 100, 128, 150, 199, 200, 3, 17, 90, 180, 45]
with open(sys.argv[1], "w") as f:
    for i, n in enumerate(lens):
        ids = [rng.randrange(1, 1024) for _ in range(n)]
        f.write(json.dumps({"id": f"r{i}", "prompt_ids": ids, "max_new_tokens": 1 + (i * 5) % 16}) + "\n")
PY
serve() {  # serve NAME WEIGHTS BACKEND [REQUESTS]
    timeout 150 "$ecf8" run --config "$dir/serve.yaml" --requests "${4:-$dir/requests.jsonl}" --eos-id -1 \
        --weights "$2" --backend "$3" --output "$dir/$1.jsonl" --dump-logits "$dir/$1.bin" >"$out/requests_$1.log" 2>&1 ||
        { echo "FAIL requests $1 (requests_$1.log)"; tail -5 "$out/requests_$1.log"; return 1; }
}
serve ecf8 ecf8 "$backend" && serve raw raw "$backend" && serve cpu ecf8 cpu || exit 1
status=0
cmp -s "$dir/ecf8.jsonl" "$dir/raw.jsonl" && echo "ok   requests: ecf8 results = raw's" ||
    { echo "FAIL requests: ecf8 results differ from raw's"; status=1; }
python3 scripts/compare_logits.py "$dir/ecf8.bin" "$dir/raw.bin" || status=1
for i in 0 9 10; do
    sed -n "$((i + 1))p" "$dir/requests.jsonl" >"$dir/alone$i.in.jsonl"
    serve "alone$i" ecf8 "$backend" "$dir/alone$i.in.jsonl" || status=1
done
python3 - "$dir" <<'PY'
import json, sys
d = sys.argv[1]
rows = lambda n: [json.loads(l) for l in open(f"{d}/{n}.jsonl")]
gpu, cpu = rows("ecf8"), rows("cpu")
same = sum(a["output_ids"] == b["output_ids"] for a, b in zip(gpu, cpu))
print(f"     requests: {same}/{len(gpu)} give the CPU backend's tokens")
for i in (0, 9, 10):
    alone = rows(f"alone{i}")[0]["output_ids"]
    print(f"     requests: r{i} alone {'=' if alone == gpu[i]['output_ids'] else '!='} in the batch")
if same == len(gpu):  # same tokens, so the same schedule and the logits line up
    import numpy as np
    a, b = (np.fromfile(f"{d}/{n}.bin", dtype=np.float32).astype(np.float64) for n in ("ecf8", "cpu"))
    print(f"     requests: logits vs the CPU backend: max |diff| {np.max(np.abs(a - b)) / np.max(np.abs(b)):.3g} of max")
PY
exit $status
