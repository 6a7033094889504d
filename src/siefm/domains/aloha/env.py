"""Aloha in simulation: gym-aloha's bimanual ViperX scenes, controlled as the paper controls them.

The scenes, their physics, their seeded object poses and their 0-4 contact rewards are gym-aloha's
(`pip install 'siefm[aloha]'`); what this env changes is how it is driven and what it shows:
- **Actions are absolute joint targets**, 14 per 50 Hz step: each arm's 6 joint angles in radians and its
  gripper, normalised (0 closed, 1 open), as gym-aloha executes them. The env steps at 10 Hz, each step a
  chunk of 5 such targets (70 numbers), the paper's control. gym-aloha declares Box(-1, 1, (14,)), which
  is wrong (targets reach +-3.14); the action space here holds what the actuators execute: each joint's
  control range, and the grippers' normalised range that the finger actuators can reach.
- **Observations**: `state` is the joints' positions and velocities (14 + 14, grippers normalised), the
  objects' free-joint poses (cube: 7; insertion's peg and socket: 14), each hand's tool point (the
  fingertips' centre, from the joints by forward kinematics: 3 + 3) and the vector from it to the object
  that hand works on (the cube for both; the socket for the left, the peg for the right: 3 + 3). The last
  two are functions of the rest, given so that "is the object in the hand" is one subtraction away: a
  steps-to-go model trained on demonstrations, where the arms' joints alone tell the time, otherwise
  learnt to ignore the cube (docs/aloha.md). The state ends with the 14 joint targets last sent (the
  joints themselves after a reset): position-controlled joints lag their targets by an amount that grows
  with their speed, so targets as changes of the observed joints follow the joints' speed (joint 8's
  change correlated 0.61 with its velocity in the demonstrations; as a change of its last target, 0.18),
  a loop once sampling speeds an arm up (docs/aloha.md). With `observation="pixels"`,
  `pixels` is the top camera at `image_size`, rendered once per 10 Hz step with shadows off (gym-aloha
  renders three 640 x 480 cameras with shadows at every 50 Hz step: 9.5 steps/s here).
- **Success** (`info["is_success"]`) is gym-aloha's: reward 4 at any 50 Hz step (transfer: the left
  finger touches the cube and the cube is off the table, even while the right gripper still holds it;
  insertion: the peg touches the pin). The episode terminates there, as gym-aloha's does;
  `info["stage"]` is the 0-4 reward of the last 50 Hz step.
- `reset(seed=K)` draws the object poses as gym-aloha's env does from the same seed, so the stock
  `gym_aloha` env reset with K starts from the same poses.
- dm_control raises `PhysicsError` when commands make the simulation unstable (random targets anywhere
  in the joints' ranges do within a few steps). The episode then ends there: terminated, no success,
  the last valid observation, and `info["fault"]` naming the error; Stage 2 counts it as a fault and a
  failure (siefm.improve.rollout), and the env must be reset.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from typing import Any, ClassVar

import gymnasium as gym
import mujoco
import numpy as np
from gymnasium import spaces

from siefm.optional import import_optional

CHUNK = 5  # 50 Hz joint targets per 10 Hz step (the paper's action chunks)
TCP_OFFSET = np.array([0.135, 0.0, 0.0])  # the fingertips' centre in a gripper link's frame
TOOL_FEATURES = 12  # both tool points, and from each to the object its hand works on
JOINTS = 14  # per arm: 6 joints and the gripper
COMMAND_FEATURES = JOINTS  # the state's last numbers: the joint targets last sent
SCENES = {"transfer_cube": "bimanual_viperx_transfer_cube.xml", "insertion": "bimanual_viperx_insertion.xml"}
TASK_TEXT = {
    "transfer_cube": "transfer the cube to the left arm",
    "insertion": "insert the peg into the socket",
}


@dataclass(frozen=True)
class AlohaConfig:
    task: str = "transfer_cube"
    """'transfer_cube' or 'insertion'."""
    observation: str = "state"
    """'state', or 'pixels' (adds the top camera at `image_size`)."""
    image_size: int = 96
    max_steps: int = 150
    """Time limit in 10 Hz steps (15 s; gym-aloha's is 300 steps at 50 Hz, 6 s, shorter than a scripted
    transfer with a dropped cube, up to 11 s)."""

    def __post_init__(self) -> None:
        if self.task not in SCENES:
            raise ValueError(f"Aloha task {self.task!r}: choose one of {sorted(SCENES)}.")
        if self.observation not in ("state", "pixels"):
            raise ValueError(f"Aloha observation {self.observation!r}: choose 'state' or 'pixels'.")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class AlohaEnv(gym.Env):
    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["rgb_array"], "render_fps": 10}

    def __init__(
        self, config: AlohaConfig | None = None, render_mode: str | None = "rgb_array", **kwargs: Any
    ):
        self.config = config or AlohaConfig(**kwargs)
        self.render_mode = render_mode
        self._scene = _Scene(self.config.task)
        low, high = action_range(self.config.task)
        self.action_space = spaces.Box(np.tile(low, CHUNK), np.tile(high, CHUNK), dtype=np.float64)
        state_dim = 2 * JOINTS + self._scene.object_dim + TOOL_FEATURES + COMMAND_FEATURES
        observation = {"state": spaces.Box(-np.inf, np.inf, (state_dim,), dtype=np.float64)}
        if self.config.observation == "pixels":
            size = self.config.image_size
            observation["pixels"] = spaces.Box(0, 255, (size, size, 3), dtype=np.uint8)
        self.observation_space = spaces.Dict(observation)

    @property
    def physics(self) -> Any:
        """dm_control's physics of the scene (for scripted demonstrators and videos)."""
        return self._scene.env.physics

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[dict, dict]:
        super().reset(seed=seed)
        self._scene.reset(seed)
        self._last = self._observation()
        return self._last, {"is_success": False, "stage": 0}

    def step(self, action: np.ndarray) -> tuple[dict, float, bool, bool, dict]:
        targets = np.asarray(action, dtype=np.float64).reshape(CHUNK, JOINTS)
        stage = 0
        try:
            for target in targets:
                stage = self._scene.step(target)
                if stage == 4:
                    break
        except self._scene.physics_error as error:  # the state is invalid: the episode ends here
            info = {"is_success": False, "stage": 0, "fault": f"PhysicsError: {error}"}
            return self._last, 0.0, True, False, info
        success = stage == 4
        self._last = self._observation()
        return self._last, float(stage), success, False, {"is_success": success, "stage": stage}

    def render(self) -> np.ndarray:
        return self._scene.render(self.config.image_size)

    def _observation(self) -> dict[str, np.ndarray]:
        obs = {"state": self._scene.state()}
        if self.config.observation == "pixels":
            obs["pixels"] = self.render()
        return obs


def tool_point(data: mujoco.MjData, gripper: int) -> np.ndarray:
    """The fingertips' centre of the gripper link body `gripper`, in the world frame."""
    return data.xpos[gripper] + data.xmat[gripper].reshape(3, 3) @ TCP_OFFSET


def scene_model(task: str) -> Any:
    """A private MuJoCo model of `task`'s scene (for kinematics: never the one an env simulates)."""

    _import_gym_aloha()
    from gym_aloha import constants

    return mujoco.MjModel.from_xml_path(str(constants.ASSETS_DIR / SCENES[task]))


def action_range(task: str) -> tuple[np.ndarray, np.ndarray]:
    """(low, high) of one 50 Hz target (14): each arm joint's control range, and the normalised gripper
    range that the fingers' control range allows (MuJoCo clamps controls to these)."""
    from gym_aloha.constants import normalize_puppet_gripper_position as normalise

    ctrl = scene_model(task).actuator_ctrlrange  # 8 actuators per arm: 6 joints, then 2 fingers
    low, high = [], []
    for arm in (0, 8):
        low += [*ctrl[arm : arm + 6, 0], normalise(ctrl[arm + 6, 0])]
        high += [*ctrl[arm : arm + 6, 1], normalise(ctrl[arm + 6, 1])]
    return np.array(low), np.array(high)


def _import_gym_aloha() -> Any:
    if "MUJOCO_GL" not in os.environ and not os.environ.get("DISPLAY"):
        os.environ["MUJOCO_GL"] = "egl"  # dm_control picks its renderer at import: headless, EGL
    return import_optional(
        "gym_aloha",
        "The Aloha domain",
        extra="aloha",
        why="It brings gym-aloha's simulated bimanual ViperX scenes and dm_control. ",
    )


class _Scene:
    """gym-aloha's joint-controlled scene and task, observed without rendering."""

    def __init__(self, task: str):
        _import_gym_aloha()
        from dm_control import mujoco
        from dm_control.rl import control
        from gym_aloha import constants, utils
        from gym_aloha.tasks import sim

        self.sim, self.task = sim, task
        self.sample_pose = (
            utils.sample_box_pose
            if task == "transfer_cube"
            else lambda seed: np.concatenate(utils.sample_insertion_pose(seed))
        )
        physics = mujoco.Physics.from_xml_path(str(constants.ASSETS_DIR / SCENES[task]))
        # Shadows off before the first render (they set up the render context): 4x faster frames.
        physics.model.light_castshadow[:] = 0
        physics.model.vis.quality.shadowsize = 0
        physics.model.vis.quality.offsamples = 0
        self.physics_error = control.PhysicsError
        self.env = control.Environment(
            physics,
            _task(task),
            time_limit=float("inf"),
            control_timestep=constants.DT,
            n_sub_steps=None,
            flat_observation=False,
        )
        self.object_dim = 7 if task == "transfer_cube" else 14
        model = physics.model.ptr
        self.grippers = [
            mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, f"vx300s_{a}/gripper_link")
            for a in ("left", "right")
        ]
        # What each hand works on: the cube for both; insertion's socket (left) and peg (right).
        self.held = [0, 0] if task == "transfer_cube" else [7, 0]
        self.command_range = action_range(task)

    def reset(self, seed: int | None) -> None:
        self.sim.BOX_POSE[0] = self.sample_pose(seed)  # what gym-aloha's reset sets from the same seed
        self.env.reset()
        self.command = self.env.task.get_qpos(self.env.physics)

    def step(self, target: np.ndarray) -> int:
        self.command = np.clip(target, *self.command_range)  # what the actuators are told (MuJoCo clamps)
        return int(self.env.step(target).reward)

    def state(self) -> np.ndarray:
        physics = self.env.physics
        task = self.env.task
        objects = task.get_env_state(physics)
        data = physics.data.ptr
        tools = [tool_point(data, body) for body in self.grippers]
        to_objects = [objects[k : k + 3] - tool for k, tool in zip(self.held, tools, strict=True)]
        qpos, qvel = task.get_qpos(physics), task.get_qvel(physics)
        return np.concatenate([qpos, qvel, objects, *tools, *to_objects, self.command])

    def render(self, size: int) -> np.ndarray:
        return self.env.physics.render(height=size, width=size, camera_id="top")


# gym-aloha's rewards, as the ordered (geom1, geom2) contact pairs each condition looks for.
SOCKET = ("socket-1", "socket-2", "socket-3", "socket-4")
CONTACTS = {
    "transfer_cube": {
        "right": [("red_box", "vx300s_right/10_right_gripper_finger")],
        "left": [("red_box", "vx300s_left/10_left_gripper_finger")],
        "table": [("red_box", "table")],
    },
    "insertion": {
        "right": [("red_peg", "vx300s_right/10_right_gripper_finger")],
        "left": [(part, "vx300s_left/10_left_gripper_finger") for part in SOCKET],
        "peg_table": [("red_peg", "table")],
        "socket_table": [(part, "table") for part in SOCKET],
        "peg_socket": [("red_peg", part) for part in SOCKET],
        "pin": [("red_peg", "pin")],
    },
}


def _task(task: str) -> Any:
    """gym-aloha's task with observations that render nothing (this env renders only what it shows) and
    its reward computed from the contact arrays at once: gym-aloha names every contact's geoms in Python,
    37% of a step here; the same ordered pairs are looked up by geom id (a test checks both agree)."""
    from gym_aloha.tasks import sim

    base = sim.TransferCubeTask if task == "transfer_cube" else sim.InsertionTask

    class Fast(base):  # type: ignore[misc, valid-type]
        def get_observation(self, physics: Any) -> dict:
            return {}

        def get_reward(self, physics: Any) -> int:
            if not hasattr(self, "pairs"):
                self.pairs = {
                    name: np.array([[physics.model.name2id(geom, "geom") for geom in pair] for pair in pairs])
                    for name, pairs in CONTACTS[task].items()
                }
            contacts = physics.data.contact
            found = np.stack([contacts.geom1, contacts.geom2], axis=1)[:, None, :]  # (ncon, 1, 2)
            touch = {name: bool((found == pairs).all(-1).any()) for name, pairs in self.pairs.items()}
            return _stage(task, touch)

    return Fast()


def _stage(task: str, touch: dict[str, bool]) -> int:
    """gym-aloha's 0-4 reward from which contacts hold."""
    if task == "transfer_cube":
        stage = 0
        if touch["right"]:
            stage = 1 if touch["table"] else 2  # touched; lifted off the table
        if touch["left"]:
            stage = 3 if touch["table"] else 4  # transfer attempted; transferred
        return stage
    free = not touch["peg_table"] and not touch["socket_table"]
    stage = 0
    if touch["left"] and touch["right"]:
        stage = 2 if free else 1  # both lifted; both touched
    if touch["peg_socket"] and free:
        stage = 3
    if touch["pin"]:
        stage = 4
    return stage
