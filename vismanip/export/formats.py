"""Write the three artifact formats: TorchScript (.pt), torch.export (.pt2), ONNX.

Each artifact holds the traced DeployablePolicy and its metadata JSON (TorchScript and
torch.export as an extra file named `vismanip.json`, ONNX as a metadata property of that
name), so a robot-side program can read both with torch or onnxruntime alone. Reading
them is `vismanip.policies.artifact`.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from vismanip.errors import VismanipError
from vismanip.export.deployable import DeployablePolicy, input_names
from vismanip.files import atomic_write
from vismanip.policies.artifact import (
    FORMATS,
    METADATA_FILE,
    OUTPUT_NAMES,
    quietly,
)

# Largest |exported - eager| action difference an artifact may show on recorded observations.
PARITY_TOLERANCE = {"torchscript": 1e-5, "torch_export": 1e-5, "onnx": 1e-4}


def _dynamic_shapes(module: DeployablePolicy, inputs: tuple) -> dict:
    """Batch size dynamic everywhere; image height and width dynamic per camera.
    (Keyed by the name of forward's `*inputs` varargs, as torch.export expects.)"""
    batch = torch.export.Dim("batch", min=1, max=1024)
    shapes: list[dict] = []
    for i in range(module.num_cameras):
        height = torch.export.Dim(f"height_{i}", min=8, max=4096)
        width = torch.export.Dim(f"width_{i}", min=8, max=4096)
        shapes.append({0: batch, 1: height, 2: width})
    shapes += [{0: batch}] * (len(inputs) - module.num_cameras)
    return {"inputs": tuple(shapes)}


def _onnx_installed() -> bool:
    try:
        import onnx  # noqa: F401
        import onnxscript  # noqa: F401
    except ImportError:
        return False
    return True


def write_artifact(
    module: DeployablePolicy, inputs: tuple, path: Path, fmt: str, metadata: dict
) -> None:
    """Trace/export `module` on `inputs` and write it to `path` (atomically)."""
    text = json.dumps(metadata, indent=1)
    if module.policy.stateful and fmt != "torchscript":
        raise VismanipError(
            f"policy.head={module.policy.config.head} keeps state between steps, which only "
            "the TorchScript artifact carries (with its reset()): export to a .pt file"
        )
    # torch.export wants .pt2 names: the temporary keeps the suffix
    temporary_name = f"{path.stem}.tmp{path.suffix}"
    with atomic_write(path, temporary_name) as tmp, quietly(), torch.no_grad():
        if fmt == "torchscript":
            methods = {"forward": inputs}
            if module.policy.stateful:  # a robot calls reset() at each episode's start
                methods["reset"] = ()
            traced = torch.jit.trace_module(module, methods, check_trace=False)
            module.reset()  # tracing stepped the state once
            torch.jit.save(traced, str(tmp), _extra_files={METADATA_FILE: text})
        elif fmt == "torch_export":
            program = torch.export.export(
                module, inputs, dynamic_shapes=_dynamic_shapes(module, inputs)
            )
            torch.export.save(program, str(tmp), extra_files={METADATA_FILE: text})
        elif fmt == "onnx":
            if not _onnx_installed():
                raise VismanipError(
                    "ONNX export needs onnx and onnxscript: pip install 'vismanip[onnx]'"
                )
            import onnx

            onnx_program = torch.onnx.export(
                module,
                inputs,
                dynamo=True,
                input_names=input_names(module.policy),
                output_names=OUTPUT_NAMES,
                dynamic_shapes=_dynamic_shapes(module, inputs),
                verbose=False,
            )
            assert onnx_program is not None  # dynamo=True always returns the program
            model = onnx_program.model_proto
            entry = model.metadata_props.add()
            entry.key, entry.value = METADATA_FILE, text
            onnx.save(model, str(tmp))
        else:
            raise VismanipError(f"unknown export format {fmt!r}; valid: {', '.join(FORMATS)}")
