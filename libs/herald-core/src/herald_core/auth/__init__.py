"""Who is calling and what they may do: people by their identity provider's token or an authenticating proxy's
header (`callers`), Herald's own services by tokens they sign with their service keys (`services`), roles per
tenant (`access`)."""
