"""Partner registry, contracts, member identity, the OAuth 2 server and principals."""
