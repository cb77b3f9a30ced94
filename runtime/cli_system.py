"""System-wide runtime commands: system prune, system df."""
