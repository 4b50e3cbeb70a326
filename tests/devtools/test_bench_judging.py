"""How `exchange bench` judges an answer: a THROTTLED refusal is the client's query-cost
budget working (counted apart, and not as an operation served), any other GraphQL error
is an error."""

from __future__ import annotations

from exchange.devtools.bench import Results, _judge


def test_a_throttled_request_is_counted_apart_from_errors() -> None:
    results = Results()
    throttled = {"data": None, "errors": [{"message": "...", "extensions": {"code": "THROTTLED"}}]}

    served = _judge("earn", 200, throttled, results)

    assert (results.throttled, results.errors) == (1, 0)
    assert not served  # neither throughput nor latency


def test_any_other_graphql_error_is_an_error() -> None:
    results = Results()
    failed = {"data": None, "errors": [{"message": "...", "extensions": {"code": "INTERNAL"}}]}

    served = _judge("earn", 200, failed, results)

    assert (results.throttled, results.errors) == (0, 1)
    assert served
    assert "INTERNAL" in results.error_examples[0]
