"""Command-line helpers shared by the entry points (train_net.py, demo.py, tools/, datasets/).
The entry points import dfr before detectron2: importing dfr silences the FutureWarnings that
recent torch raises when detectron2 and fvcore call `torch.jit.script` / `torch.jit.interface`
at import time (`dfr.TORCH_JIT_WARNING`)."""
import argparse
import copy

__all__ = ["HelpFormatter", "add_defaults_to_help", "shows_default"]


def shows_default(action: argparse.Action) -> bool:
    """Whether --help should name this action's default: an option (or optional positional)
    whose default is not None / False / "" / an empty list and not argparse.SUPPRESS."""
    d = action.default
    if isinstance(action, (argparse._HelpAction, argparse._VersionAction)):
        return False
    if d is None or d is False or d is argparse.SUPPRESS or (hasattr(d, "__len__") and not len(d)):
        return False
    return bool(action.option_strings) or action.nargs in (argparse.OPTIONAL, argparse.ZERO_OR_MORE)


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the description's line breaks, wraps the options' help and appends
    "(default: X)" where `shows_default` says so and the help does not name a default itself."""

    def _format_action(self, action):
        if not action.help and shows_default(action):  # an option without help still shows it
            action = copy.copy(action)
            action.help = "(default: %(default)s)"
        return super()._format_action(action)

    def _get_help_string(self, action):
        text = action.help or ""
        if not shows_default(action) or "default" in text.lower():
            return text
        return f"{text} (default: %(default)s)".lstrip()


def add_defaults_to_help(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Use `HelpFormatter` for a parser built elsewhere (Detectron2's default_argument_parser)."""
    parser.formatter_class = HelpFormatter
    return parser
