"""`torch.compile` for training (of a `TrainingObjective`), in the modes `bench/epoch_time.py` measured.

On an H200 at batch 128 (docs/performance.md), an epoch took 4.11 s eager in fp32, 1.86 s with
bf16 autocast compiled in the `default` mode (fused kernels) and 1.44 s in `reduce-overhead`,
which also records CUDA graphs: a step is a few milliseconds, many of them kernel launches, and a
graph replays them all in one. A CPU has no graphs to record, so there `reduce-overhead` compiles
as `default`. `max-autotune` also searches kernel configurations at a longer compile; it was not
measured.
"""

from __future__ import annotations

from torch import nn

COMPILE_MODES = ("default", "reduce-overhead", "max-autotune")


def compile_in_place(module: nn.Module, mode: str | None) -> None:
    """Compiles `module`'s forward in `mode` (None leaves it eager), for fixed shapes.

    Training sees two batch shapes (the full batch and an epoch's last): `dynamic=False` compiles
    one graph for each rather than one for any size, which CUDA graphs record per size anyway.
    In place (`nn.Module.compile`), so the state dicts of the module and of what it holds keep
    their plain names.
    """
    if mode is not None:
        module.compile(mode=mode, dynamic=False)
