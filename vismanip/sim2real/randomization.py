"""Domain randomization of the MuJoCo scene: looks, lights, cameras and dynamics, seeded.

Why this is ours and not robosuite's `DomainRandomizationWrapper`: its colour/texture modder
asserts `mujoco == 3.1.1` and we pin 3.9 (DESIGN.md). The MjModel arrays are public, so
each change here is one array write; the only renderer-side step is re-uploading a texture
whose pixels changed (`mjr_uploadTexture`).

One episode's randomization is a plain JSON-able dict (`params`), drawn from the episode
seed by `SceneRandomizer.sample` and applied by `SceneRandomizer.apply`. The collector stores
it with each demo, so a demo can be replayed in exactly the scene it was recorded in.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from vismanip.errors import VismanipError

if TYPE_CHECKING:
    import mujoco

TEXTURE_DIR = Path(__file__).resolve().parents[2] / "assets" / "textures"
SURFACES = ("table", "floor", "walls", "robot", "object")
PROCEDURAL_KINDS = ("noise", "checker", "gradient")
# Texture sources: procedural patterns, training photographs, and photographs held out
# for evaluation (`--shift unseen-textures`); collection refuses the held-out ones.
TEXTURE_SOURCES = ("procedural", "photos", "heldout")
HELDOUT_SOURCE = "heldout"
TEXTURE_PIXELS = 128  # side of generated patterns; uploads are scaled to each texture's size
RGB_ROLE = 1  # mjtTextureRole.mjTEXROLE_RGB: the colour texture slot of a material

Range = list[float]  # [low, high]; empty: leave that property as the scene has it


@dataclass
class RandomizationConfig:
    """What changes from one episode to the next. Empty lists and zeros change nothing.

    surfaces: which of table, floor, walls, robot, object get a new look each episode.
    textures: where textures come from: procedural (noise, checker, gradient patterns) and
        photos (assets/textures/photos); heldout photos are for evaluation splits only.
    surface_prob: chance that each listed surface gets a new look in an episode; otherwise
        it keeps its own (e.g. 0.5: half the demos show the objects as they really look).
    texture_prob: chance that a textured surface gets a texture; otherwise a plain colour.
    light_diffuse, light_ambient, light_specular: grey level of the scene light's terms.
    light_tint: per-channel multiplicative colour jitter of the scene light (0: white).
    light_move_m: [low, high] distance the scene light moves from its place.
    light_turn_deg: [low, high] angle its direction turns by.
    light_off_prob: chance the scene light is off, leaving the camera headlight alone.
    headlight_diffuse: grey level of the headlight.
    camera_move_m, camera_turn_deg: [low, high] displacement and rotation of each policy
        camera (a random direction each episode); camera_fovy_deg: added to its field of view.
    friction_scale, mass_scale: multipliers for the manipulated object.
    damping_scale: multiplier for the robot's joint damping.
    every_steps: also draw new looks and lights every N steps (0: only at reset).
    """

    surfaces: list[str] = field(default_factory=list)
    textures: list[str] = field(default_factory=lambda: ["procedural", "photos"])
    surface_prob: float = 1.0
    texture_prob: float = 0.5
    light_diffuse: Range = field(default_factory=list)
    light_ambient: Range = field(default_factory=list)
    light_specular: Range = field(default_factory=list)
    light_tint: float = 0.0
    light_move_m: Range = field(default_factory=list)
    light_turn_deg: Range = field(default_factory=list)
    light_off_prob: float = 0.0
    headlight_diffuse: Range = field(default_factory=list)
    camera_move_m: Range = field(default_factory=list)
    camera_turn_deg: Range = field(default_factory=list)
    camera_fovy_deg: Range = field(default_factory=list)
    friction_scale: Range = field(default_factory=list)
    mass_scale: Range = field(default_factory=list)
    damping_scale: Range = field(default_factory=list)
    every_steps: int = 0

    def enabled(self) -> bool:
        """True when any property is randomized."""
        ranges = [getattr(self, name) for name in RANGE_FIELDS]
        return bool(self.surfaces or any(ranges) or self.light_tint or self.light_off_prob)

    def check(self, allow_heldout: bool = False) -> None:
        """One clear error for a bad preset (unknown names, inverted ranges)."""
        for surface in self.surfaces:
            if surface not in SURFACES:
                raise VismanipError(
                    f"unknown randomization surface {surface!r}; valid: {', '.join(SURFACES)}"
                )
        for source in self.textures:
            if source not in TEXTURE_SOURCES:
                raise VismanipError(
                    f"unknown texture source {source!r}; valid: {', '.join(TEXTURE_SOURCES)}"
                )
        if HELDOUT_SOURCE in self.textures and not allow_heldout:
            raise VismanipError(
                "held-out textures are for evaluation only (vismanip eval --shift "
                "unseen-textures); use textures: [procedural, photos] for collection"
            )
        if self.surfaces and not self.textures and self.texture_prob > 0:
            raise VismanipError("texture_prob > 0 needs at least one texture source")
        for name in RANGE_FIELDS:
            values = getattr(self, name)
            if values and (len(values) != 2 or values[0] > values[1]):
                raise VismanipError(f"randomization.{name} must be [low, high], not {values}")
        for name in ("surface_prob", "texture_prob", "light_off_prob"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise VismanipError(f"randomization.{name} must be in [0, 1]")


RANGE_FIELDS = (
    "light_diffuse",
    "light_ambient",
    "light_specular",
    "light_move_m",
    "light_turn_deg",
    "headlight_diffuse",
    "camera_move_m",
    "camera_turn_deg",
    "camera_fovy_deg",
    "friction_scale",
    "mass_scale",
    "damping_scale",
)


# --------------------------------------------------------------------------- textures


def texture_names(source: str) -> list[str]:
    """Every texture of a source, as the names stored in params ("photos/clay")."""
    if source == "procedural":
        return [f"procedural/{kind}" for kind in PROCEDURAL_KINDS]
    folder = TEXTURE_DIR / source
    names = sorted(f"{source}/{path.stem}" for path in folder.glob("*.png"))
    if not names:
        raise VismanipError(f"no textures found in {folder}")
    return names


@lru_cache(maxsize=64)
def texture_image(name: str, seed: int) -> np.ndarray:
    """The HxWx3 uint8 picture of a texture name; procedural patterns depend on `seed`."""
    source, _, stem = name.partition("/")
    if source != "procedural":
        from PIL import Image

        path = TEXTURE_DIR / source / f"{stem}.png"
        if not path.is_file():
            raise VismanipError(f"texture {name!r} not found ({path})")
        return np.asarray(Image.open(path).convert("RGB"))
    rng = np.random.default_rng(seed)
    colours = rng.uniform(0, 255, size=(2, 3))
    side = TEXTURE_PIXELS
    if stem == "checker":
        squares = int(rng.integers(2, 17))
        y, x = np.mgrid[0:side, 0:side] * squares // side
        weight = ((x + y) % 2).astype(np.float64)
    elif stem == "gradient":
        angle = rng.uniform(0, 2 * np.pi)
        y, x = np.mgrid[0:side, 0:side] / (side - 1)
        weight = np.cos(angle) * x + np.sin(angle) * y
        weight = (weight - weight.min()) / max(np.ptp(weight), 1e-9)
    elif stem == "noise":  # smooth value noise: random coarse grid, bilinearly upsampled
        from PIL import Image

        cells = int(rng.integers(3, 17))
        coarse = Image.fromarray((rng.uniform(0, 255, (cells, cells))).astype(np.uint8))
        weight = np.asarray(coarse.resize((side, side), Image.Resampling.BILINEAR)) / 255.0
    else:
        raise VismanipError(f"unknown procedural texture {stem!r}; valid: {PROCEDURAL_KINDS}")
    image = colours[0] * (1 - weight[..., None]) + colours[1] * weight[..., None]
    return image.astype(np.uint8)


def _fit_texture(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """Scale a picture to a MuJoCo texture's storage (cube textures stack square faces)."""
    from PIL import Image

    faces = height // width if height % width == 0 else 1
    face_height = height // faces
    face = np.asarray(
        Image.fromarray(image).resize((width, face_height), Image.Resampling.BILINEAR)
    )
    return np.concatenate([face] * faces, axis=0)


# --------------------------------------------------------------------------- randomizer


def _uniform(rng: np.random.Generator, bounds: Range) -> float:
    return float(rng.uniform(bounds[0], bounds[1]))


def _random_rotation(rng: np.random.Generator, angle_deg: float) -> np.ndarray:
    """A quaternion (w, x, y, z) turning by `angle_deg` about a random axis."""
    import mujoco

    axis = rng.normal(size=3)
    quat = np.zeros(4)
    mujoco.mju_axisAngle2Quat(quat, axis / np.linalg.norm(axis), np.deg2rad(angle_deg))
    return quat


def _compose(first: np.ndarray, then: np.ndarray) -> np.ndarray:
    import mujoco

    quat = np.zeros(4)
    mujoco.mju_mulQuat(quat, np.asarray(first, dtype=np.float64), then)
    return quat


def _rotate(quat: np.ndarray, vector: np.ndarray) -> np.ndarray:
    import mujoco

    rotated = np.zeros(3)
    mujoco.mju_rotVecQuat(rotated, np.asarray(vector, dtype=np.float64), quat)
    return rotated


def _random_offset(rng: np.random.Generator, distance: float) -> np.ndarray:
    direction = rng.normal(size=3)
    return distance * direction / np.linalg.norm(direction)


class TextureUploader(Protocol):
    """What a renderer must offer: re-upload a texture after its pixels changed."""

    def upload_texture(self, texture: int) -> None: ...


class RandomizableScene(Protocol):
    """What an env hands in (VisionEnv does): its model, renderer, cameras, and which
    visible geoms make up each surface (the env knows its simulator's naming; we do not)."""

    @property
    def model(self) -> mujoco.MjModel: ...

    @property
    def renderer(self) -> TextureUploader: ...

    @property
    def cameras(self) -> list[str]: ...

    def surface_geoms(self) -> dict[str, list[int]]: ...

    def attach_randomizer(self, randomizer: SceneRandomizer) -> None: ...


def randomize_scene(env: RandomizableScene, config: RandomizationConfig) -> None:
    """Give `env` a SceneRandomizer for `config` (nothing when the config changes nothing):
    each episode's looks, lights, cameras and dynamics are then drawn from its seed."""
    if config.enabled():
        config.check(allow_heldout=True)
        env.attach_randomizer(
            SceneRandomizer(env.model, env.renderer, config, env.cameras, env.surface_geoms())
        )


class SceneRandomizer:
    """Samples and applies randomization params to one MjModel (and its renderer).

    Every apply starts from the nominal scene recorded at construction, so params describe
    a scene completely and episodes do not drift.
    """

    def __init__(
        self,
        model: mujoco.MjModel,
        renderer: TextureUploader,
        config: RandomizationConfig,
        cameras: list[str],
        surface_geoms: dict[str, list[int]],
    ) -> None:
        self.model = model
        self.renderer = renderer
        self.config = config
        self.every_steps = config.every_steps
        self.cameras = list(cameras)
        self.surface_geoms = surface_geoms
        self.object_bodies = sorted(
            {int(model.geom_bodyid[g]) for g in self.surface_geoms["object"]}
        )
        self.object_geoms = [
            g for g in range(model.ngeom) if model.geom_bodyid[g] in self.object_bodies
        ]
        self.robot_dofs = [
            int(model.jnt_dofadr[j])
            for j in range(model.njnt)
            if model.joint(j).name.startswith("robot0_")
        ]
        self._nominal = {
            name: getattr(model, name).copy()
            for name in (
                "geom_rgba",
                "mat_rgba",
                "tex_data",
                "light_pos",
                "light_dir",
                "light_diffuse",
                "light_ambient",
                "light_specular",
                "light_active",
                "cam_pos",
                "cam_quat",
                "cam_fovy",
                "geom_friction",
                "body_mass",
                "body_inertia",
                "dof_damping",
            )
        }
        self._nominal_headlight = model.vis.headlight.diffuse.copy()
        self._changed_textures: set[int] = set()

    # ------------------------------------------------------------------ sampling
    def sample(self, rng: np.random.Generator, looks_only: bool = False) -> dict[str, Any]:
        """Draw one scene's params; `looks_only` skips cameras and dynamics (mid-episode)."""
        config = self.config
        params: dict[str, Any] = {"surfaces": {}}
        textures = [name for source in config.textures for name in texture_names(source)]
        for surface in config.surfaces:
            # Drawn only when it can skip, so presets without it keep their scenes seed for seed.
            if config.surface_prob < 1.0 and rng.random() >= config.surface_prob:
                continue
            textured = bool(textures) and rng.random() < config.texture_prob
            if textured and self._surface_textures(surface):
                params["surfaces"][surface] = {
                    "texture": str(rng.choice(textures)),
                    "texture_seed": int(rng.integers(2**31)),
                    "rgb": rng.uniform(0.6, 1.0, size=3).tolist(),  # a tint over the picture
                }
            else:
                params["surfaces"][surface] = {"rgb": rng.uniform(0.0, 1.0, size=3).tolist()}
        params["light"] = self._sample_light(rng)
        if not looks_only:
            params["cameras"] = self._sample_cameras(rng)
            params["dynamics"] = {
                name: _uniform(rng, getattr(config, name))
                for name in ("friction_scale", "mass_scale", "damping_scale")
                if getattr(config, name)
            }
        return params

    def _sample_light(self, rng: np.random.Generator) -> dict[str, Any]:
        config, model = self.config, self.model
        light: dict[str, Any] = {}
        if model.nlight == 0:
            return light
        if config.light_off_prob:
            light["active"] = bool(rng.random() >= config.light_off_prob)
        for term in ("diffuse", "ambient", "specular"):
            bounds = getattr(config, f"light_{term}")
            if bounds:
                grey = _uniform(rng, bounds)
                tint = 1 + config.light_tint * rng.uniform(-1, 1, size=3)
                light[term] = np.clip(grey * tint, 0, 1).tolist()
        if config.light_move_m:
            offset = _random_offset(rng, _uniform(rng, config.light_move_m))
            light["pos"] = (self._nominal["light_pos"][0] + offset).tolist()
        if config.light_turn_deg:
            turn = _random_rotation(rng, _uniform(rng, config.light_turn_deg))
            light["dir"] = _rotate(turn, self._nominal["light_dir"][0]).tolist()
        if config.headlight_diffuse:
            light["headlight_diffuse"] = [_uniform(rng, config.headlight_diffuse)] * 3
        return light

    def _sample_cameras(self, rng: np.random.Generator) -> dict[str, Any]:
        config, cameras = self.config, dict[str, Any]()
        if not (config.camera_move_m or config.camera_turn_deg or config.camera_fovy_deg):
            return cameras
        for name in self.cameras:
            index = self.model.camera(name).id
            pose: dict[str, Any] = {}
            if config.camera_move_m:
                offset = _random_offset(rng, _uniform(rng, config.camera_move_m))
                pose["pos"] = (self._nominal["cam_pos"][index] + offset).tolist()
            if config.camera_turn_deg:
                turn = _random_rotation(rng, _uniform(rng, config.camera_turn_deg))
                pose["quat"] = _compose(self._nominal["cam_quat"][index], turn).tolist()
            if config.camera_fovy_deg:
                pose["fovy"] = float(
                    self._nominal["cam_fovy"][index] + _uniform(rng, config.camera_fovy_deg)
                )
            cameras[name] = pose
        return cameras

    # ------------------------------------------------------------------ applying
    def apply(self, params: dict[str, Any]) -> None:
        """Set the model to the nominal scene changed by `params` (from `sample` or a demo)."""
        model = self.model
        self._restore_nominal(keep_geometry=not ("cameras" in params or "dynamics" in params))
        uploads = set()
        for surface, look in params.get("surfaces", {}).items():
            if surface not in self.surface_geoms:
                raise VismanipError(f"unknown randomization surface {surface!r}")
            geoms = self.surface_geoms[surface]
            rgba = [*look["rgb"], 1.0]
            model.geom_rgba[geoms] = rgba
            materials = sorted({int(model.geom_matid[g]) for g in geoms} - {-1})
            model.mat_rgba[materials] = rgba
            texture_ids = self._surface_textures(surface)
            picture: np.ndarray | None = None
            if "texture" in look:
                picture = texture_image(look["texture"], int(look.get("texture_seed", 0)))
            elif texture_ids:  # a plain colour: white pixels under the material colour
                picture = np.full((8, 8, 3), 255, dtype=np.uint8)
            for texture in texture_ids:
                assert picture is not None  # texture_ids is non-empty here
                self._write_texture(texture, picture)
                uploads.add(texture)
        light = params.get("light", {})
        if "active" in light:
            model.light_active[0] = light["active"]
        for term in ("diffuse", "ambient", "specular", "pos", "dir"):
            if term in light:
                getattr(model, f"light_{term}")[0] = light[term]
        if "headlight_diffuse" in light:
            model.vis.headlight.diffuse = light["headlight_diffuse"]
        for name, pose in params.get("cameras", {}).items():
            index = model.camera(name).id
            if "pos" in pose:
                model.cam_pos[index] = pose["pos"]
            if "quat" in pose:
                model.cam_quat[index] = pose["quat"]
            if "fovy" in pose:
                model.cam_fovy[index] = pose["fovy"]
        dynamics = params.get("dynamics", {})
        if "friction_scale" in dynamics:
            model.geom_friction[self.object_geoms, 0] *= dynamics["friction_scale"]
        if "mass_scale" in dynamics:
            model.body_mass[self.object_bodies] *= dynamics["mass_scale"]
            model.body_inertia[self.object_bodies] *= dynamics["mass_scale"]
        if "damping_scale" in dynamics:
            model.dof_damping[self.robot_dofs] *= dynamics["damping_scale"]
        for texture in uploads | self._changed_textures:
            self.renderer.upload_texture(texture)
        self._changed_textures = uploads

    def _restore_nominal(self, keep_geometry: bool) -> None:
        model, nominal = self.model, self._nominal
        for name in ("geom_rgba", "mat_rgba", "light_pos", "light_dir", "light_diffuse"):
            getattr(model, name)[:] = nominal[name]
        for name in ("light_ambient", "light_specular", "light_active"):
            getattr(model, name)[:] = nominal[name]
        model.vis.headlight.diffuse = self._nominal_headlight
        for texture in self._changed_textures:
            start, size = _texture_span(model, texture)
            model.tex_data[start : start + size] = nominal["tex_data"][start : start + size]
        if not keep_geometry:
            for name in ("cam_pos", "cam_quat", "cam_fovy", "geom_friction", "body_mass"):
                getattr(model, name)[:] = nominal[name]
            model.body_inertia[:] = nominal["body_inertia"]
            model.dof_damping[:] = nominal["dof_damping"]

    def _surface_textures(self, surface: str) -> list[int]:
        """Colour textures of the materials on a surface (empty: colour only, e.g. the lean robot)."""
        model = self.model
        materials = {int(model.geom_matid[g]) for g in self.surface_geoms[surface]} - {-1}
        return sorted({int(model.mat_texid[m, RGB_ROLE]) for m in materials} - {-1})

    def _write_texture(self, texture: int, picture: np.ndarray) -> None:
        model = self.model
        width, height = int(model.tex_width[texture]), int(model.tex_height[texture])
        channels = int(model.tex_nchannel[texture])
        pixels = _fit_texture(picture, width, height)
        if channels == 4:
            pixels = np.concatenate([pixels, np.full((*pixels.shape[:2], 1), 255, np.uint8)], -1)
        start, size = _texture_span(model, texture)
        model.tex_data[start : start + size] = pixels[..., :channels].reshape(-1)


def _texture_span(model: mujoco.MjModel, texture: int) -> tuple[int, int]:
    size = int(model.tex_width[texture] * model.tex_height[texture] * model.tex_nchannel[texture])
    return int(model.tex_adr[texture]), size
