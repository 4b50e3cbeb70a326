"""The GraphQL schema (Strawberry): thin resolvers over the domain use cases."""
