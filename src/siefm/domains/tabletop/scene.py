"""The tabletop scene as MJCF: a dark board, a kinematic cylinder pusher and coloured blocks (docs/method.md,
"The tabletop reference").

Blocks come in 4 colours x 4 shapes with a 4-5 cm footprint, 3.81 cm height, 10 g and sliding friction 0.5.
Non-convex shapes are unions of convex pieces, because MuJoCo collides meshes by their convex hulls: the
star is a pentagon with five triangular points, the moon an arc of small boxes. The pusher is a mocap
body: it goes where it is told and pushes whatever is in the way. Shadows and multisampling are off, so
off-screen rendering stays cheap (docs/method.md, "Performance notes"); so do a coarse grid on the table plane
(a fine one made rendering 4x slower) and coarse cylinder tessellation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import mujoco
import numpy as np

BOARD_X = (0.15, 0.60)
BOARD_Y = (-0.3048, 0.3048)
BLOCK_HEIGHT = 0.0381
BLOCK_MASS = 0.01
TIMESTEP = 0.02  # seconds per physics step, 5 per 10 Hz control step (choice: half the cost of 0.01)
PUSHER_RADIUS = 0.013
PUSHER_HEIGHT = 0.012  # of the pusher's bottom face above the board: it clears nothing but the board
COLOURS = {
    "red": "0.85 0.15 0.15 1",
    "blue": "0.15 0.35 0.85 1",
    "green": "0.2 0.7 0.25 1",
    "yellow": "0.9 0.8 0.15 1",
}
SHAPES = ("moon", "cube", "star", "pentagon")
NOVEL_SHAPES = ("banana",)  # never in demonstrations: the novel-object experiment


@dataclass(frozen=True)
class Block:
    colour: str
    shape: str

    @property
    def body(self) -> str:
        return f"{self.colour}_{self.shape}"


BLOCK_SETS = {
    "8": tuple(
        Block(c, s)
        for c, s in (
            ("red", "moon"),
            ("red", "pentagon"),
            ("blue", "moon"),
            ("blue", "cube"),
            ("green", "cube"),
            ("green", "star"),
            ("yellow", "star"),
            ("yellow", "pentagon"),
        )
    ),
    "4": (Block("red", "moon"), Block("blue", "cube"), Block("green", "star"), Block("yellow", "pentagon")),
    "1": (Block("red", "cube"),),
    # The novel-object board (choice): the standard set with the yellow pentagon swapped for a banana, so
    # the state layout (and a state-based checkpoint) still fits; the reference's BananaTable has the banana
    # alone.
    "banana": (
        Block("red", "moon"),
        Block("red", "pentagon"),
        Block("blue", "moon"),
        Block("blue", "cube"),
        Block("green", "cube"),
        Block("green", "star"),
        Block("yellow", "star"),
        Block("yellow", "banana"),
    ),
}


def _prism(points: np.ndarray) -> str:
    """Vertices of a vertical prism over a 2-D polygon, as an MJCF vertex string."""
    half = BLOCK_HEIGHT / 2
    return " ".join(f"{x:.5f} {y:.5f} {z:.5f}" for z in (-half, half) for x, y in points)


def _polygon(sides: int, radius: float, phase: float = 0.0) -> np.ndarray:
    angles = phase + 2 * math.pi * np.arange(sides) / sides
    return np.stack([radius * np.cos(angles), radius * np.sin(angles)], -1)


def _meshes() -> str:
    pentagon = _polygon(5, 0.023, math.pi / 2)
    core = _polygon(5, 0.012, math.pi / 2)
    meshes = [
        f'<mesh name="pentagon" vertex="{_prism(pentagon)}"/>',
        f'<mesh name="star_core" vertex="{_prism(core)}"/>',
    ]
    for i, angle in enumerate(math.pi / 2 + 2 * math.pi * np.arange(5) / 5):  # one point per core vertex
        tip = 0.024 * np.array([math.cos(angle), math.sin(angle)])
        base = [0.011 * np.array([math.cos(angle + da), math.sin(angle + da)]) for da in (-0.63, 0.63)]
        meshes.append(f'<mesh name="star_point{i}" vertex="{_prism(np.stack([tip, *base]))}"/>')
    return "\n    ".join(meshes)


def _block_geoms(block: Block) -> str:
    rgba = COLOURS[block.colour]
    common = f'rgba="{rgba}" friction="0.5 0.005 0.0001" mass="{{mass}}"'
    half = BLOCK_HEIGHT / 2
    if block.shape == "cube":
        parts = [f'<geom type="box" size="0.02 0.02 {half}" {common}/>']
    elif block.shape == "pentagon":
        parts = [f'<geom type="mesh" mesh="pentagon" {common}/>']
    elif block.shape == "star":
        parts = [f'<geom type="mesh" mesh="star_core" {common}/>']
        parts += [f'<geom type="mesh" mesh="star_point{i}" {common}/>' for i in range(5)]
    elif block.shape == "banana":  # about 8 cm long and 2 cm wide, gently curved
        parts = _arc(0.05, math.radians(40), (0.009, 0.012), 5, common)
    else:  # moon: five boxes along a 120-degree arc of radius 2 cm, concave side towards +x; the boxes are
        # thick enough that the pusher cannot nest in the hollow
        parts = _arc(0.02, math.pi / 3, (0.009, 0.009), 5, common)
    mass = BLOCK_MASS / len(parts)
    return "\n      ".join(p.replace("{mass}", f"{mass:.6f}") for p in parts)


def _arc(
    radius: float, half_angle: float, half_size: tuple[float, float], count: int, common: str
) -> list[str]:
    """Boxes along an arc around the origin, concave side towards +x, shifted so the centre of mass (which
    the env reports as the block's position) is the body origin."""
    angles = np.linspace(-half_angle, half_angle, count)
    shift = radius * float(np.cos(angles).mean())
    half = BLOCK_HEIGHT / 2
    return [
        f'<geom type="box" size="{half_size[0]} {half_size[1]} {half}" '
        f'pos="{-radius * math.cos(a) + shift:.4f} {radius * math.sin(a):.4f} 0" '
        f'euler="0 0 {-math.degrees(a):.2f}" {common}/>'
        for a in angles
    ]


def scene_xml(blocks: tuple[Block, ...], image_size: tuple[int, int] = (96, 96)) -> str:
    """The MJCF model of a board with `blocks` (placed later by the env) and the pusher."""
    height, width = image_size
    centre_x, centre_y = sum(BOARD_X) / 2, sum(BOARD_Y) / 2
    bodies = "\n    ".join(
        f'<body name="{b.body}" pos="{centre_x} {centre_y} {BLOCK_HEIGHT / 2 + 0.001}">'
        "\n      <freejoint/>\n      "
        f"{_block_geoms(b)}\n    </body>"
        for b in blocks
    )
    return f"""<mujoco model="tabletop">
  <option timestep="{TIMESTEP}" integrator="implicitfast"/>
  <visual>
    <quality shadowsize="0" offsamples="0" numslices="12" numstacks="4"/>
    <global offwidth="{width}" offheight="{height}"/>
  </visual>
  <asset>
    {_meshes()}
  </asset>
  <worldbody>
    <light pos="0.4 0 1.5" dir="0 0 -1" castshadow="false"/>
    <geom name="table" type="plane" size="1 1 0.5" rgba="0.55 0.5 0.45 1" friction="0.5 0.005 0.0001"/>
    <geom name="board" type="box" pos="{centre_x} {centre_y} 0.0002"
          size="{(BOARD_X[1] - BOARD_X[0]) / 2} {(BOARD_Y[1] - BOARD_Y[0]) / 2} 0.0005"
          rgba="0.2 0.2 0.22 1" contype="0" conaffinity="0"/>
    <camera name="front" pos="0.95 0 0.6" xyaxes="0 1 0 -0.722 0 0.692" fovy="55"/>
    <camera name="policy" pos="0.69 0 0.6" xyaxes="0 1 0 -0.886 0 0.464" fovy="50"/>
    <body name="pusher" mocap="true" pos="{centre_x} {centre_y} {PUSHER_HEIGHT + 0.04}">
      <geom type="cylinder" size="{PUSHER_RADIUS} 0.04" rgba="0.85 0.85 0.85 1" friction="0.5 0.005 0.0001"/>
    </body>
    {bodies}
  </worldbody>
</mujoco>
"""


def build_model(blocks: tuple[Block, ...], image_size: tuple[int, int] = (96, 96)) -> mujoco.MjModel:
    return mujoco.MjModel.from_xml_string(scene_xml(blocks, image_size))
