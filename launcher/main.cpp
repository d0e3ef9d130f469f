// `ecf8`: the command line. Dispatches to a subcommand from the table; every ecf8::Error becomes a
// one-line message and exit status 1.
#include <cstdio>
#include <cstring>
#include <exception>

#include "common/error.h"
#include "launcher/commands.h"

namespace ecf8 {

const std::vector<Command>& all_commands() {
    static const std::vector<Command> commands = {
        {"compress", "compress a safetensors file to ECF8 (lossless)",
         "ecf8 compress IN.safetensors OUT.safetensors [--granularity tensor|group:N] [--threads N]\n"
         "  Codes every F8_E4M3, F8_E5M2, BF16 and F16 tensor with ECF8; other dtypes are kept unchanged.\n"
         "  The output is a valid safetensors file with one U8 blob per coded tensor.\n"
         "  --granularity  one codebook per tensor (default) or per group of N elements (a multiple of\n"
         "                the chunk size, 65536 for 1-byte dtypes and 131072 for 2-byte ones)\n"
         "  --threads      worker threads (default: all cores)\n",
         cmd_compress},
        {"decompress", "write the original safetensors file back",
         "ecf8 decompress IN.ecf8.safetensors OUT.safetensors [--threads N]\n"
         "  Every tensor of OUT is byte-identical to the original's; checksums are verified.\n",
         cmd_decompress},
        {"verify", "prove a compressed file decodes to the original, tensor by tensor",
         "ecf8 verify ORIGINAL.safetensors COMPRESSED.safetensors [--threads N]\n"
         "  Exits 1 and names each tensor that differs, is missing or is corrupt.\n",
         cmd_verify},
        {"inspect", "per-tensor bits per weight, exponent entropy and overheads",
         "ecf8 inspect FILE [--json] [--plot OUT.svg] [--threads N]\n"
         "  FILE may be compressed or not (then it is compressed in memory first).\n"
         "  --json   stable machine-readable output\n"
         "  --plot   draw the exponent histogram and each tensor's bits/weight against its entropy bound\n",
         cmd_inspect},
        {"bench", "benchmarks: `ecf8 bench decode FILE`, `mpirun -np N ecf8 bench serve --config C.yaml`",
         "ecf8 bench decode FILE [--threads N] [--repeat R] [--json]\n"
         "  Median-of-R (default 5) decode throughput of every codable tensor in FILE, in GB/s of decoded\n"
         "  output, next to libzstd levels 3 and 19 on the same raw bytes: ratio and speed side by side.\n"
         "  With N > 1 threads (default: every core) it also gives the N-thread speed-up round by round and the\n"
         "  machine's ceiling for it: N threads sharing nothing, each decoding its own copy on one thread.\n"
         "\n"
         "mpirun -np N ecf8 bench serve --config C.yaml [--weights ecf8|raw] [--concurrency 1,4,16,64]\n"
         "    [--input-len L] [--output-len O] [--range-ratio R] [--request-rate Q|inf] [--num-prompts P]\n"
         "    [--seed S] [--json FILE] [--backend ...] [--gemm ...] [--decoded-experts-gb G|auto]\n"
         "    [--expert-area auto|full|half] [--threads N]\n"
         "  Serving throughput, as vLLM's serving benchmark: random-token prompts of L (default 32) tokens and\n"
         "  outputs of O (default 16), each uniform within +-R (default 0.5), go through the continuous-batching\n"
         "  engine once per concurrency level (P requests per level, default max(4, 2 x level)), arriving at Q\n"
         "  requests/s (Poisson; default inf: all at once) with at most `level` in flight. Prints output tokens/s,\n"
         "  TTFT and TPOT (median, p99), the peak of KV blocks in use and preemptions per level; --weights raw\n"
         "  runs the same shards on the original FP8 bytes; --decoded-experts-gb and --expert-area as for ecf8 run.\n",
         cmd_bench},
        {"demo", "the codec demo: synthetic DeepSeek-like weights -> compress -> verify",
         "ecf8 demo [--out DIR] [--seed S] [--threads N]\n"
         "  Writes DIR/demo.safetensors (FP8 weights with 128x128 block scales, BF16 embeddings, F32 norms),\n"
         "  compresses it, verifies it bit-exactly and prints the per-tensor table. DIR defaults to out/demo.\n",
         cmd_demo},
        {"synth", "write a synthetic Hugging Face checkpoint with DeepSeek-V3's layout",
         "ecf8 synth --arch deepseek-v3 --preset tiny|small|FILE.yaml --out DIR [--seed S] [--threads N]\n"
         "  Writes DIR/config.json, sharded *.safetensors files and model.safetensors.index.json with the\n"
         "  real checkpoint's tensor names and dtypes: F8_E4M3 linear weights with F32 128x128\n"
         "  weight_scale_inv blocks, BF16 embeddings, norms and gate, F32 e_score_correction_bias.\n"
         "  Weights are heavy-tailed (Student-t), so exponent entropy is in the 2.5-3 bit range of real ones.\n"
         "  Also writes tokenizer.json and tokenizer_config.json: a byte-level BPE learned from an embedded text\n"
         "  sample up to vocab_size, with DeepSeek's pre-tokenizer, special tokens and chat template, so text\n"
         "  in and text out work (a random model's text is gibberish).\n"
         "  --preset  tiny (a few MB; the default model of the README and tests), small (a few GB; for\n"
         "            streaming benchmarks) or a YAML file of config.json overrides (see docs/CONFIG.md)\n"
         "  --seed    seed of every draw (default 0); the same seed gives the same bytes\n",
         cmd_synth},
        {"plan", "memory plan: what fits on how many GPUs, with how much KV cache",
         "ecf8 plan --config C.yaml [--json] [--model DIR] [--gemm fp32|fp8] [--decoded-experts-gb G|auto]\n"
         "    [--expert-area auto|full|half]\n"
         "  Reads C.yaml and the model's config.json; no weights needed. For each rank: weight bytes in FP8\n"
         "  and in ECF8, what lives on the GPU and what in pinned host memory, decode scratch, activation\n"
         "  workspace and the KV cache (MLA latent cache bytes per token, token capacity, largest batch at\n"
         "  max_model_len). Then the fewest GPUs of this size that hold the model with min_kv_tokens of KV\n"
         "  cache, in FP8 and in ECF8. When the checkpoint's weights are present, the ECF8 ratio is measured\n"
         "  on a sample of them; otherwise a stated default is used. --gemm overrides compute.gemm, as for\n"
         "  ecf8 run: with fp8 the workspace includes the FP8 GEMM's buffers. --decoded-experts-gb overrides\n"
         "  memory.decoded_experts_gb: the plan says how many routed experts each rank keeps decoded.\n"
         "  --expert-area overrides memory.expert_area (auto, full or half; see ecf8 run); the plan says which\n"
         "  area each rank takes.\n"
         "  --json   stable machine-readable output\n"
         "  --model  override the YAML's model directory\n",
         cmd_plan},
        {"shard", "stream a checkpoint into per-rank ECF8 shards",
         "ecf8 shard --config C.yaml [--model DIR] [--out DIR] [--threads N]\n"
         "  Splits every tensor by its role (column/row/vocab parallel, replicated, routed expert; block\n"
         "  scales with their weights), compresses it with ECF8 and writes OUT/rank-RRRRR-of-WWWWW.safetensors\n"
         "  plus OUT/manifest.json (world layout, each rank's tensors, tiers and checksums) and a copy of\n"
         "  config.json. Memory stays bounded (tensor by tensor); files appear only when complete.\n",
         cmd_shard},
        {"verify-shards", "prove shards reassemble to the source checkpoint, bit for bit",
         "ecf8 verify-shards --config C.yaml [--model DIR] [--out DIR] [--threads N]\n"
         "  Decodes every rank's tensors, reassembles each source tensor and compares it with the checkpoint.\n"
         "  Exits 1 and names each tensor that differs or is missing.\n",
         cmd_verify_shards},
        {"unshard", "reassemble shards into a Hugging Face checkpoint",
         "ecf8 unshard --config C.yaml --out DIR [--shards DIR] [--threads N]\n"
         "  Writes DIR/model.safetensors (+ config.json) with every sharded tensor reassembled and decoded\n"
         "  to its original bytes. --shards defaults to the YAML's output directory.\n",
         cmd_unshard},
        {"run", "generate under mpirun with weights kept compressed and decoded just in time",
         "mpirun -np N ecf8 run --config C.yaml --chat MESSAGE | --prompt TEXT | --prompt-ids 1,2,3 [options]\n"
         "mpirun -np N ecf8 run --config C.yaml --requests FILE.jsonl [--output FILE.jsonl] [options]\n"
         "  Each rank loads its shard (the YAML's output, or --shards DIR) keeping every weight ECF8-compressed\n"
         "  (but routed experts kept decoded, --decoded-experts-gb) in its planned tier (GPU or pinned host\n"
         "  memory), decodes each layer just in time on a decode stream while the previous layer computes,\n"
         "  and runs tensor/expert-parallel DeepSeek-V3 on one GPU per rank\n"
         "  (local rank -> device; NCCL between ranks) or on the CPU backend (MPI between ranks).\n"
         "  N must equal the shards' world size. Rank 0 prints the generated text as it is produced (with a\n"
         "  text prompt), then per-step timings, each rank's memory and the generated token ids.\n"
         "  Requests are served with continuous batching (rank 0 schedules every step for all ranks): a paged\n"
         "  KV cache (kv_cache.block_size, dtype), steps of up to kv_cache.max_num_batched_tokens tokens and\n"
         "  max_num_seqs sequences, long prompts prefilled in chunks, decode tokens first; when KV blocks run\n"
         "  out, requests wait or the newest is preempted and recomputed later.\n"
         "  --backend auto|cpu|cuda  auto (default): cuda when this build has CUDA and a GPU is visible\n"
         "  --gemm fp32|fp8        CUDA: fp32 dequantizes weights and multiplies in FP32, as the CPU does;\n"
         "                         fp8 uses cuBLASLt's block-scaled FP8 GEMM (DeepSeek's 1x128 activation\n"
         "                         quantization) where it applies: faster, less exact. Default: the YAML's\n"
         "                         compute.gemm (fp32); the plan counts the FP8 GEMM's memory\n"
         "  --decoded-experts-gb G --weights ecf8: up to G GiB per rank of routed experts kept decoded (FP8\n"
         "                         bytes, used in place, never decoded again): faster where memory allows, at\n"
         "                         the KV pool's expense; never below min_kv_tokens, never host-tier experts.\n"
         "                         auto: no cap, in the KV room beyond what max_num_seqs sequences of\n"
         "                         max_model_len can use. Default: the YAML's memory.decoded_experts_gb (0)\n"
         "  --expert-area A        where routed experts decode (memory.expert_area): full, each its own\n"
         "                         place, small steps in one decode launch per layer; half, two places that\n"
         "                         four expert groups take in turn: about half the experts' decode scratch,\n"
         "                         so more KV, every step in four groups; auto (default), half where a full\n"
         "                         area leaves less KV than max_num_seqs sequences of max_model_len use\n"
         "  Prompt (exactly one):\n"
         "  --prompt-ids LIST      comma-separated token ids of the prompt\n"
         "  --prompt TEXT          text, tokenized with the model's tokenizer (with the special tokens its\n"
         "                         post-processor adds, as Hugging Face does; none for DeepSeek's files)\n"
         "  --chat MESSAGE         one user message in the model's chat format (its tokenizer_config.json\n"
         "                         chat_template; DeepSeek-V3's is rendered natively), assistant turn opened\n"
         "  --system TEXT          with --chat: the system prompt\n"
         "  --tokenizer DIR        tokenizer.json + tokenizer_config.json (default: the model directory that\n"
         "                         the shard manifest names)\n"
         "  --requests FILE.jsonl  many requests instead of one prompt, one JSON object per line:\n"
         "                         {\"id\": \"r1\", \"prompt_ids\": [1, 2], \"max_new_tokens\": 8, \"temperature\": "
         "0,\n"
         "                         \"top_p\": 1, \"seed\": 0, \"stop_ids\": [2]}, or \"prompt\": TEXT, or\n"
         "                         \"messages\": [{\"role\": \"user\", \"content\": TEXT}, ...] (a chat, rendered as\n"
         "                         --chat renders one); \"stop\": STRING or [STRINGS] ends a request once its\n"
         "                         text holds one (text cut before it). Fields left out take the options\n"
         "                         below. Progress goes to stderr: a bar on a terminal, else a line every 10 s\n"
         "  --output FILE.jsonl    with --requests: one result per request, in input order: {\"id\",\n"
         "                         \"output_ids\", \"finish_reason\": \"length\"|\"stop\", \"prompt_tokens\", "
         "\"text\",\n"
         "                         \"stop_string\" (when one ended it)}\n"
         "                         (then only their count is printed; without --output every result is)\n"
         "  --show-special         print special tokens in the generated text (default: hidden)\n"
         "  --batch B              serve B copies of the prompt (copy b samples with seed S + b; default 1)\n"
         "  --max-new-tokens K     stop each sequence after K new tokens (default 16)\n"
         "  --eos-id N             stop a sequence on token N (default: config.json's eos_token_id, else the\n"
         "                         tokenizer's eos with a text prompt; -1: never)\n"
         "  --temperature T        0 (default): greedy; > 0: sample with --top-p P (default 1) and --seed S\n"
         "  --weights MODE         ecf8 (default): decode just in time; raw: the original FP8 bytes, decoded\n"
         "                         once at load and used in place (the speed baseline); raw-copy: the same\n"
         "                         bytes copied into the decode slots (the ECF8 schedule without the decode)\n"
         "  --dump-logits FILE     the logits of every sampled token, float32 little-endian, [vocab] each, in\n"
         "                         the order sampled\n"
         "  --trace FILE.json      Chrome/Perfetto trace of every rank's copy/decode/compute/comm streams\n"
         "  --threads N            threads for decoding the shard and, on the CPU backend, for the linear\n"
         "                         layers and BLAS\n"
         "                         (default or 0: codec.threads of the YAML, else cores / ranks)\n",
         cmd_run},
        {"tokenize", "text to token ids with a model's tokenizer",
         "ecf8 tokenize --tokenizer DIR [--json] [--pieces] [--no-special] TEXT|-\n"
         "  Encodes TEXT (or all of standard input with -) with DIR/tokenizer.json: added and special tokens,\n"
         "  the pre-tokenizer's regex splits, byte-level BPE. Special tokens are added as tokenizer.json's\n"
         "  post-processor says (Hugging Face's rule; none for DeepSeek's files). Invalid UTF-8 becomes\n"
         "  U+FFFD first.\n"
         "  Prints the ids comma-separated (usable as ecf8 run --prompt-ids).\n"
         "  --json        one JSON array of ids\n"
         "  --pieces      one line per token: its id and its text\n"
         "  --no-special  add no special tokens\n",
         cmd_tokenize},
        {"detokenize", "token ids to text with a model's tokenizer",
         "ecf8 detokenize --tokenizer DIR [--skip-special] IDS|-\n"
         "  Decodes ids (1,2,3 or [1, 2, 3] or white-space separated; - reads them from standard input) and\n"
         "  prints the text. Bytes that do not form UTF-8 print as U+FFFD.\n"
         "  --skip-special  leave special tokens out\n",
         cmd_detokenize},
    };
    return commands;
}

static void print_help() {
    std::printf(
        "ecf8: serve DeepSeek-class models with losslessly compressed (ECF8) weights\n\n"
        "usage: ecf8 COMMAND [ARGS]   (ecf8 COMMAND --help for details)\n\ncommands:\n");
    for (const Command& c : all_commands()) std::printf("  %-11s %s\n", c.name, c.summary);
    std::printf("\nenvironment: ECF8_LOG_LEVEL=error|warn|info|debug|trace\n");
}

}  // namespace ecf8

int main(int argc, char** argv) {
    using namespace ecf8;
    if (argc < 2 || !std::strcmp(argv[1], "--help") || !std::strcmp(argv[1], "-h") || !std::strcmp(argv[1], "help")) {
        print_help();
        return argc < 2 ? 2 : 0;
    }
    if (!std::strcmp(argv[1], "--version")) {
        std::printf("ecf8 0.1.0 (ECF8 format 1)\n");
        return 0;
    }
    for (const Command& c : all_commands()) {
        if (std::strcmp(argv[1], c.name) != 0) continue;
        CommandArgs args(argv + 2, argv + argc);
        for (const auto& a : args) {
            if (a == "--help" || a == "-h") {
                std::printf("%s", c.usage);
                return 0;
            }
        }
        try {
            return c.run(args);
        } catch (const Error& e) {
            std::fprintf(stderr, "ecf8 %s: error: %s\n", c.name, e.what());
            return 1;
        } catch (const std::exception& e) {
            std::fprintf(stderr, "ecf8 %s: error: %s\n", c.name, e.what());
            return 1;
        }
    }
    std::fprintf(stderr, "ecf8: unknown command '%s'; see 'ecf8 --help'\n", argv[1]);
    return 2;
}
