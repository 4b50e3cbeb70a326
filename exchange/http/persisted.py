"""Automatic persisted queries, by Apollo's protocol (APQ, version 1).

A client sends ``extensions.persistedQuery = {"version": 1, "sha256Hash": "<hex>"}``,
by GET or POST, without the query. If this process knows the hash, the query it stands
for runs (and, being the same string object every time, it hits the parser and
validation caches at once); if not, the answer is the error ``PersistedQueryNotFound``
(``extensions.code = "PERSISTED_QUERY_NOT_FOUND"``, HTTP 200), and the client sends the
query with the hash. A query sent with a hash is checked against it (SHA-256 of its
UTF-8, lower-case hex): a mismatch is refused (400, ``PERSISTED_QUERY_HASH_MISMATCH``)
and nothing runs; a match is remembered. The cache is per process and bounded
(:data:`exchange.kit.limits.PERSISTED_QUERIES`, least recently used first out): a
client that meets another worker, or an evicted hash, just sends the query again.
"""

from __future__ import annotations

import hashlib
import re
from collections import OrderedDict
from typing import Any

from exchange.kit import limits

VERSION = 1
_HASH = re.compile(r"[0-9a-f]{64}")


class PersistedQueryError(Exception):
    """A persisted-query request that cannot run: the HTTP status, the message and the
    ``extensions.code`` of its one error."""

    def __init__(self, status: int, message: str, code: str) -> None:
        super().__init__(message)
        self.status, self.message, self.code = status, message, code


def not_found() -> PersistedQueryError:
    return PersistedQueryError(200, "PersistedQueryNotFound", "PERSISTED_QUERY_NOT_FOUND")


def _refused(message: str, code: str = "BAD_REQUEST") -> PersistedQueryError:
    return PersistedQueryError(400, message, code)


def requested_hash(extensions: dict[str, Any] | None) -> str | None:
    """The hash of a persisted-query request, or None when the request is not one."""
    if not extensions or "persistedQuery" not in extensions:
        return None
    persisted = extensions["persistedQuery"]
    if not isinstance(persisted, dict):
        raise _refused("extensions.persistedQuery must be an object")
    if persisted.get("version") != VERSION:
        raise _refused(
            "extensions.persistedQuery.version must be 1", "PERSISTED_QUERY_NOT_SUPPORTED"
        )
    digest = persisted.get("sha256Hash")
    if not isinstance(digest, str) or not _HASH.fullmatch(digest):
        raise _refused("extensions.persistedQuery.sha256Hash must be 64 lower-case hex digits")
    return digest


def digest_of(query: str) -> str:
    return hashlib.sha256(query.encode("utf-8", "surrogatepass")).hexdigest()


class PersistedQueries:
    """Queries by the SHA-256 of their text, the most recently used kept."""

    def __init__(self, capacity: int = limits.PERSISTED_QUERIES) -> None:
        self.capacity = capacity
        self._queries: OrderedDict[str, str] = OrderedDict()

    def __len__(self) -> int:
        return len(self._queries)

    def resolve(self, query: str | None, extensions: dict[str, Any] | None) -> str | None:
        """The query to run: the one sent (checked against its hash, then remembered), or
        the one its hash stands for; :class:`PersistedQueryError` when there is none."""
        digest = requested_hash(extensions)
        if digest is None:
            return query
        if query is None:
            known = self._queries.get(digest)
            if known is None:
                raise not_found()
            self._queries.move_to_end(digest)
            return known
        if digest_of(query) != digest:
            raise _refused(
                "provided sha256Hash does not match the query", "PERSISTED_QUERY_HASH_MISMATCH"
            )
        self._queries[digest] = query
        self._queries.move_to_end(digest)
        while len(self._queries) > self.capacity:
            self._queries.popitem(last=False)
        return query
