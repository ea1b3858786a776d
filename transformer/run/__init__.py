"""The run folder's one owner: its file names, the checkpoints/ manifest, saving and finding
checkpoints, crash recovery, fork, upgrades of old folders, and the metrics.jsonl events."""
