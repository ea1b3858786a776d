"""Every console command (`tmt-*` and the scripts/ programs): one module per command, each with
`main(argv=None) -> int`, all behind one error edge (`edge.py`). The only Hydra code (train,
prepare, `hydra_config.py`) lives here; only train and prepare import `transformer.training`."""
