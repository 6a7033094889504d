"""Scripted controllers for PointMass: the notebook's sub-optimal demonstrator and a straight-line reference.

The demonstrator is a PD controller (Kp = 2e-4, Kd = 1.25e-2; docs/method.md, "The PointMass notebook") that
visits random waypoints, each reached within the success radius, before heading to the goal. Like any episode
in the env, a demonstration ends the first time the point is within the success radius of the goal, even
mid-detour; with waypoints drawn like goals this gives the notebook's lengths (about 77 +- 30 steps, ~5% of
episodes under 10 steps dropped). Its detours make Stage 1 imitate slow behaviour that Stage 2 can then
improve on. The same PD controller aimed straight at the goal is the reference for "optimal" episode length
(about 13-15 steps in the notebook).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from siefm.domains.pointmass.env import (
    BatchedPointMass,
    PointMassConfig,
    is_success,
    sample_initial_states,
    step_dynamics,
)

PD_KP = 2e-4
PD_KD = 1.25e-2


def pd_action(position: np.ndarray, velocity: np.ndarray, target: np.ndarray) -> np.ndarray:
    """The notebook's PD law a = Kp (target - pos) - Kd vel. Shapes (..., 2)."""
    return PD_KP * (target - position) - PD_KD * velocity


def straight_line_policy(obs: dict[str, np.ndarray]) -> np.ndarray:
    """The PD controller aimed straight at the goal: the reference for short episodes."""
    state = obs["state"].astype(np.float64)
    return pd_action(state[:, :2], state[:, 2:], obs["goal"].astype(np.float64))


def simulate_demonstrator(
    num_episodes: int, config: PointMassConfig, seed: int, num_waypoints: int, max_steps: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Runs the waypoint demonstrator on `num_episodes` seeded episodes in one batch.

    Starts and goals are drawn first from `seed`, exactly as `BatchedPointMass(seed=seed).reset()` draws them,
    so the demonstrator can be evaluated on the same episodes as a policy.

    Returns:
        positions (T+1, N, 2) with positions frozen after an episode ends, length (N,) in steps (-1 where the
        goal was not reached within `max_steps`), goals (N, 2).
    """
    states, _, length, goal = _simulate(num_episodes, config, seed, num_waypoints, max_steps)
    positions = states[..., :2].copy()
    for i in np.flatnonzero(length >= 0):
        positions[length[i] + 1 :, i] = positions[length[i], i]
    return positions, length, goal


def _simulate(
    num_episodes: int, config: PointMassConfig, seed: int, num_waypoints: int, max_steps: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """States (T+1, N, 4), actions (T+1, N, 2; last zero), lengths (N,) (-1: unfinished), goals (N, 2)."""
    rng = np.random.default_rng(seed)
    position, velocity, goal = sample_initial_states(rng, num_episodes, config)
    waypoints = rng.uniform(-config.goal_range, config.goal_range, size=(num_episodes, num_waypoints, 2))
    targets = np.concatenate([waypoints, goal[:, None]], axis=1)  # (N, W+1, 2)
    stage = np.zeros(num_episodes, dtype=np.int64)  # index of the current target
    length = np.full(num_episodes, -1, dtype=np.int64)  # -1: still running
    states, actions = [np.concatenate([position, velocity], -1)], []
    rows = np.arange(num_episodes)
    for t in range(max_steps):
        action = np.clip(
            pd_action(position, velocity, targets[rows, stage]), -config.max_action, config.max_action
        )
        position, velocity = step_dynamics(position, velocity, action, config)
        actions.append(action)
        states.append(np.concatenate([position, velocity], -1))
        reached = np.linalg.norm(position - targets[rows, stage], axis=-1) < config.success_radius
        length[is_success(position, goal, config) & (length < 0)] = t + 1
        stage = np.where(reached & (stage < num_waypoints), stage + 1, stage)
        if (length >= 0).all():
            break
    actions.append(np.zeros_like(position))
    return np.stack(states), np.stack(actions), length, goal


def generate_demonstrations(
    num_episodes: int,
    config: PointMassConfig,
    seed: int,
    num_waypoints: int = 5,
    min_steps: int = 10,
    max_steps: int = 400,
) -> list[dict[str, np.ndarray]]:
    """Runs the waypoint demonstrator and returns its successful episodes of >= `min_steps` steps.

    Episodes stay in seed order, so the dataset is a deterministic function of the arguments. Each episode
    of T actions has T + 1 frames: frame t holds o_t and a_t; the last frame holds the final observation
    (where the goal is reached), a zero action and ``is_terminal = True``. Columns: "observation.state"
    (T+1, 4), "goal" (T+1, 2), "action" (T+1, 2), "is_success" (T+1,) true success of o_t, "is_terminal"
    (T+1,). Steps-to-go labels are added by the caller (`siefm.data.sampler.steps_to_go_labels`).
    """
    states, actions, length, goal = _simulate(num_episodes, config, seed, num_waypoints, max_steps)
    episodes = []
    for i in np.flatnonzero(length >= min_steps):
        frames = length[i] + 1
        action = actions[:frames, i].copy()
        action[-1] = 0.0  # no action is taken from the final observation
        is_terminal = np.zeros(frames, dtype=bool)
        is_terminal[-1] = True
        episodes.append(
            {
                "observation.state": states[:frames, i].astype(np.float32),
                "goal": np.repeat(goal[i][None], frames, 0).astype(np.float32),
                "action": action.astype(np.float32),
                "is_success": is_success(states[:frames, i, :2], goal[i], config),
                "is_terminal": is_terminal,
            }
        )
    return episodes


def run_controller(
    policy: Callable[[dict[str, np.ndarray]], np.ndarray], world: BatchedPointMass, max_steps: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Runs `policy` on every env of `world` until true success or `max_steps`, without auto-reset.

    Returns:
        success (N,) bool, episode length (N,) in steps, positions (T+1, N, 2) for plotting (frames after an
        env finished repeat its final position).
    """
    obs = world.observe()
    done = np.zeros(world.num_envs, dtype=bool)
    success = np.zeros(world.num_envs, dtype=bool)
    length = np.full(world.num_envs, max_steps, dtype=np.int64)
    positions = [world.position.copy()]
    for t in range(max_steps):
        action = np.where(done[:, None], 0.0, policy(obs))
        before = world.position.copy()
        obs, reached = world.step(action)
        # Finished envs stay frozen so their final position is what gets plotted.
        world.position[done] = before[done]
        world.velocity[done] = 0.0
        newly = reached & ~done
        success |= newly
        length[newly] = t + 1
        done |= newly
        positions.append(world.position.copy())
        if done.all():
            break
    return success, length, np.stack(positions)
