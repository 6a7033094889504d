"""Inverse kinematics of the Aloha arms, for scripted demonstrators that act in joint space.

A demonstrator plans gripper poses (the point between the fingertips, and the gripper's orientation) and
turns them into the joint targets the env executes, every 10 Hz step, from the joints it observes: a closed
loop in the same env it is evaluated in, so nothing is lost in a replay from another env. The solver is
damped least squares on MuJoCo's Jacobian of that point, on a private copy of the scene's kinematics
(the live simulation is never touched).
"""

from __future__ import annotations

import mujoco
import numpy as np

from siefm.domains.aloha.env import tool_point

ARMS = ("left", "right")
JOINT_NAMES = ("waist", "shoulder", "elbow", "forearm_roll", "wrist_angle", "wrist_rotate")


class ArmKinematics:
    """Both arms' forward and inverse kinematics on a copy of a scene's model."""

    def __init__(self, model: mujoco.MjModel):
        self.model = model
        self.data = mujoco.MjData(model)
        body, joint = mujoco.mjtObj.mjOBJ_BODY, mujoco.mjtObj.mjOBJ_JOINT
        self.body = {arm: mujoco.mj_name2id(model, body, f"vx300s_{arm}/gripper_link") for arm in ARMS}
        joints = {
            arm: np.array([mujoco.mj_name2id(model, joint, f"vx300s_{arm}/{name}") for name in JOINT_NAMES])
            for arm in ARMS
        }
        self.qpos = {arm: model.jnt_qposadr[ids] for arm, ids in joints.items()}
        self.dofs = {arm: model.jnt_dofadr[ids] for arm, ids in joints.items()}
        self.low = {arm: model.jnt_range[ids, 0] for arm, ids in joints.items()}
        self.high = {arm: model.jnt_range[ids, 1] for arm, ids in joints.items()}

    def pose(self, arm: str, joints: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The tool point (3,) and the gripper's rotation matrix (3, 3) for `arm`'s 6 joint angles."""
        self.data.qpos[self.qpos[arm]] = joints
        mujoco.mj_kinematics(self.model, self.data)
        body = self.body[arm]
        return tool_point(self.data, body), self.data.xmat[body].reshape(3, 3).copy()

    def solve(
        self,
        arm: str,
        joints: np.ndarray,
        position: np.ndarray,
        rotation: np.ndarray,
        iterations: int = 12,
        rotation_weight: float = 0.3,
        damping: float = 0.03,
    ) -> np.ndarray:
        """Joint angles near `joints` that put `arm`'s tool point at `position` with the gripper at
        `rotation` (world frame), as closely as the arm allows: position first, orientation weighted less."""
        q = np.array(joints, dtype=np.float64)
        jacp, jacr = np.zeros((3, self.model.nv)), np.zeros((3, self.model.nv))
        for _ in range(iterations):
            point, current = self.pose(arm, q)
            mujoco.mj_comPos(self.model, self.data)
            error = np.concatenate([position - point, rotation_weight * _rotation_error(rotation, current)])
            if np.linalg.norm(error) < 1e-4:
                break
            mujoco.mj_jac(self.model, self.data, jacp, jacr, point, self.body[arm])
            jacobian = np.vstack([jacp[:, self.dofs[arm]], rotation_weight * jacr[:, self.dofs[arm]]])
            step = jacobian.T @ np.linalg.solve(jacobian @ jacobian.T + damping**2 * np.eye(6), error)
            q = np.clip(q + step, self.low[arm], self.high[arm])
        return q


def _rotation_error(target: np.ndarray, current: np.ndarray) -> np.ndarray:
    """The rotation vector (axis x angle, world frame) that turns `current` into `target`."""
    quaternion = np.zeros(4)
    mujoco.mju_mat2Quat(quaternion, (target @ current.T).flatten())
    angle_axis = np.zeros(3)
    mujoco.mju_quat2Vel(angle_axis, quaternion, 1.0)
    return angle_axis


def gripper_rotation(yaw: float, pitch: float, roll: float = 0.0) -> np.ndarray:
    """A gripper pointing along yaw (about world z) and tilted down by pitch, rolled about its own axis:
    Rz(yaw) Ry(pitch) Rx(roll), with the gripper's x axis its pointing direction and y its fingers' axis."""
    (cy, cp, cr), (sy, sp, sr) = np.cos([yaw, pitch, roll]), np.sin([yaw, pitch, roll])
    rz = np.array([[cy, -sy, 0], [sy, cy, 0], [0, 0, 1]])
    ry = np.array([[cp, 0, sp], [0, 1, 0], [-sp, 0, cp]])
    rx = np.array([[1, 0, 0], [0, cr, -sr], [0, sr, cr]])
    return rz @ ry @ rx
