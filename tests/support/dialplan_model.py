"""How Asterisk runs the few dialplan applications docs/dialplan.md uses, closely enough
to show what a caller's name does to them.

A dialplan line's argument is parsed when extensions.conf is loaded, but variables are
substituted into it only when the line runs, and then the application splits the
substituted text by its own rules. So a value with ``)``, ``:`` or ``?`` in it can break
an application that splits (ExecIf, GotoIf, IF()) and cannot break one that does not
(Set takes everything after the first ``=``). The rules here follow Asterisk's source:
``pbx_substitute_variables_helper_full`` (``${...}`` and ``$[...]`` found by counting
brackets in the unsubstituted text, a function's argument running to its last ``)``:
``func_args``), ``pbx_builtin_setvar``, ``pbx_builtin_gotoif`` (``strsep`` on ``?`` and
``:``), ``execif_exec`` in app_exec.c and ``__ast_app_separate_args`` (a delimiter
inside ``()``, ``[]`` or ``""`` does not split), ``pbx_checkcondition``. Anything else
the documented snippet might use fails loudly, so the doc cannot drift past the model.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from urllib.parse import quote

__all__ = ["Channel", "run_until"]

_LINE = re.compile(r"^\s*(?:exten\s*=>\s*[^,]+,\s*1|same\s*=>\s*n)(?:\((?P<label>\w+)\))?,"
                   r"(?P<app>\w+)\((?P<data>.*)\)\s*$")
_OPERAND = r'("[^"]*"|[^\s"]+)'
_EXPRESSION = re.compile(rf"^\s*{_OPERAND}\s*(=|!=|>|<)\s*{_OPERAND}\s*$")


class Channel:
    """One call's variables and the functions the snippet reads and writes."""

    def __init__(self, values: dict[str, str], curl: Callable[[str], str]) -> None:
        self.values = dict(values)  # "CALLPOP_NAME", "CALLERID(name)", ...
        self._curl = curl

    def read(self, inner: str) -> str:
        if inner in self.values:
            return self.values[inner]
        if not inner.endswith(")"):
            raise AssertionError(f"the model has no variable {inner!r}")
        name, _, rest = inner.partition("(")
        argument = rest[:rest.rfind(")")]  # func_args: up to the last ")"
        if name == "LEN":
            return str(len(argument.encode()))
        if name == "URIENCODE":
            return quote(argument, safe="")
        if name == "CURL":
            return self._curl(argument)
        raise AssertionError(f"the model has no function {inner!r}")

    def substitute(self, text: str) -> str:
        out: list[str] = []
        i = 0
        while i < len(text):
            if text.startswith(("${", "$["), i):
                opener, closer = ("{", "}") if text[i + 1] == "{" else ("[", "]")
                depth, j = 1, i + 2
                while depth and j < len(text):
                    depth += {opener: 1, closer: -1}.get(text[j], 0)
                    j += 1
                inner = self.substitute(text[i + 2:j - 1])
                out.append(_expression(inner) if opener == "[" else self.read(inner))
                i = j
            else:
                out.append(text[i])
                i += 1
        return "".join(out)


def _expression(text: str) -> str:
    match = _EXPRESSION.match(text)
    if match is None:
        raise AssertionError(f"the model cannot evaluate $[{text}]")
    left, op, right = (part.strip('"') if part.startswith('"') else part for part in match.groups())
    if left.lstrip("-").isdigit() and right.lstrip("-").isdigit():  # numbers compare as numbers
        order = (int(left) > int(right)) - (int(left) < int(right))
    else:
        order = (left > right) - (left < right)
    result = {"=": order == 0, "!=": order != 0, ">": order > 0, "<": order < 0}[op]
    return "1" if result else "0"


def _true(condition: str) -> bool:
    """pbx_checkcondition: empty is false, a leading integer is its truth, any other text true."""
    number = re.match(r"\s*[+-]?\d+", condition)
    return bool(int(number.group())) if number else condition != ""


def _separate(data: str, delim: str) -> tuple[str, str | None]:
    """__ast_app_separate_args into two, characters kept (AST_NONSTANDARD_RAW_ARGS)."""
    paren = bracket = 0
    quoted = False
    i = 0
    while i < len(data):
        ch = data[i]
        if ch == "(":
            paren += 1
        elif ch == ")":
            paren = max(paren - 1, 0)
        elif ch == "[":
            bracket += 1
        elif ch == "]":
            bracket = max(bracket - 1, 0)
        elif ch == '"':
            quoted = not quoted
        elif ch == "\\":
            i += 1
        elif ch == delim and not (paren or bracket or quoted):
            return data[:i], data[i + 1:]
        i += 1
    return data, None


def _app_and_data(text: str) -> tuple[str, str]:
    app, _, rest = text.partition("(")
    end = rest.rfind(")")
    return app, rest[:end] if end >= 0 else rest


def _exec(channel: Channel, app: str, data: str) -> str | None:
    """Run one application on its substituted argument; a label to go to, or None."""
    if app == "NoOp":
        return None
    if app == "Set":
        name, sep, value = data.partition("=")
        if not sep:
            raise AssertionError(f"Set without '=': {data!r}")
        channel.values[name] = value
        return None
    if app == "GotoIf":
        condition, _, branches = data.partition("?")
        if_true, _, if_false = branches.partition(":")
        return (if_true if _true(condition) else if_false) or None
    if app == "ExecIf":
        comma, question = data.find(","), data.find("?")
        if question < 0 or 0 <= comma < question:
            raise AssertionError(f"ExecIf in its deprecated comma form: {data!r}")
        condition, remainder = _separate(data, "?")
        app_if_true, app_if_false = _separate(remainder or "", ":")
        chosen = app_if_true if _true(condition) else app_if_false
        return _exec(channel, *_app_and_data(chosen)) if chosen else None
    raise AssertionError(f"the model does not run {app}()")


def run_until(snippet: str, channel: Channel, stop: str) -> Channel:
    """Run *snippet*'s dialplan from its first line up to (not including) the first
    line whose argument contains *stop*."""
    lines = [m for m in (_LINE.match(line) for line in snippet.splitlines()) if m is not None]
    labels = {m["label"]: n for n, m in enumerate(lines) if m["label"]}
    n = 0
    while n < len(lines) and stop not in lines[n]["data"]:
        label = _exec(channel, lines[n]["app"], channel.substitute(lines[n]["data"]))
        if label is not None:
            if label not in labels:
                raise AssertionError(f"no label {label!r} in the snippet")
            n = labels[label]
        else:
            n += 1
    return channel
