"""The HTTP adapters of the composition root: GraphQL over HTTP and WebSocket, the OAuth
endpoints, the bearer-token check, and serving details for uvicorn."""
