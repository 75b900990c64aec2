"""The mirror engine: the planner decides, ancestry answers, the transport moves bytes, the engine runs."""
