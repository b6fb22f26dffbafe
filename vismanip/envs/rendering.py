"""Headless OpenGL that just works: pick a backend, prove it draws real pictures, render lean.

Why this file exists instead of robosuite's own camera observations:
- robosuite's offscreen path returned noise images with Mesa EGL on our machines, while
  `mujoco.Renderer` on the same backend renders correctly (see DESIGN.md);
- MuJoCo binds its GL backend when `mujoco` is first imported, so the choice must be made
  (and checked, in a subprocess) before robosuite or mujoco is imported;
- on a CPU (Mesa llvmpipe) a frame costs what its triangles cost: the Panda's visual meshes
  are ~150k triangles (~8 ms a frame), its collision meshes ~15k (~2 ms). The lean profile
  draws those instead, with MSAA, shadows, reflections and skybox off and coarser
  tessellation of round primitives (~1.4 ms a frame).
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import subprocess
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from vismanip.errors import VismanipError

if TYPE_CHECKING:
    import mujoco

GL_BACKENDS = ("egl", "osmesa")
# Geom group robosuite uses for visual meshes; 0 holds collision geoms.
VISUAL_GROUP = 1
HIDDEN_GROUP = 5
# Bodies whose heavy visual meshes the lean profile swaps for their collision meshes.
LEAN_PREFIXES = ("robot0_", "fixed_mount0_", "gripper0_right_right_gripper")
LEAN_ROBOT_RGBA = (0.86, 0.86, 0.88, 1.0)


@dataclass
class RenderConfig:
    """How camera images are drawn.

    backend: "auto" (try EGL, then OSMesa), "egl" or "osmesa"; MUJOCO_GL in the
        environment overrides it.
    robot_meshes: "collision" (lean: ~4x faster on CPU, coarser arm) or "visual"
        (robosuite's detailed meshes, as in robomimic's datasets).
    msaa_samples: multisampling; 0 is what a 84x84 policy input needs.
    curve_slices: segments around spheres, cylinders and capsules (MuJoCo's default is
        28); 12 looks the same at policy resolutions and saves ~0.4 ms a frame on CPU.
    shadows / reflections: off by default (each costs a render pass).
    """

    backend: str = "auto"
    robot_meshes: str = "collision"
    msaa_samples: int = 0
    curve_slices: int = 12
    shadows: bool = False
    reflections: bool = False


# --------------------------------------------------------------------------- backend


def load_triton_before_gl() -> None:
    """Import triton (when installed) before any GL context exists in this process.

    triton ships its own LLVM; imported after Mesa's llvmpipe has loaded its LLVM (the first
    rendered frame does that), the process segfaults. Lightning and torchrl import triton,
    and code may import them after an env rendered (a worker's task module; a user who
    wraps our Gymnasium env in torchrl), so every env loads it first (~1 s, once).
    """
    if importlib.util.find_spec("triton") is not None:
        importlib.import_module("triton")


def ensure_gl_backend(preferred: str = "auto") -> str:
    """Set MUJOCO_GL to a backend that renders real pictures here, and return it.

    Must run before `mujoco`/`robosuite` are imported in this process; worker processes
    inherit the variable. The probe runs in a subprocess because a broken GL driver can
    crash the process that loads it.
    """
    chosen = os.environ.get("MUJOCO_GL")
    if "mujoco" in sys.modules:
        if chosen:
            return chosen  # already bound in this process, nothing more to choose
        raise VismanipError(
            "mujoco was imported before vismanip chose a headless GL backend; import "
            "vismanip.envs first, or set MUJOCO_GL=egl (or osmesa) before starting Python"
        )
    if chosen:
        candidates = [chosen]
    elif preferred != "auto":
        candidates = [preferred]
    else:
        candidates = list(GL_BACKENDS)
    failures = []
    for backend in candidates:
        if backend not in GL_BACKENDS:
            raise VismanipError(f"unknown GL backend {backend!r}; valid: {', '.join(GL_BACKENDS)}")
        problem = _probe_backend(backend)
        if problem is None:
            os.environ["MUJOCO_GL"] = backend
            os.environ.setdefault("PYOPENGL_PLATFORM", backend)
            return backend
        failures.append(f"{backend}: {problem}")
    raise VismanipError(
        "no headless OpenGL backend renders correctly here ("
        + "; ".join(failures)
        + "). Install the system libraries with `make system-deps` (libegl1, libosmesa6)."
    )


def _probe_backend(backend: str) -> str | None:
    """Render the known test scene with `backend` in a subprocess; None if it looks right."""
    env = dict(os.environ, MUJOCO_GL=backend, PYOPENGL_PLATFORM=backend)
    try:
        result = subprocess.run(
            [sys.executable, "-m", "vismanip.envs.rendering"],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
    except subprocess.TimeoutExpired:
        return "probe timed out"
    if result.returncode == 0:
        return None
    lines = (result.stdout + result.stderr).strip().splitlines()
    return lines[-1] if lines else f"probe exited with {result.returncode}"


# A red box above a blue box, seen head-on: an upright, correct frame has red on top.
PROBE_SCENE = """
<mujoco>
  <visual><global offwidth="64" offheight="64"/></visual>
  <worldbody>
    <light pos="0 -1 1" dir="0 1 -1"/>
    <camera name="front" pos="0 -1 0" xyaxes="1 0 0 0 0 1" fovy="60"/>
    <geom type="box" size="0.25 0.05 0.12" pos="0 0 0.15" rgba="1 0 0 1"/>
    <geom type="box" size="0.25 0.05 0.12" pos="0 0 -0.15" rgba="0 0 1 1"/>
  </worldbody>
</mujoco>
"""


def render_probe_frame() -> np.ndarray:
    import mujoco

    model = mujoco.MjModel.from_xml_string(PROBE_SCENE)
    data = mujoco.MjData(model)
    mujoco.mj_forward(model, data)
    with mujoco.Renderer(model, 64, 64) as renderer:
        renderer.update_scene(data, "front")
        return renderer.render()


def check_probe_frame(frame: np.ndarray) -> str | None:
    """None if `frame` shows the probe scene upright; otherwise what is wrong with it."""
    if frame.shape != (64, 64, 3) or frame.dtype != np.uint8:
        return f"frame has shape {frame.shape} and dtype {frame.dtype}"
    problem = check_not_noise(frame)
    if problem:
        return problem
    top = frame[14:26, 24:40].reshape(-1, 3).mean(0)
    bottom = frame[38:50, 24:40].reshape(-1, 3).mean(0)
    if not (top[0] > 100 > top[2] and bottom[2] > 100 > bottom[0]):
        return f"test scene drawn wrongly (top mean rgb {top.round()}, bottom {bottom.round()})"
    return None


def check_not_noise(frame: np.ndarray) -> str | None:
    """A rendered scene is locally smooth; garbage from a broken GL context is not."""
    if frame.max() == frame.min():
        return "frame is a single flat colour (nothing was drawn)"
    roughness = np.abs(np.diff(frame.astype(np.int16), axis=1)).mean()
    if roughness > 25:
        return f"frame looks like noise (mean neighbour difference {roughness:.0f})"
    return None


# --------------------------------------------------------------------------- renderer


class CameraRenderer:
    """Draws the named cameras of a MuJoCo model as upright uint8 HxWx3 images.

    One GL context per process (create it inside the worker that uses it); the images come
    out in OpenCV orientation (row 0 is the top of the picture).
    """

    def __init__(
        self,
        model: mujoco.MjModel,
        cameras: list[str],
        size: int,
        config: RenderConfig,
    ) -> None:
        import mujoco

        camera_names = [model.camera(i).name for i in range(model.ncam)]
        unknown = [name for name in cameras if name not in camera_names]
        if unknown:
            raise VismanipError(
                f"unknown camera {unknown[0]!r}; this task has: {', '.join(camera_names)}"
            )
        if config.robot_meshes not in ("collision", "visual"):
            raise VismanipError(
                f"render.robot_meshes must be 'collision' or 'visual', not {config.robot_meshes!r}"
            )
        model.vis.quality.offsamples = config.msaa_samples
        model.vis.quality.numslices = config.curve_slices
        model.vis.quality.numstacks = max(4, config.curve_slices // 2)
        model.vis.global_.offwidth = max(model.vis.global_.offwidth, size)
        model.vis.global_.offheight = max(model.vis.global_.offheight, size)
        if config.robot_meshes == "collision":
            _use_collision_meshes_for_robot(model)
        self.cameras = list(cameras)
        self._model = model
        self._renderer = mujoco.Renderer(model, size, size)
        flags = self._renderer.scene.flags
        flags[mujoco.mjtRndFlag.mjRND_SHADOW] = config.shadows
        flags[mujoco.mjtRndFlag.mjRND_REFLECTION] = config.reflections
        flags[mujoco.mjtRndFlag.mjRND_SKYBOX] = False
        self._option = mujoco.MjvOption()
        self._option.geomgroup[0] = 0  # collision geoms (unless moved to the visual group)
        self._option.geomgroup[HIDDEN_GROUP] = 0

    def render(self, data: mujoco.MjData) -> dict[str, np.ndarray]:
        """`{"<camera>_image": HxWx3 uint8}` for every camera, robomimic's key names."""
        images = {}
        for camera in self.cameras:
            self._renderer.update_scene(data, camera, scene_option=self._option)
            images[f"{camera}_image"] = self._renderer.render()
        return images

    def upload_texture(self, texture: int) -> None:
        """Send a texture whose pixels changed in the model to this GL context.

        mujoco.Renderer has no public call for this; its context objects are the ones
        `mjr_uploadTexture` needs (domain randomization rewrites textures per episode).
        """
        import mujoco

        self._renderer._gl_context.make_current()
        mujoco.mjr_uploadTexture(self._model, self._renderer._mjr_context, texture)

    def close(self) -> None:
        self._renderer.close()


def _use_collision_meshes_for_robot(model: mujoco.MjModel) -> None:
    """Swap the arm's and mount's detailed visual meshes for their coarse collision ones.

    Idempotent: a second renderer on the same model must not hide the swapped geoms.
    """
    if (model.geom_group == HIDDEN_GROUP).any():
        return
    for geom in range(model.ngeom):
        body_name = model.body(model.geom_bodyid[geom]).name
        if not body_name.startswith(LEAN_PREFIXES):
            continue
        if model.geom_group[geom] == VISUAL_GROUP:
            model.geom_group[geom] = HIDDEN_GROUP
        elif model.geom_group[geom] == 0:
            model.geom_group[geom] = VISUAL_GROUP
            model.geom_rgba[geom] = LEAN_ROBOT_RGBA
            model.geom_matid[geom] = -1


if __name__ == "__main__":
    # The subprocess side of `_probe_backend`: exit 0 only for a correct, upright frame.
    issue = check_probe_frame(render_probe_frame())
    if issue:
        print(issue)
        sys.exit(1)
    print("ok")
