"""Run directories: the one type every reader and writer of `runs/` uses."""

from kerasflow.runs.rundir import (CHECKPOINTS_DIR, HISTORY_FILE, METRICS_FILE, MODEL_FILE, PLOTS_DIR, SPEC_FILE,
                                   STATE_FILE, STATS_FILE, TARGETS_FILE, RunDir, default_dir, new_run_path,
                                   removed_if_left_empty, write_json, write_text)

__all__ = ["RunDir", "default_dir", "new_run_path", "removed_if_left_empty", "write_json", "write_text", "SPEC_FILE",
           "STATS_FILE", "TARGETS_FILE", "STATE_FILE", "HISTORY_FILE", "METRICS_FILE", "MODEL_FILE", "CHECKPOINTS_DIR",
           "PLOTS_DIR"]
