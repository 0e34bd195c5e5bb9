"""Click's usage errors (a mistyped option, a bad value, a missing argument) as one `research-agent:` line.

Click would print a usage box of several lines; the rule of the house is one line on stderr and the
documented exit code (errors.USAGE), naming the command and where its help is.
"""

from __future__ import annotations


def usage_line(error) -> str:
    """`optimize: No such option: --paralel (Possible options: --parallel); see research-agent optimize --help`"""
    message = " ".join(error.format_message().split()).rstrip(".")
    ctx = getattr(error, "ctx", None)
    path = ctx.command_path if ctx is not None else "research-agent"
    command = path.split(" ", 1)[1] if " " in path else ""
    return (f"{command}: " if command else "") + f"{message}; see {path} --help"
