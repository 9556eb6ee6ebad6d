"""Herald guard service."""
