"""`torch.compile` for training, in the modes `bench/epoch_time.py` measured.

On an H100 at batch 128 with bf16 autocast (docs/performance.md), an epoch took 2.89 s eager,
2.47 s compiled in the `default` mode (fused kernels) and 1.79 s in `reduce-overhead`, which also
records CUDA graphs: a step is a few milliseconds, mostly kernel launches, and a graph replays
them all in one. A CPU has no graphs to record, so there `reduce-overhead` compiles as `default`.
`max-autotune` also searches kernel configurations at a longer compile; it was not measured.
"""

from __future__ import annotations

from torch import nn

COMPILE_MODES = ("default", "reduce-overhead", "max-autotune")


def compile_in_place(model: nn.Module, mode: str | None) -> None:
    """Compiles `model`'s forward in `mode` (None leaves it eager).

    In place (`nn.Module.compile`), so `state_dict` keeps its plain names: the checkpoint and the
    weights load into an uncompiled model, and a run may resume with another mode or none.
    """
    if mode is not None:
        model.compile(mode=mode)
