"""Mapping domain errors to GraphQL: mutations return them as ``userErrors``; queries
raise a GraphQL error whose ``extensions.code`` is the domain code."""

from __future__ import annotations

from graphql import GraphQLError

from exchange.kit.errors import DomainError


def query_error(error: DomainError) -> GraphQLError:
    return GraphQLError(error.message, extensions={"code": str(error.code)})
