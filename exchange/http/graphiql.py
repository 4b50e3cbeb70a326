"""The GraphiQL page a browser gets on GET /graphql: Strawberry's, with a first screen of
our own. Every call needs a bearer token, so the Headers editor starts with an
``Authorization: Bearer <token>`` placeholder and the query editor with a comment that
says how to get one (the curl line of docs/api.md, section 1).

Strawberry offers no option for either: the page is its template with two parts
replaced, each found exactly once (a Strawberry upgrade that changes them fails when the
app is built, not silently in a browser)."""

from __future__ import annotations

import json
import re

from strawberry.http.ides import get_graphql_ide_html

from exchange.kit.invariant import invariant

#: What the Headers editor shows until the user types their own.
HEADERS_PLACEHOLDER = '{\n  "Authorization": "Bearer <token>"\n}'

FIRST_SCREEN = """\
# The coalition exchange API. Every call needs an access token.
#
# 1. Get one with your client's id and secret (docs/api.md, section 1):
#
#      BASE={base}
#      curl -s -u "$CLIENT_ID:$CLIENT_SECRET" -d grant_type=client_credentials \\
#        $BASE/oauth/token
#
# 2. Put its access_token in the Headers editor below, in place of <token>:
#
#      {{"Authorization": "Bearer <token>"}}
#
#    Tokens last minutes; fetch a new one when a call answers 401.
#
# 3. Run this query (Ctrl-Enter). The Docs panel describes every type and field.

{{
  viewer {{
    kind
    scopes
    partner {{ name }}
  }}
}}
"""

_EXAMPLE_QUERY = re.compile(r"const EXAMPLE_QUERY = `.*?`;", re.DOTALL)
_INITIAL_HEADERS = "React.useState(parameters.headers)"


def _template_literal(text: str) -> str:
    """``text`` as the body of a JavaScript template literal inside a <script> element."""
    return (
        text.replace("\\", "\\\\").replace("`", "\\`").replace("${", "\\${").replace("<", "\\x3c")
    )


def page(public_url: str) -> str:
    """The GraphiQL page, its first screen naming this server's ``public_url``."""
    template = get_graphql_ide_html("graphiql")
    invariant(
        len(_EXAMPLE_QUERY.findall(template)) == 1 and template.count(_INITIAL_HEADERS) == 1,
        "Strawberry's GraphiQL template has an example query and initial headers to replace",
    )
    screen = _template_literal(FIRST_SCREEN.format(base=public_url))
    # The placeholder's own "<token>" stays readable: a JSON string in a script is no tag.
    definitions = (
        f"const EXAMPLE_QUERY = `{screen}`;\n"
        f"      const DEFAULT_HEADERS = {json.dumps(HEADERS_PLACEHOLDER)};"
    )
    with_query = _EXAMPLE_QUERY.sub(lambda _: definitions, template)
    return with_query.replace(
        _INITIAL_HEADERS, "React.useState(parameters.headers || DEFAULT_HEADERS)"
    )
