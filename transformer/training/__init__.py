"""The training loop and its parts: loss, optimizer and schedule, DDP, logging, validation,
the final model (the run folder itself belongs to `transformer.run`).

Entry point: `transformer.training.trainer.train(cfg)`, called by `transformer.commands.train`.
"""
