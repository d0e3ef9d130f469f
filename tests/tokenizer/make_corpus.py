#!/usr/bin/env python3
"""Deterministic test corpus for the tokenizer comparison with Hugging Face (compare_hf.py) and the speed
benchmark (bench/tokenizer_speed.py). Everything is generated here from a seed: word lists and code
snippets written for this file, character ranges, and random combinations. No network, nothing copied.

    make_corpus.py OUT [--tokenizer-json PATH] [--seed N]     one string per line, as hex of its bytes
    make_corpus.py --bench-text OUT --megabytes M              mixed-language text for the benchmark
"""
import argparse
import json
import random

ENGLISH = ("the of and to in is was for on that with as by at from it this be are have an not or which "
           "one all their there been has more when will would who so no if out up about into than them can "
           "only other new some could time these two may then do first any my now such like our over man me "
           "even most made after also did many before must through back years where much your way well down "
           "should because each just those people how too little state good very make world still own see "
           "men work long get here between both life being under never day same another know while last "
           "tokenizer inference weights compressed decoder matrix kernel throughput latency gradient tensor "
           "don't isn't it's we're they've I'm you'll she'd O'Neill naïve café résumé coöperate façade").split()
CHINESE = ("的一是不了人我在有他这为之大来以个中上们到说国和地也子时道出而要于就下得可你年生自会那后能对着事其"
           "里所去行过家十用发天如然作方成者多日都三小军二无同么经法当起与好看学进种将还分此心前面又定见只主"
           "没公从已知数据模型压缩推理权重张量计算机网络语言文字处理速度测试北京上海深圳广州汉字编码解码")
HIRAGANA = "".join(chr(c) for c in range(0x3041, 0x3097))
KATAKANA = "".join(chr(c) for c in range(0x30A1, 0x30FB)) + "ー"
KANJI = "日本語東京大阪京都時間学校先生電車会社仕事料理天気雨雪桜山川海空花鳥風月"
ARABIC = "".join(chr(c) for c in range(0x0621, 0x064B))
ARABIC_MARKS = "".join(chr(c) for c in range(0x064B, 0x0653))
EMOJI = ["😀", "😂", "🥲", "❤️", "👍", "👍🏽", "🎉", "🚀", "🤖", "🧠", "🇯🇵", "🇺🇸", "🇫🇷", "1️⃣", "#️⃣",
         "👨‍👩‍👧‍👦", "👩🏽‍💻", "🏳️‍🌈", "🧑‍🤝‍🧑", "👁️‍🗨️", "🐈‍⬛", "❤️‍🔥", "🫠", "🪿", "☕", "✅", "⚠️"]
ODD_SPACES = ["\u00a0", "\u3000", "\u2028", "\u2029", "\u0085", "\u200b", "\u180e", "\ufeff", "\u2000",
              "\u2003", "\u2007", "\u2009", "\u200a", "\u202f", "\u205f", "\u1680", "\u000b", "\u000c", "\u001c"]
OTHER_SCRIPTS = ["Привет мир, как дела?", "Καλημέρα κόσμε", "שלום עולם", "नमस्ते दुनिया", "สวัสดีชาวโลก",
                 "ሰላም ዓለም", "Xin chào thế giới", "Γειά σου", "ကမ္ဘာ", "ಕನ್ನಡ", "தமிழ்", "ქართული",
                 "Zażółć gęślą jaźń", "Ærøskøbing", "İstanbul ığdır", "Ελληνικά ΆΈΉ"]
COMBINING = ["e\u0301", "a\u0308", "n\u0303", "Z\u0351\u0352\u0353\u0354", "\u0915\u093f", "o\u0328\u0301",
             "\u1100\u1161\u11a8", "\u0627\u064e", "x\u20dd", "\u0301", "\u0345\u0300"]
CODE = [
    "def {f}(x, y=2):\n    \"\"\"Return the {w}.\"\"\"\n    if x > {n}:\n        return x * y\n    return [i ** 2 for i in range(x)]\n",
    "#include <vector>\nint {f}(const std::vector<int>& v) {{\n\tint s = 0;\n\tfor (int x : v) s += x * {n};\n\treturn s;\n}}\n",
    "function {f}(a, b) {{\r\n  const r = a?.{w} ?? b;\r\n  return `${{r}}-{n}`;\r\n}}\r\n",
    "fn {f}(v: &[u32]) -> Option<u32> {{\n    v.iter().copied().filter(|x| *x > {n}).max()\n}}\n",
    "func {f}(m map[string]int) (int, error) {{\n\tif len(m) == 0 {{\n\t\treturn 0, errors.New(\"{w}\")\n\t}}\n\treturn m[\"{w}\"], nil\n}}\n",
    "SELECT {w}, COUNT(*) AS n FROM t_{f} WHERE id >= {n} GROUP BY {w} ORDER BY n DESC;\n",
    "<div class=\"{w}\">\n  <a href=\"https://example.com/{f}?q={n}&amp;x=1\">{w}</a>\n</div>\n",
    "{{\"{w}\": [{n}, {n}.5, -1e-9, true, null], \"{f}\": {{\"k\": \"v\\n\\t\"}}}}\n",
    "    x = {n}; y = x << 3 | 0xFF; z = (x & ~y) ^ 0b1010;  // {w}\n",
    "#!/bin/bash\nfor f in *.{w}; do\n  echo \"$f\" | sed -e 's/a/b/g' >> out_{n}.txt\ndone\n",
]


def words(rng, n):
    return " ".join(rng.choice(ENGLISH) for _ in range(n))


def english(rng):
    sentences = []
    for _ in range(rng.randint(1, 5)):
        s = words(rng, rng.randint(3, 18))
        s = s[0].upper() + s[1:] + rng.choice([".", "!", "?", ",", ";", "...", ":", " —"])
        sentences.append(s)
    return " ".join(sentences)


def pick(rng, alphabet, lo, hi):
    return "".join(rng.choice(alphabet) for _ in range(rng.randint(lo, hi)))


def chinese(rng):
    parts = [pick(rng, CHINESE, 2, 30) + rng.choice(["，", "。", "！", "？", "、", "：", "；", "“", "”", "（", "）", ""])
             for _ in range(rng.randint(1, 5))]
    return "".join(parts)


def japanese(rng):
    return "".join(rng.choice([pick(rng, HIRAGANA, 1, 8), pick(rng, KATAKANA, 1, 8), pick(rng, KANJI, 1, 4),
                               "、", "。", "「", "」"]) for _ in range(rng.randint(2, 12)))


def korean(rng):
    return " ".join(pick(rng, [chr(c) for c in range(0xAC00, 0xD7A4)], 1, 5) for _ in range(rng.randint(1, 10)))


def arabic(rng):
    out = []
    for _ in range(rng.randint(1, 10)):
        w = "".join(rng.choice(ARABIC) + (rng.choice(ARABIC_MARKS) if rng.random() < 0.3 else "")
                    for _ in range(rng.randint(2, 7)))
        out.append(w)
    return " ".join(out) + rng.choice(["", "؟", "،", " ١٢٣", " 2024"])


def emoji(rng):
    return "".join(rng.choice(EMOJI + [" ", "a", "\u200d", "\ufe0f", words(rng, 1)]) for _ in range(rng.randint(1, 12)))


def code(rng):
    snippet = rng.choice(CODE).format(f=rng.choice(["foo", "bar_baz", "getValue", "run2", "x"]),
                                      w=rng.choice(ENGLISH), n=rng.randint(0, 10 ** rng.randint(1, 9)))
    return snippet.replace("    ", "\t") if rng.random() < 0.2 else snippet


def number(rng):
    digits = "".join(rng.choice("0123456789") for _ in range(rng.randint(1, 60)))
    forms = [digits, digits + "." + digits[:3], "-" + digits, "abc" + digits + "def", digits + "%", "$" + digits,
             " " + digits, f"{int(digits):,}", "v" + ".".join(digits[:6]), "０１２３４５６７８９"[: len(digits) % 10 + 1],
             "٠١٢٣٤٥٦٧٨٩"[: len(digits) % 10 + 1], "x²³ ½ ⅓ Ⅻ ①", digits + "e-" + digits[:2]]
    return rng.choice(forms)


def whitespace(rng):
    pieces = [" " * rng.randint(1, 40), "\t" * rng.randint(1, 6), "\n" * rng.randint(1, 5), "\r\n" * rng.randint(1, 3),
              "\r", " \n ", " \t\n", words(rng, rng.randint(1, 3))]
    s = "".join(rng.choice(pieces) for _ in range(rng.randint(1, 10)))
    return rng.choice([s, s + "   ", "   " + s, s + "\n", "  " + s + "  \r\n"])


def odd_spaces(rng):
    return "".join(rng.choice(ODD_SPACES + [words(rng, 1), " ", "1", "中", "!"]) for _ in range(rng.randint(1, 14)))


def mixed(rng):
    makers = [english, chinese, japanese, korean, arabic, emoji, number, odd_spaces]
    parts = [rng.choice(makers)(rng) for _ in range(rng.randint(2, 5))]
    parts += [rng.choice(OTHER_SCRIPTS), rng.choice(COMBINING) * rng.randint(1, 3)]
    rng.shuffle(parts)
    return rng.choice(["", " ", "\n"]).join(parts)


def specials(rng, added):
    near = ["<｜User", "｜>", "<｜user｜>", "<|User|>", "<｜Assistant｜", "<think", "</think>>", "<<think>>"]
    parts = []
    for _ in range(rng.randint(1, 8)):
        r = rng.random()
        parts.append(rng.choice(added) if r < 0.45 else rng.choice(near) if r < 0.55 else
                     rng.choice([words(rng, rng.randint(1, 4)), "hi", " ", "\n", "x", "中文", "12", "😀"]))
    return "".join(parts)


def invalid_utf8(rng):
    bad = [b"\xff", b"\xfe", b"\x80", b"\xbf", b"\xc0\xaf", b"\xc1\xbf", b"\xe0\x80\xaf", b"\xed\xa0\x80",
           b"\xed\xbf\xbf", b"\xf4\x90\x80\x80", b"\xf5\x80\x80\x80", b"\xf0\x8f\xbf\xbf", b"\xe4\xb8", b"\xf0\x9f\x98",
           b"\xf0\x9f", b"\xc3", b"\xe2\x82", b"\xf8\x88\x80\x80\x80", b"\xe4\xb8\xe4\xb8\xad", b"\x00"]
    parts = []
    for _ in range(rng.randint(1, 8)):
        r = rng.random()
        if r < 0.4:
            parts.append(rng.choice(bad))
        elif r < 0.5:
            parts.append(bytes(rng.randrange(256) for _ in range(rng.randint(1, 12))))
        else:
            parts.append(rng.choice([english, chinese, emoji, number])(rng).encode())
    return b"".join(parts)


def code_point_sweep(step, interleave):
    """Every code point but the surrogates, `step` per string, plain or each one between letters and digits."""
    cps = [c for c in range(1, 0x110000) if not 0xD800 <= c < 0xE000]
    out = []
    for i in range(0, len(cps), step):
        chunk = [chr(c) for c in cps[i:i + step]]
        out.append("".join(f"a{c}1 {c}" for c in chunk) if interleave else "".join(chunk))
    return out


def corpus(seed, added):
    rng = random.Random(seed)
    makers = [english, chinese, japanese, korean, arabic, emoji, code, number, whitespace, odd_spaces, mixed]
    strings = ["", " ", "\n", "a", "  ", "\r\n", "\t", "中", "😀", "1234", "<｜begin▁of▁sentence｜>"]
    for maker in makers:
        strings += [maker(rng).encode() for _ in range(220)]
    strings += [specials(rng, added).encode() for _ in range(300)]
    strings += added  # each added token alone
    strings += [invalid_utf8(rng) for _ in range(300)]
    strings += [s.encode("utf-8", "surrogatepass") for s in code_point_sweep(1024, False)]
    strings += [s.encode() for s in code_point_sweep(4096, True)]
    return [s if isinstance(s, bytes) else s.encode() for s in strings]


def bench_text(seed, megabytes):
    rng = random.Random(seed)
    makers = [english] * 6 + [chinese] * 2 + [japanese, korean, arabic, emoji, code, code, number, whitespace, mixed]
    parts, size = [], 0
    while size < megabytes * 1_000_000:
        p = rng.choice(makers)(rng) + rng.choice(["\n", " ", "\n\n"])
        parts.append(p)
        size += len(p.encode())
    return "".join(parts)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--tokenizer-json", help="takes the added tokens from this file")
    ap.add_argument("--seed", type=int, default=20240917)
    ap.add_argument("--bench-text", action="store_true")
    ap.add_argument("--megabytes", type=float, default=4.0)
    args = ap.parse_args()
    if args.bench_text:
        with open(args.out, "w", encoding="utf-8", newline="") as f:
            f.write(bench_text(args.seed, args.megabytes))
        return
    added = ["<｜User｜>", "<｜Assistant｜>", "<｜end▁of▁sentence｜>", "<think>", "</think>"]
    if args.tokenizer_json:
        with open(args.tokenizer_json, encoding="utf-8") as f:
            added = [t["content"] for t in json.load(f)["added_tokens"]]
    with open(args.out, "w") as f:
        for s in corpus(args.seed, added):
            f.write(s.hex() + "\n")


if __name__ == "__main__":
    main()
