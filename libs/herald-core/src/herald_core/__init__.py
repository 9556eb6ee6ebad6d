"""Herald core: contracts, envelope, topics, bus, signing, settings, observability."""
