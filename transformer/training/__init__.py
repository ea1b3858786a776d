"""The training loop and its parts: loss, optimizer and schedule, DDP, logging, checkpoints.

Entry point: `transformer.training.trainer.train(cfg)`, called by `transformer.commands.train`.
"""
