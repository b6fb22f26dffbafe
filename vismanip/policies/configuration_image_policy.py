"""Every knob of ImagePolicy, documented once."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class ImagePolicyConfig:
    """Camera images (+ proprioception) -> 7-D action.

    cameras: cameras to use; empty means every `<camera>_image` key in the dataset.
    lowdim_keys: proprioceptive obs keys appended to the image features (empty: images
        only). Object state is deliberately not among the defaults: results are image-only.
    encoder: "compact" (4 conv layers, fast on CPU; the default) or "resnet18"
        (torchvision's, randomly initialised, as robomimic's ResNet18Conv).
    num_keypoints: spatial soft-argmax keypoints per camera (robomimic's SpatialSoftmax).
    feature_dim: features per camera after the keypoint projection.
    hidden_dims: MLP widths between fused features and the action head.
    head: "deterministic" (tanh MLP, `loss` L1 or MSE), "gmm" (Gaussian mixture, NLL) or
        "chunk" (action chunking as in ACT, Zhao et al. 2023: a tanh MLP predicts the next
        `chunk_size` actions; at run time every step predicts a chunk and the action taken
        is the weighted mean of what the last `chunk_size` chunks said for this step).
    loss: "l1" or "mse" for the deterministic and chunk heads.
    gmm_modes: mixture components of the GMM head.
    chunk_size: actions per chunk (chunk head).
    ensemble_decay: ACT's temporal-ensembling rate m: the prediction made i steps earlier
        weighs exp(m * i), so older predictions count more and actions change smoothly;
        0 averages them equally.
    frames: observation history: the policy reads the last `frames` observations, each
        encoded by the same camera encoders, features concatenated oldest first. An
        episode's first steps repeat its first observation (robomimic's frame stacking).
    lowdim_std_floor: the proprio is normalised by max(its std over the demos, this).
        Demos from a scripted expert hold some values almost still: over clean Lift demos
        the gripper quaternion's w has std 0.003, so a 2 degree tilt moves it by 6 sigma
        and moved the BC policy's commands by 0.3 (position, gripper) and its yaw to
        saturation with the images unchanged. 0: the plain std (the default every
        measured run used).
    lowdim_std_floor_keys: the proprio keys the floor applies to ([]: every key). The
        quaternion alone with floor 0.2 dulls its tilt components (x, z, w: demo std
        0.003-0.024) while its yaw component (std 0.21) keeps its own.
    raw_lowdim_keys: proprio keys fed as they are (not normalised), as robomimic's image
        configs feed all proprio; for values that the demos hold almost still but that
        vary at run time (the gripper quaternion under pushes).
    """

    cameras: list[str] = field(default_factory=list)
    lowdim_keys: list[str] = field(
        default_factory=lambda: ["robot0_eef_pos", "robot0_eef_quat", "robot0_gripper_qpos"]
    )
    encoder: str = "compact"
    num_keypoints: int = 32
    feature_dim: int = 64
    hidden_dims: list[int] = field(default_factory=lambda: [256, 256])
    head: str = "deterministic"
    loss: str = "l1"
    gmm_modes: int = 5
    chunk_size: int = 10
    ensemble_decay: float = 0.01
    frames: int = 1
    lowdim_std_floor: float = 0.0
    lowdim_std_floor_keys: list[str] = field(default_factory=list)
    raw_lowdim_keys: list[str] = field(default_factory=list)

    @property
    def action_horizon(self) -> int:
        """Actions per training target: the chunk for the chunk head, else one."""
        return self.chunk_size if self.head == "chunk" else 1
