"""Diagnostics for the board-reading pixel model: which half, the reader or the towers, fails.

    python experiments/board_swap.py towers --run runs/board/sft --out runs/board/towers-on-recorded
    python experiments/board_swap.py reader --run runs/board/sft --state-run runs/bench-hs1p/sft-bc10 \
        --out runs/board/reader-with-state-model

`towers`: the run's policy without its reader, saved as a state checkpoint (OUT/policy), so `siefm eval`
scores its towers on the recorded block poses. `reader`: the run's reader in front of a state Stage 1 run's
towers (policy and reward, with the state run's threshold s), saved as OUT/checkpoints/{policy,reward}, so
`siefm eval --checkpoint OUT/checkpoints/policy` scores a state policy that reads the estimated poses and
`siefm improve --sft-run OUT` practises with it. The state run must share the board run's dataset (same
spec).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import tyro

from siefm.checkpoint import load_checkpoint, save_checkpoint
from siefm.models.board_efm import BoardEFM


@dataclass(frozen=True)
class Args:
    what: tyro.conf.Positional[Literal["towers", "reader"]]
    """'towers': the policy's towers alone, on recorded poses; 'reader': the reader before a state run's
    towers."""
    run: Path
    """A finished Stage 1 run with `--sft.model.pixel-readout board`."""
    out: Path
    state_run: Path | None = None
    """'reader': a finished state Stage 1 run on the same dataset."""


def load_board(path: Path) -> tuple[BoardEFM, dict]:
    model, metadata = load_checkpoint(path)
    if not isinstance(model, BoardEFM):
        raise SystemExit(f"{path} is not a board-reading pixel checkpoint.")
    return model, metadata


def main(args: Args) -> None:
    if args.what == "towers":
        model, metadata = load_board(args.run / "checkpoints" / "policy")
        note = f"the state towers of {args.run}'s policy, without its reader"
        save_checkpoint(args.out / "policy", model.board, {**metadata, "note": note})
        print(f"state checkpoint: {args.out / 'policy'}")
        return
    if args.state_run is None:
        raise SystemExit("'reader' needs --state-run, a state Stage 1 run on the same dataset.")
    for name in ("policy", "reward"):
        model, metadata = load_board(args.run / "checkpoints" / name)
        towers, state_metadata = load_checkpoint(args.state_run / "checkpoints" / name)
        if towers.spec != model.spec or towers.config.observation != "state":
            raise SystemExit(f"{args.state_run} is not a state run on the data of {args.run}.")
        model.board = towers
        if "success_threshold" in state_metadata:
            metadata = {**metadata, "success_threshold": state_metadata["success_threshold"]}
        note = f"the reader of {args.run} in front of the towers of {args.state_run}"
        path = save_checkpoint(args.out / "checkpoints" / name, model, {**metadata, "note": note})
        try:  # the board config rebuilds its towers: they must be built as the state run's
            load_checkpoint(path)
        except RuntimeError as error:
            message = f"the towers of {args.state_run} are not built as {args.run}'s: {error}"
            raise SystemExit(message) from None
    print(f"checkpoints: {args.out / 'checkpoints'}")


if __name__ == "__main__":
    main(tyro.cli(Args))
