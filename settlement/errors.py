"""The settlement package's domain errors, under :class:`SettlementError`.

Tree::

    DomainError (exchange.kit.errors)
    ├── InvalidInput / NotFound    reused from the kit (malformed periods, unknown runs)
    └── SettlementError
        ├── PeriodClosed           PERIOD_CLOSED: a finalized run covers the period, or
        │                          the run is no longer a draft
        ├── NoContractInForce      INVALID_INPUT: points booked before the partner's
        │                          first contract
        ├── RatesIncomplete        INVALID_INPUT: several currencies and none chosen, or
        │                          an exchange rate missing or not positive
        ├── RunNotFinalized        INVALID_INPUT: only a finalized run can be paid
        └── InstructionPaid        INVALID_INPUT: the instruction is already paid
"""

from __future__ import annotations

from exchange.kit.errors import DomainError, ErrorCode


class SettlementError(DomainError):
    """Root of the settlement package's business failures."""


class PeriodClosed(SettlementError):
    code = ErrorCode.PERIOD_CLOSED


class NoContractInForce(SettlementError):
    code = ErrorCode.INVALID_INPUT


class RatesIncomplete(SettlementError):
    code = ErrorCode.INVALID_INPUT


class RunNotFinalized(SettlementError):
    code = ErrorCode.INVALID_INPUT


class InstructionPaid(SettlementError):
    code = ErrorCode.INVALID_INPUT
