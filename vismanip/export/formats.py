"""Write and read the three artifact formats: TorchScript (.pt), torch.export (.pt2), ONNX.

Each artifact holds the traced DeployablePolicy and its metadata JSON (TorchScript and
torch.export as an extra file named `vismanip.json`, ONNX as a metadata property of that
name), so a robot-side program can read both with torch or onnxruntime alone.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from vismanip.errors import VismanipError
from vismanip.export.deployable import METADATA_FILE, DeployablePolicy, input_names

FORMATS = {"torchscript": ".pt", "torch_export": ".pt2", "onnx": ".onnx"}
# Largest |exported - eager| action difference an artifact may show on recorded observations.
PARITY_TOLERANCE = {"torchscript": 1e-5, "torch_export": 1e-5, "onnx": 1e-4}
OUTPUT_NAMES = ["action", "fallback"]


@contextlib.contextmanager
def quietly() -> Iterator[None]:
    """Silence what torch prints while tracing/exporting: TorchScript's deprecation
    FutureWarnings, TracerWarnings, and the ONNX exporter's progress lines. Errors pass."""
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        yield


def format_of(path: str | Path) -> str:
    suffix = Path(path).suffix
    for fmt, extension in FORMATS.items():
        if suffix == extension:
            return fmt
    raise VismanipError(
        f"{path}: unknown artifact type {suffix!r}; expected one of "
        + ", ".join(f"{ext} ({fmt})" for fmt, ext in FORMATS.items())
    )


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
    tmp = path.with_name(f"{path.stem}.tmp{path.suffix}")  # torch.export wants .pt2 names
    path.parent.mkdir(parents=True, exist_ok=True)
    with quietly(), torch.no_grad():
        if fmt == "torchscript":
            traced = torch.jit.trace(module, inputs, check_trace=False)
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

            program = torch.onnx.export(
                module,
                inputs,
                dynamo=True,
                input_names=input_names(module.policy),
                output_names=OUTPUT_NAMES,
                dynamic_shapes=_dynamic_shapes(module, inputs),
                verbose=False,
            )
            model = program.model_proto
            entry = model.metadata_props.add()
            entry.key, entry.value = METADATA_FILE, text
            onnx.save(model, str(tmp))
        else:
            raise VismanipError(f"unknown export format {fmt!r}; valid: {', '.join(FORMATS)}")
    os.replace(tmp, path)


class ExportedArtifact:
    """An exported policy loaded for inference: call it with numpy or torch inputs.

    vismanip uses it to evaluate and parity-check artifacts; scripts/run_exported_policy.py
    shows the same loading with torch alone, as a robot would.
    """

    def __init__(self, path: str | Path, threads: int | None = None, device: str = "cpu") -> None:
        self.path = Path(path)
        self.device = torch.device(device)
        if not self.path.is_file():
            raise VismanipError(f"{self.path}: no such exported policy")
        self.format = format_of(self.path)
        try:
            self._load(threads)
        except VismanipError:
            raise
        except Exception as error:  # torch and onnxruntime raise many types for a bad file
            raise VismanipError(
                f"{self.path}: not a readable {self.format} artifact ({type(error).__name__})"
            ) from None

    def _load(self, threads: int | None) -> None:
        files = {METADATA_FILE: ""}
        with quietly():
            if self.format == "torchscript":
                self._module = torch.jit.load(
                    str(self.path), map_location=self.device, _extra_files=files
                )
            elif self.format == "torch_export":
                program = torch.export.load(str(self.path), extra_files=files)
                if self.device.type != "cpu":  # exported programs record their device
                    from torch.export.passes import move_to_device_pass

                    program = move_to_device_pass(program, self.device)
                self._module = program.module()
            else:
                import onnxruntime

                options = onnxruntime.SessionOptions()
                if threads:
                    options.intra_op_num_threads = threads
                    options.inter_op_num_threads = 1
                providers = ["CPUExecutionProvider"]
                if self.device.type == "cuda":
                    providers.insert(0, "CUDAExecutionProvider")
                self._session = onnxruntime.InferenceSession(
                    str(self.path), options, providers=providers
                )
                meta = self._session.get_modelmeta().custom_metadata_map
                files[METADATA_FILE] = meta.get(METADATA_FILE, "")
        text = files[METADATA_FILE]
        if not text:
            raise VismanipError(f"{self.path}: exported without vismanip metadata")
        self.metadata: dict = json.loads(text)

    def __call__(self, *inputs: np.ndarray | torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        """(action (B, A) float32, fallback (B,) bool) for one batch of inputs."""
        if self.format == "onnx":
            arrays = [np.asarray(x.numpy() if isinstance(x, torch.Tensor) else x) for x in inputs]
            feed = {
                name: array.astype(np.float32) if name == "proprio" else array
                for name, array in zip(self.metadata["inputs"], arrays, strict=True)
            }
            action, fallback = self._session.run(OUTPUT_NAMES, feed)
            return action, fallback
        tensors = [torch.as_tensor(x).to(self.device) for x in inputs]
        with torch.inference_mode():
            action, fallback = self._module(*tensors)
        return action.cpu().numpy(), fallback.cpu().numpy()


class ExportedPolicyActor:
    """Adapts an artifact to the rollout loop: obs dict -> one action (for `vismanip eval`)."""

    def __init__(self, path: str | Path) -> None:
        self.artifact = ExportedArtifact(path, threads=1)
        meta = self.artifact.metadata
        self.image_keys = [f"{camera}_image" for camera in meta["cameras"]]
        self.proprio_keys = list(meta["proprio_keys"])

    def reset(self) -> None:
        """The exported policies keep no history."""

    def select_action(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        inputs = [np.ascontiguousarray(obs[key])[None] for key in self.image_keys]
        if self.proprio_keys:
            proprio = np.concatenate(
                [np.asarray(obs[key], np.float32) for key in self.proprio_keys]
            )
            inputs.append(proprio[None])
        action, _ = self.artifact(*inputs)
        return action[0].astype(np.float64)
