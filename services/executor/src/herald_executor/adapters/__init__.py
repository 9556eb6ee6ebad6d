"""Adapters: the I/O ports of this service."""
