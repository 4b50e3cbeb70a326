"""The system scope: a transaction with no caller, run as the owning role.

Only entry points that act for nobody may import this: the composition root (the token
endpoint, background sweeps and delivery), the CLI and the developer tools. Request
paths (the use cases, the GraphQL schema) and the domain packages may not: an
import-linter contract refuses it, so a resolver cannot reach the database except under
its caller's row-level-security scope.
"""

from __future__ import annotations

from exchange.kit.db import _SYSTEM_TOKEN, SystemScope

SYSTEM = SystemScope(_SYSTEM_TOKEN)
