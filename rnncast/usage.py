"""What every rnncast command's help and flag errors share: the help formatter, the
"required arguments" group and "did you mean" suggestions for misspelled flags.

Cheap to import (argparse and difflib only), so that every ``--help`` answers before
TensorFlow or Beam would load.
"""

from __future__ import annotations

import argparse
import difflib
from collections.abc import Iterable, Sequence

from rnncast.errors import JobArgumentError

REQUIRED_GROUP = "required arguments"


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows a flag's default where it means something: not for required flags, not None,
    not False (switches) and not an empty list."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        default = action.default
        if action.required or default is None or default is False or default == []:
            return action.help
        return super()._get_help_string(action)


def mark_required(parser: argparse.ArgumentParser, flags: Iterable[str]) -> None:
    """Make ``flags`` (already added to ``parser``) required and list them first, under
    "required arguments" (argparse lists every option under "options" otherwise)."""
    group = next((g for g in parser._action_groups if g.title == REQUIRED_GROUP), None)
    if group is None:
        group = parser.add_argument_group(REQUIRED_GROUP)
        parser._action_groups.remove(group)
        parser._action_groups.insert(1, group)  # first, before "options"
    for flag in flags:
        action = parser._option_string_actions[flag]
        action.required = True
        for other in parser._action_groups:
            if action in other._group_actions:
                other._group_actions.remove(action)
        group._group_actions.append(action)


def flags_of(parser: argparse.ArgumentParser) -> list[str]:
    """Every long flag ``parser`` accepts."""
    return [s for s in parser._option_string_actions if s.startswith("--")]


def suggestion(flag: str, known: Iterable[str]) -> str:
    """What to do about the unknown ``flag`` (``--name`` or ``--name=value``): its rnncast
    spelling when it is one of ``known`` written with underscores (Beam's style), else the
    closest of ``known``; empty when nothing is close."""
    name = flag.split("=", 1)[0]
    known = sorted(set(known))
    if name.startswith("--") and "_" in name:
        dashed = "--" + name[2:].replace("_", "-")
        if dashed in known:
            return (
                f"did you mean {dashed}? (rnncast's own flags are spelled with dashes; "
                "Beam's pipeline options keep their underscores)"
            )
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.7)
    return f"did you mean {close[0]}?" if close else ""


def unknown_flags_error(
    prog: str, unknown: Sequence[str], known: Iterable[str], extra: str = ""
) -> JobArgumentError:
    """The error for ``unknown`` arguments: each flag with its suggestion, and where to look.
    ``extra`` adds a hint (e.g. that Beam pipeline options are accepted too)."""
    known = list(known)
    flags = [a for a in unknown if a.startswith("-")] or list(unknown)
    parts = []
    for flag in flags:
        hint = suggestion(flag, known)
        parts.append(f"{flag.split('=', 1)[0]}: unknown argument" + (f"; {hint}" if hint else ""))
    return JobArgumentError(
        f"{'; '.join(parts)}; see '{prog} --help' for this command's flags{extra}"
    )


def parse_strictly(parser: argparse.ArgumentParser, argv: Sequence[str]) -> argparse.Namespace:
    """``parser.parse_args(argv)``, but an unknown flag raises :class:`JobArgumentError`
    naming it and the flag it most likely meant (the command line prints it as one line)."""
    args, unknown = parser.parse_known_args(list(argv))
    if unknown:
        raise unknown_flags_error(parser.prog, unknown, flags_of(parser))
    return args
