"""Read exported policy artifacts: TorchScript (.pt), torch.export (.pt2), ONNX.

Each artifact holds the traced DeployablePolicy and its metadata JSON (TorchScript and
torch.export as an extra file named `vismanip.json`, ONNX as a metadata property of that
name). Reading lives here, beside the checkpoint loader, so evaluation and DAgger load
either kind of policy without importing the export stage; `vismanip.export` writes them.
"""

from __future__ import annotations

import contextlib
import io
import json
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from vismanip.errors import VismanipError

FORMATS = {"torchscript": ".pt", "torch_export": ".pt2", "onnx": ".onnx"}
METADATA_FILE = "vismanip.json"  # name of the metadata entry inside every artifact
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

    def reset(self) -> None:
        """Start a new episode: clears a stateful policy's memory (action chunks, history)."""
        if self.metadata.get("stateful"):  # only TorchScript artifacts carry state
            self._module.reset()

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
        self.artifact.reset()

    def select_action(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        inputs = [np.ascontiguousarray(obs[key])[None] for key in self.image_keys]
        if self.proprio_keys:
            proprio = np.concatenate(
                [np.asarray(obs[key], np.float32) for key in self.proprio_keys]
            )
            inputs.append(proprio[None])
        action, _ = self.artifact(*inputs)
        return action[0].astype(np.float64)
