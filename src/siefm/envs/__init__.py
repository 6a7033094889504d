"""Goal-conditioned environments. Importing this package registers them with gymnasium."""

import gymnasium as gym

from siefm.envs.pointmass import BatchedPointMass, PointMassConfig, PointMassEnv

if "siefm/PointMass-v0" not in gym.registry:
    gym.register(id="siefm/PointMass-v0", entry_point="siefm.envs.pointmass:PointMassEnv")
if "siefm/Tabletop-v0" not in gym.registry:  # imported lazily by gymnasium: MuJoCo loads only when used
    gym.register(id="siefm/Tabletop-v0", entry_point="siefm.envs.tabletop.env:TabletopEnv")

__all__ = ["BatchedPointMass", "PointMassConfig", "PointMassEnv"]
