"""Export trained policies for robots: TorchScript, torch.export and ONNX, parity-checked."""

from vismanip.export.deployable import DeployablePolicy, build_metadata
from vismanip.export.export import ExportReport, export_policy
from vismanip.policies.artifact import FORMATS, ExportedArtifact, ExportedPolicyActor

__all__ = [
    "FORMATS",
    "DeployablePolicy",
    "ExportReport",
    "ExportedArtifact",
    "ExportedPolicyActor",
    "build_metadata",
    "export_policy",
]
