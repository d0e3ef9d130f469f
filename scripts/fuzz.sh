#!/usr/bin/env bash
# Builds the libFuzzer targets (clang++, ASan + UBSan) in build-fuzz/, writes their seed corpora and runs each
# fuzzer for FUZZ_SECONDS. Prints one line per target with its number of executions; exits non-zero when a
# fuzzer finds a crash, leak, timeout or out-of-memory (the reproducer is left under build-fuzz/artifacts/).
#
# Environment:
#   FUZZ_SECONDS  seconds per fuzzer (default 60)
#   FUZZ_TARGETS  targets to run (default "fuzz_blob fuzz_safetensors fuzz_config fuzz_tokenizer fuzz_requests")
#   FUZZ_TIMEOUT  seconds one input may take before it counts as a hang (default 30)
#   FUZZ_ARGS     extra libFuzzer flags, e.g. "-use_value_profile=1 -max_len=8192"
#   FUZZ_CXX      the clang++ to use (default clang++)
#   BUILD_DIR     build directory (default <repo>/build-fuzz)
#   JOBS          parallel build jobs (default: number of CPUs)
# A crash is reproduced with: build-fuzz/fuzz/<target> build-fuzz/artifacts/<target>/crash-<sha1>
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${BUILD_DIR:-$root/build-fuzz}"
seconds="${FUZZ_SECONDS:-60}"
targets="${FUZZ_TARGETS:-fuzz_blob fuzz_safetensors fuzz_config fuzz_tokenizer fuzz_requests}"
per_input_timeout="${FUZZ_TIMEOUT:-30}"
jobs="${JOBS:-$(nproc)}"
read -r -a extra_args <<< "${FUZZ_ARGS:-}"

echo "fuzz.sh: configuring $build"
mkdir -p "$build"
cmake -S "$root" -B "$build" \
    -DCMAKE_CXX_COMPILER="${FUZZ_CXX:-clang++}" \
    -DECF8_FUZZ=ON -DECF8_SANITIZE=ON -DECF8_CUDA=OFF \
    -DECF8_BUILD_BENCH=OFF -DECF8_BUILD_TESTS=OFF \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo > "$build/configure.log" 2>&1 || {
    cat "$build/configure.log" >&2
    echo "fuzz.sh: cmake configure failed (log: $build/configure.log)" >&2
    exit 2
}

echo "fuzz.sh: building ${targets} ecf8_make_corpus (-j$jobs)"
# shellcheck disable=SC2086  # targets is a word list
cmake --build "$build" --parallel "$jobs" --target $targets ecf8_make_corpus

bin_dir="$build/fuzz"
seeds="$build/corpus-seed"
rm -rf "$seeds"
"$bin_dir/ecf8_make_corpus" "$seeds"
# Config seeds: the YAML files (first byte 0 picks the YAML parser) and config.json (1 picks JSON).
mkdir -p "$seeds/config"
for f in "$root"/configs/*.yaml; do
    { printf '\x00'; cat "$f"; } > "$seeds/config/$(basename "$f").seed"
done
{ printf '\x01'; cat "$root/configs/models/deepseek-v3/config.json"; } > "$seeds/config/config.json.seed"

# Tokenizer seeds: a text (even first byte) and a small tokenizer.json (odd).
mkdir -p "$seeds/tokenizer"
printf '\x00Hello, world! 你好 123 <｜User｜>hi\xff\xfe 🙂\n\t  x' > "$seeds/tokenizer/text.seed"
{ printf '\x01'; cat <<'JSON'; } > "$seeds/tokenizer/tokenizer.json.seed"
{"version": "1.0", "added_tokens": [{"id": 6, "content": "<s>", "special": true, "single_word": false,
 "lstrip": false, "rstrip": false, "normalized": false}], "normalizer": null,
 "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
  {"type": "Split", "pattern": {"Regex": "\\p{N}{1,3}"}, "behavior": "Isolated", "invert": false},
  {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": false}]},
 "post_processor": null, "decoder": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true,
 "use_regex": true},
 "model": {"type": "BPE", "dropout": null, "unk_token": null, "continuing_subword_prefix": null,
  "end_of_word_suffix": null, "fuse_unk": false, "byte_fallback": false,
  "vocab": {"a": 0, "b": 1, "ab": 2, "\u0120": 3, "1": 4, "\u0120a": 5}, "merges": ["a b", "\u0120 a"]}}
JSON

# Request-file seeds: ids (even first byte: no tokenizer), a text prompt and a chat (odd: the synthetic
# tokenizer).
mkdir -p "$seeds/requests"
printf '\x00{"id": "r1", "prompt_ids": [1, 2, 3], "max_new_tokens": 8, "temperature": 0.0, "top_p": 1.0, "seed": 0}\n\n{"prompt_ids": [5], "stop_ids": [2]}\n' > "$seeds/requests/ids.seed"
printf '\x01{"id": 7, "prompt": "Hello, world! 你好", "temperature": 0.7, "top_p": 0.9, "stop": ["\\n", "好"]}\n' > "$seeds/requests/text.seed"
printf '\x01{"id": "c", "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}, {"role": "assistant", "content": null, "tool_calls": [{"type": "function", "function": {"name": "f", "arguments": "{}"}}]}, {"role": "tool", "content": "1"}]}\n' > "$seeds/requests/chat.seed"

declare -A seed_dir=([fuzz_blob]=blob [fuzz_safetensors]=safetensors [fuzz_config]=config [fuzz_tokenizer]=tokenizer
                     [fuzz_requests]=requests)
summary=()
failed=0
for target in $targets; do
    corpus="$build/corpus/$target"  # grows across runs
    artifacts="$build/artifacts/$target"
    log="$build/logs/$target.log"
    mkdir -p "$corpus" "$artifacts" "$(dirname "$log")"
    seed="$seeds/${seed_dir[$target]:-}"
    echo "fuzz.sh: running $target for ${seconds}s (log: $log)"
    rc=0
    "$bin_dir/$target" -max_total_time="$seconds" -timeout="$per_input_timeout" -print_final_stats=1 \
        -artifact_prefix="$artifacts/" "${extra_args[@]}" "$corpus" ${seed:+"$seed"} > "$log" 2>&1 || rc=$?
    # "Done N runs in S second(s)" ends a clean run; after a crash the last status line "#N ..." has the count.
    runs="$(sed -n 's/^Done \([0-9][0-9]*\) runs in.*/\1/p' "$log" | tail -n 1)"
    if [ -z "$runs" ]; then
        runs="$(sed -n 's/^#\([0-9][0-9]*\)[[:space:]].*/\1/p' "$log" | tail -n 1)"
    fi
    runs="${runs:-0}"
    if [ "$rc" -eq 0 ]; then
        summary+=("$target: $runs executions in ${seconds}s, no crash")
    else
        failed=1
        grep -E "^(==[0-9]+==ERROR|SUMMARY|.*runtime error)" "$log" | head -n 5 >&2 || true
        artifact="$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -n 1)"
        summary+=("$target: $runs executions, FAILED (exit $rc) - ${artifact:-see $log}")
    fi
done

echo "fuzz.sh: summary"
for line in "${summary[@]}"; do echo "$line"; done
exit "$failed"
