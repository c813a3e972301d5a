"""Export a sentence-transformers model (transformer + mean pooling) to an ONNX graph.

Needs torch, transformers and the ``onnx`` package; it runs once per machine (or whenever
the weights change), and the graph it writes is then run by ONNX Runtime without torch.
The export is checked before it is kept: the graph's vectors for a few probe texts must
match torch's within ``EXPORT_TOLERANCE``.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np

from imgsearch.encode.base import quiet_model_loading
from imgsearch.encode.onnx_inputs import INPUTS, OUTPUT, encode_batch
from imgsearch.errors import ModelUnavailableError

OPSET = 17
EXPORT_TOLERANCE = 1e-5
PROBE_TEXTS = ("a red shoe", "Ünïcödé café, 日本語 and 😀 in one longer sentence", "x")


def export_sentence_model(source: Path, target: Path, tokenizer: Any) -> None:
    """Write the ONNX graph of the model in ``source`` to ``target`` (mean-pooled,
    not normalised: normalising is the encoder's job, as on the torch path), optimized
    for ONNX Runtime, to be opened with its optimizations off."""
    try:
        import onnx  # noqa: F401 -- torch's exporter needs it; fail with a clear reason
        import torch
        from transformers import AutoModel
    except ImportError as exc:
        raise ModelUnavailableError(
            f"exporting the text model to ONNX needs torch, transformers and onnx "
            f"({exc.name} is missing): pip install onnx") from exc

    class MeanPooled(torch.nn.Module):
        def __init__(self, model: Any) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
            hidden = self.model(input_ids=input_ids, attention_mask=attention_mask,
                                token_type_ids=token_type_ids).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)

    with quiet_model_loading():
        model = AutoModel.from_pretrained(str(source))
    model.eval()
    wrapped = MeanPooled(model)
    feeds = encode_batch(tokenizer, list(PROBE_TEXTS))
    example = tuple(torch.from_numpy(feeds[name]) for name in INPUTS)
    axes = {name: {0: "batch", 1: "tokens"} for name in INPUTS}
    axes[OUTPUT] = {0: "batch"}
    with torch.no_grad(), warnings.catch_warnings():
        # before exporting: the model traced for export no longer answers as before
        expected = wrapped(*example).numpy()
        warnings.simplefilter("ignore")  # tracer notes about shapes the dynamic axes cover
        raw = target.with_name(target.name + ".raw")
        try:
            torch.onnx.export(wrapped, example, str(raw), input_names=list(INPUTS),
                              output_names=[OUTPUT], dynamic_axes=axes, opset_version=OPSET,
                              dynamo=False)
            _optimize(raw, target)
        finally:
            raw.unlink(missing_ok=True)
    _check(target, feeds, expected)


def _optimize(raw: Path, target: Path) -> None:
    """Save the graph as ONNX Runtime optimizes it, so that opening it later skips that
    work (a third of the start-up). Up to the extended level only: those rewrites are
    portable, unlike the layout ones tied to this processor."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    options.optimized_model_filepath = str(target)
    options.log_severity_level = 3
    onnxruntime.InferenceSession(str(raw), options, providers=["CPUExecutionProvider"])


def _check(target: Path, feeds: dict[str, Any], expected: Any) -> None:
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = onnxruntime.InferenceSession(str(target), options,
                                           providers=["CPUExecutionProvider"])
    got = session.run([OUTPUT], feeds)[0]
    worst = float(np.abs(got - expected).max())
    if not worst <= EXPORT_TOLERANCE:
        raise ModelUnavailableError(
            f"the ONNX export differs from the torch model by {worst:.2e} "
            f"(more than {EXPORT_TOLERANCE:.0e}); it was not kept")

