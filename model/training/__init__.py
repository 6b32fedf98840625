"""The pieces `capsnet-train` (model/train.py) is assembled from, one job each.

`distributed` reads torchrun's environment, `batches` serves a split's shuffled batches from the
device, `loop` runs an epoch and a validation pass, `weight_average` keeps the SWA mean,
`run_dir` guards the output directory, `resume` writes and restores the checkpoint, `outputs`
writes each epoch's weights with their model cards, and `progress` is what the run prints.
"""
