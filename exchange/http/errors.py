"""The JSON bodies of errors refused at the HTTP level, before any GraphQL runs.

Two shapes, by route: the GraphQL error shape (``{"errors": [{"message", "extensions":
{"code"}}]}``) everywhere but the OAuth endpoints, which answer as RFC 6749 section 5.2
says (``{"error", "error_description"}``, never cached)."""

from __future__ import annotations

from collections.abc import Mapping

from starlette.responses import JSONResponse

NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}

#: The code an HTTP status is reported under in ``extensions.code``.
CODES = {
    400: "BAD_REQUEST",
    401: "UNAUTHENTICATED",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    413: "PAYLOAD_TOO_LARGE",
    415: "UNSUPPORTED_MEDIA_TYPE",
}


def graphql_error(
    status: int, message: str, *, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    """An HTTP error in the GraphQL error shape; ``extensions.code`` names the status."""
    code = CODES.get(status, "BAD_REQUEST")
    return JSONResponse(
        {"errors": [{"message": message, "extensions": {"code": code}}]},
        status_code=status,
        headers=dict(headers or {}),
    )


def oauth_error(status: int, error: str, description: str) -> JSONResponse:
    """An RFC 6749 section 5.2 error (``invalid_request``, ``invalid_client``, ...)."""
    return JSONResponse(
        {"error": error, "error_description": description}, status_code=status, headers=NO_STORE
    )
