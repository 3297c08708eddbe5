"""``dsr model convert-official``: the released DSR_Suite-Model checkpoint as a dsr GSM checkpoint.

The official model (``qwen_vl_spatial.py``, transformers 4.51 layout) keeps the whole geometry branch inside
the vision tower. Its keys map onto ours as follows (everything else is stock Qwen2.5-VL and keeps its name;
our registered conversion mapping places it at load time):

==========================================  ==============================================================
official (``visual.`` = the vision tower)   dsr (``GSMQwen2_5_VLForConditionalGeneration``)
==========================================  ==============================================================
``visual.spatial_encoder.*`` (DINOv2 names)  ``model.geometry_encoder.*`` (HF ``Dinov2WithRegistersModel``;
                                             fused ``attn.qkv`` split, LayerScale renamed, no mask token)
``visual.spatial_merger.ln_q``               ``model.geometry_merger.norm``
``visual.spatial_merger.mlp.0`` / ``mlp.2``  ``model.geometry_merger.fc1`` / ``fc2``
``visual.q_former_{1,2}.norm1``              ``model.gsm.qformer{1,2}.layers.0.query_norm`` (shared with keys)
``visual.q_former_{1,2}.norm2``              ``model.gsm.qformer{1,2}.layers.0.mlp_norm``
``visual.q_former_{1,2}.attn.*`` / ``mlp.*``  ``model.gsm.qformer{1,2}.layers.0.attn.*`` / ``mlp.*``
``visual.q_former_norm``                     ``model.gsm.out_norm``
``visual.q_former_queries``                  ``model.gsm.queries``
==========================================  ==============================================================

The converted config carries :data:`~dsr.gsm.configuration.OFFICIAL_PARITY` (shared key norm, tokens per
second 2, Q-Former 1 reading the whole prompt, the CLIP-mean typo), so our forward computes what the official
forward computes with these weights. Tensors are streamed shard by shard in their stored dtype (a 7B checkpoint
never has to fit in memory twice), every key and shape is checked against our model built on the meta device
before anything is written, and the output appears atomically (a temporary folder renamed at the end).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from dsr.atomic import atomic_write_text
from dsr.gsm.assemble import TOKENIZER_FILES, CheckpointError, require_files

_MERGER = {"ln_q.weight": "norm.weight", "mlp.0.weight": "fc1.weight", "mlp.0.bias": "fc1.bias",
           "mlp.2.weight": "fc2.weight", "mlp.2.bias": "fc2.bias"}
_QFORMER_NORMS = {"norm1.weight": "query_norm.weight", "norm2.weight": "mlp_norm.weight"}
_QFORMER_LINEAR = ("attn.q_proj.", "attn.k_proj.", "attn.v_proj.", "attn.o_proj.", "mlp.gate_proj.",
                   "mlp.up_proj.", "mlp.down_proj.")


def _canonical(key: str) -> str:
    """Official keys in the 4.51 layout (``visual.*``, ``model.layers.*``); a 4.52+ save (``model.visual.*``,
    ``model.language_model.*``) is brought back to it."""
    if key.startswith("model.visual."):
        return key[len("model."):]
    if key.startswith("model.language_model."):
        return "model." + key[len("model.language_model."):]
    return key


def map_official_key(key: str) -> list[str] | None:
    """Our saved key name(s) for one official key, in order (three for a fused qkv), or None for a key that
    carries no weight (a rotary ``inv_freq`` buffer). Unknown geometry-branch keys raise."""
    from dsr.gsm.geometry import pi3_entry_to_hf

    k = _canonical(key)
    if k.endswith("rotary_emb.inv_freq"):
        return None
    if k.startswith("visual.spatial_encoder."):
        import torch

        # Only the names are needed here: a fused qkv of any first-dim size splits into three names.
        names = pi3_entry_to_hf(k[len("visual.spatial_encoder."):], torch.empty(3, 0))
        return ["model.geometry_encoder." + n for n in names]
    if k.startswith("visual.spatial_merger."):
        rest = k[len("visual.spatial_merger."):]
        if rest in _MERGER:
            return ["model.geometry_merger." + _MERGER[rest]]
    elif k.startswith(("visual.q_former_1.", "visual.q_former_2.")):
        which, rest = k[len("visual.q_former_")], k[len("visual.q_former_1."):]
        head = f"model.gsm.qformer{which}.layers.0."
        if rest in _QFORMER_NORMS:
            return [head + _QFORMER_NORMS[rest]]
        if rest.startswith(_QFORMER_LINEAR) and rest.endswith((".weight", ".bias")):
            return [head + rest]
    elif k == "visual.q_former_norm.weight":
        return ["model.gsm.out_norm.weight"]
    elif k == "visual.q_former_queries":
        return ["model.gsm.queries"]
    elif k.startswith(("visual.", "model.", "lm_head.")) and not k.startswith(("visual.spatial", "visual.q_former")):
        return [k]  # stock Qwen2.5-VL, already in the layout our conversion mapping loads
    raise CheckpointError(f"official checkpoint key {key!r} has no counterpart in the dsr GSM model")


def _source_files(src: Path) -> dict[str, list[str]]:
    """Shard file → the tensor names it holds (a single ``model.safetensors`` or an index's weight map)."""
    from safetensors import safe_open

    index = src / "model.safetensors.index.json"
    if index.is_file():
        try:
            weight_map = json.loads(index.read_text())["weight_map"]
        except (OSError, KeyError, json.JSONDecodeError) as exc:
            raise CheckpointError(f"{index}: unreadable shard index ({exc.__class__.__name__})") from None
        shards: dict[str, list[str]] = {}
        for name, shard in weight_map.items():
            shards.setdefault(shard, []).append(name)
        return shards
    files = sorted(src.glob("*.safetensors"))
    if len(files) != 1:
        raise CheckpointError(f"{src}: expected model.safetensors or model.safetensors.index.json")
    with safe_open(str(files[0]), framework="pt") as f:
        return {files[0].name: list(f.keys())}


def _shapes(src: Path, shards: dict[str, list[str]]) -> dict[str, tuple[int, ...]]:
    from safetensors import safe_open

    shapes = {}
    for shard, names in shards.items():
        try:
            with safe_open(str(src / shard), framework="pt") as f:
                for name in names:
                    shapes[name] = tuple(f.get_slice(name).get_shape())
        except (OSError, RuntimeError) as exc:
            raise CheckpointError(f"{src / shard}: unreadable shard ({exc.__class__.__name__}: {exc})") from None
    return shapes


def official_config(src: Path, shapes: dict[str, tuple[int, ...]], *, pi3_heads: int | None = None) -> Any:
    """Our GSM config for the official checkpoint: its Qwen2.5-VL config (legacy 4.51 form read by
    transformers), the geometry branch's shapes read off the weights, and the official parity preset."""
    import torch
    from transformers import Qwen2_5_VLConfig

    from dsr.gsm.configuration import OFFICIAL_PARITY, GSMQwen2_5_VLConfig
    from dsr.gsm.geometry import infer_pi3_config

    try:
        raw = json.loads((src / "config.json").read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{src}: unreadable config.json ({exc.__class__.__name__})") from None
    vision = dict(raw.get("vision_config") or {})
    # The official vision tower stores a back-reference to the whole config and overwrites its own
    # hidden_size with out_hidden_size after building the ViT: the ViT's true width is in its weights.
    vision.pop("config_all", None)
    patch = shapes.get(_find(shapes, "visual.patch_embed.proj.weight"))
    if patch is not None:
        vision["hidden_size"] = int(patch[0])
    raw["vision_config"] = vision
    for key in ("model_type", "transformers_version", "architectures", "_name_or_path"):
        raw.pop(key, None)
    base = Qwen2_5_VLConfig(**raw).to_dict()
    for key in ("model_type", "transformers_version", "architectures"):
        base.pop(key, None)
    meta = {k: torch.empty(v, device="meta") for k, v in shapes.items()}
    canon = {_canonical(k): v for k, v in meta.items()}
    if "visual.q_former_queries" not in canon:
        raise CheckpointError(f"{src}: no visual.q_former_queries: not a DSR_Suite (GSM) checkpoint")
    pi3 = infer_pi3_config(canon, num_heads=pi3_heads, prefix="visual.spatial_encoder.")
    mlp_key = "visual.q_former_1.mlp.gate_proj.weight"
    config = GSMQwen2_5_VLConfig(**base, gsm_strategy="gsm", gsm_num_queries=int(canon["visual.q_former_queries"]
                                                                                  .shape[0]),
                                 gsm_mlp_dim=int(canon[mlp_key].shape[0]) if mlp_key in canon else None,
                                 pi3_config=pi3, **OFFICIAL_PARITY)
    config.check_gsm()
    return config


def _find(shapes: dict[str, Any], canonical: str) -> str:
    return next((k for k in shapes if _canonical(k) == canonical), canonical)


def _expected_saved_shapes(config: Any) -> dict[str, tuple[int, ...]]:
    """Key → shape of what ``save_pretrained`` writes for ``config``: our model built on the meta device, named
    as on disk (Qwen's original names for Qwen's parts, ``model.<ours>`` for ours)."""
    import torch

    from dsr.gsm.modeling import GSMQwen2_5_VLForConditionalGeneration

    with torch.device("meta"):
        model = GSMQwen2_5_VLForConditionalGeneration(config)
    out = {}
    for name, tensor in model.state_dict().items():
        if name.startswith("model.visual."):
            name = name[len("model."):]
        elif name.startswith("model.language_model."):
            name = "model." + name[len("model.language_model."):]
        out[name] = tuple(tensor.shape)
    if config.tie_word_embeddings:
        out.pop("lm_head.weight", None)
    return out


def _mapped_shapes(key: str, shape: tuple[int, ...]) -> Iterator[tuple[str, tuple[int, ...]]]:
    names = map_official_key(key) or []
    if len(names) == 3:  # fused qkv
        yield from ((n, (shape[0] // 3, *shape[1:])) for n in names)
    else:
        yield from ((n, shape) for n in names)


def convert_official_checkpoint(src: str | os.PathLike[str], out: str | os.PathLike[str], *,
                                pi3_heads: int | None = None) -> Path:
    """Convert the official checkpoint dir ``src`` into a dsr GSM checkpoint dir ``out``; returns ``out``.

    Every official key must map, and the mapped keys and shapes must be exactly those of our model (only the
    mask token, which the official encoder deleted, is added as zeros); the first mismatch is one line.
    """
    import torch
    from safetensors import safe_open
    from safetensors.torch import save_file

    src_dir = require_files(src, "official DSR_Suite")
    out_dir = Path(out)
    if (out_dir / "config.json").exists():
        raise CheckpointError(f"{out_dir}: already holds a checkpoint; choose an empty --out")
    shards = _source_files(src_dir)
    shapes = _shapes(src_dir, shards)
    config = official_config(src_dir, shapes, pi3_heads=pi3_heads)
    expected = _expected_saved_shapes(config)
    mapped: dict[str, tuple[int, ...]] = {}
    for key, shape in shapes.items():
        for name, new_shape in _mapped_shapes(key, shape):
            if name in mapped:
                raise CheckpointError(f"{src_dir}: two official keys map onto {name}")
            mapped[name] = new_shape
    mask_token = "model.geometry_encoder.embeddings.mask_token"
    missing = sorted(set(expected) - set(mapped) - {mask_token})
    unexpected = sorted(set(mapped) - set(expected))
    bad = sorted(k for k in set(expected) & set(mapped) if expected[k] != mapped[k])
    if missing or unexpected or bad:
        first = (f"missing {missing[0]}" if missing else f"unexpected {unexpected[0]}" if unexpected else
                 f"shape of {bad[0]}: {mapped[bad[0]]} vs {expected[bad[0]]}")
        raise CheckpointError(f"{src_dir}: official weights do not match the GSM model ({len(missing)} missing, "
                              f"{len(unexpected)} unexpected, {len(bad)} wrong shapes; first: {first})")

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        weight_map: dict[str, str] = {}
        total = 0
        names = sorted(shards)
        for i, shard in enumerate(names):
            tensors: dict[str, torch.Tensor] = {}
            with safe_open(str(src_dir / shard), framework="pt") as f:
                for key in shards[shard]:
                    targets = map_official_key(key)
                    if not targets:
                        continue
                    value = f.get_tensor(key)
                    parts = value.chunk(3, dim=0) if len(targets) == 3 else (value,)
                    tensors.update({t: p.contiguous() for t, p in zip(targets, parts, strict=True)})
            if i == 0 and mask_token not in mapped:
                dtype = next(iter(tensors.values())).dtype if tensors else torch.float32
                tensors[mask_token] = torch.zeros(expected[mask_token], dtype=dtype)
            file = "model.safetensors" if len(names) == 1 else f"model-{i + 1:05d}-of-{len(names):05d}.safetensors"
            save_file(tensors, str(tmp / file), metadata={"format": "pt"})
            weight_map.update(dict.fromkeys(tensors, file))
            total += sum(t.numel() * t.element_size() for t in tensors.values())
        if len(names) > 1:
            atomic_write_text(tmp / "model.safetensors.index.json", json.dumps(
                {"metadata": {"total_size": total}, "weight_map": dict(sorted(weight_map.items()))}, indent=2))
        config.save_pretrained(str(tmp))
        for name in TOKENIZER_FILES:
            if (src_dir / name).is_file():
                shutil.copy2(src_dir / name, tmp / name)
        atomic_write_text(tmp / "dsr_conversion.json", json.dumps({
            "source": str(src_dir.resolve()), "source_tensors": len(shapes), "written_tensors": len(weight_map),
            "parity": "official", "pi3_config": config.pi3_config,
            "note": "weights unchanged; qkv of the π³ encoder split in three; π³'s mask token added as zeros",
        }, indent=2))
        if out_dir.exists():
            out_dir.rmdir()  # an empty folder the user made; a non-empty one fails here, before any loss
        tmp.rename(out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out_dir
