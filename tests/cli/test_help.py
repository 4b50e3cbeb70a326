"""Every option of the `exchange` command explains itself: a help text, and the default
when there is one; `exchange --help` says where settings and documentation are."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from decimal import Decimal

from exchange.cli import build_parser


def every_parser(parser: argparse.ArgumentParser) -> Iterator[argparse.ArgumentParser]:
    """The parser and every sub-command's parser under it, depth first."""
    yield parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                yield from every_parser(sub)


def shown_help(parser: argparse.ArgumentParser, action: argparse.Action) -> str:
    """The help text as `--help` prints it (its %(default)s and the like filled in)."""
    text = str(action.help or "")
    return text % {**vars(action), "prog": parser.prog} if "%" in text else text


def renderings(default: object) -> set[str]:
    """How a help text may write a default: as is, or an int with thousands separators."""
    shown = {str(default)}
    if isinstance(default, int) and not isinstance(default, bool):
        shown.add(f"{default:,}")
    if isinstance(default, Decimal):
        shown.add(f"{default.normalize():f}")
    return shown


def states_no_default(action: argparse.Action) -> bool:
    """A flag (store_true: off unless given) or a repeatable option that starts empty
    has no default worth printing."""
    return action.nargs == 0 or action.default is None or action.default == []


def test_every_option_and_sub_command_has_help_and_states_its_default() -> None:
    problems: list[str] = []
    for parser in every_parser(build_parser()):
        for action in parser._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            name = f"{parser.prog} {'/'.join(action.option_strings) or action.dest}"
            if isinstance(action, argparse._SubParsersAction):
                problems += [
                    f"{parser.prog} {choice.dest}: no help"
                    for choice in action._get_subactions()
                    if not choice.help
                ]
                continue
            text = shown_help(parser, action)
            if not text or action.help == argparse.SUPPRESS:
                problems.append(f"{name}: no help")
            elif not states_no_default(action) and not any(
                shown in text for shown in renderings(action.default)
            ):
                problems.append(f"{name}: help does not say its default {action.default!r}")

    assert problems == []


def test_the_help_of_the_command_names_its_settings_and_its_documentation() -> None:
    text = build_parser().format_help()

    for named in ("DATABASE_URL", "EXCHANGE_HOME", "README.md", "docs/api.md",
                  "docs/operations.md"):  # fmt: skip
        assert named in text


def test_units_are_spelled_out_where_a_number_could_be_read_two_ways() -> None:
    helps = {
        f"{parser.prog} {action.option_strings[0]}": shown_help(parser, action)
        for parser in every_parser(build_parser())
        for action in parser._actions
        if action.option_strings
    }

    for command in ("add", "contract"):
        assert "a fraction like 0.02" in helps[f"exchange partner {command} --fee-rate"]
        assert "not a percent" in helps[f"exchange partner {command} --fee-rate"]
    assert "earn=45,redeem=35,wallet=20" in helps["exchange bench --mix"]
    assert "seconds" in helps["exchange bench --duration"]
    assert "(default: 8000)" in helps["exchange serve --port"]
    assert "(default: 1)" in helps["exchange serve --workers"]
