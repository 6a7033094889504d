"""Makes tests/data/lerobot_written/ with LeRobot's own writer (`LeRobotDataset.create / add_frame /
save_episode / finalize` of the `lerobot-dataset` package, import name `ledataset`), as a LeRobot user's
dataset; siefm's tests read the result and never need LeRobot.

    python -m venv /tmp/ledenv && /tmp/ledenv/bin/pip install lerobot-dataset==0.4.4 torch==2.13.0
    /tmp/ledenv/bin/python tests/data/make_lerobot_written.py tests/data/lerobot_written

The writer imports torchvision (for image transforms that a state-only dataset never uses), which would
pull a multi-GB build here: a stub stands in for it.
"""

import importlib.machinery
import sys
import types


def stub(name: str) -> types.ModuleType:
    module = types.ModuleType(name)
    module.__spec__ = importlib.machinery.ModuleSpec(name, None)
    sys.modules[name] = module
    return module


torchvision = stub("torchvision")
torchvision.transforms = stub("torchvision.transforms")
torchvision.transforms.v2 = stub("torchvision.transforms.v2")
torchvision.transforms.v2.functional = stub("torchvision.transforms.v2.functional")

import numpy as np  # noqa: E402
from ledataset.datasets.lerobot_dataset import LeRobotDataset  # noqa: E402

FEATURES = {
    "observation.state": {"dtype": "float32", "shape": (2,), "names": None},
    "observation.goal": {"dtype": "float32", "shape": (2,), "names": None},
    "action": {"dtype": "float32", "shape": (2,), "names": None},
}

if __name__ == "__main__":
    dataset = LeRobotDataset.create(
        "local/toy", fps=20, features=FEATURES, root=sys.argv[1], robot_type="toy", use_videos=False
    )
    rng = np.random.default_rng(0)
    for episode in range(3):  # 4, 5 and 6 frames; two tasks
        for _ in range(4 + episode):
            frame = {name: rng.normal(size=2).astype(np.float32) for name in ("observation.state", "action")}
            dataset.add_frame(
                {**frame, "observation.goal": np.ones(2, np.float32), "task": f"reach {episode % 2}"}
            )
        dataset.save_episode()
    dataset.finalize()
