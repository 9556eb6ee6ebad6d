"""Herald planner service."""
