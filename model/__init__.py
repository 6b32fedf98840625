"""A Capsule Network (Sabour, Frosst & Hinton 2017): model, losses, data, checkpoints, training."""
