"""The container commands of the runtime CLI (run, ps, logs, stop, kill, rm, start, exec, commit, volume)."""
