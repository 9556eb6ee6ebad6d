"""Campaign tasks: a brief over a segment of the contact store, carried by its own small state machine."""
