"""The use cases: every thing a caller may ask of the exchange, one function each, with
the permission it needs declared on it (:mod:`exchange.usecases.core`), run by the
:class:`~exchange.usecases.runner.Runner` in one unit of work under the caller's
row-level-security scope.

- :mod:`~exchange.usecases.points`: earn, redeem and hold (micro-batched), bulk issuance,
  capture, release, reverse, transfer;
- :mod:`~exchange.usecases.addressed`: the one loop of a batch form over members named
  by a partner's refs (earns, redemptions, holds, purchases);
- :mod:`~exchange.usecases.members`: link, members by ref, wallets, expiring points,
  history, holds, live wallet updates;
- :mod:`~exchange.usecases.partners`: the registry as callers see it, ledger accounts;
- :mod:`~exchange.usecases.settlement`: runs, finalizing, statements.

The GraphQL schema calls these and nothing else; none of them imports a web framework.
"""
