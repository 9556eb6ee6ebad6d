"""Herald executor service."""
