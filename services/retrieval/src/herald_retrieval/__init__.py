"""Herald retrieval service."""
