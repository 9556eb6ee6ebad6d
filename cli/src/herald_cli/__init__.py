"""The herald command."""
