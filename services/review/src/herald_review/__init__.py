"""Herald review service."""
