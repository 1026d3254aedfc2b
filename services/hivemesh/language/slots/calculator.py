"""Arithmetic asked in words, rewritten in the calculator tool's syntax.

"what is 12 times 3 plus 4" -> ``12 * 3 + 4``; "square root of 144" -> ``sqrt(144)``;
"what's 15 percent of 80" -> ``15% of 80``; "10 factorial" -> ``factorial(10)``.
The output uses only what the calculator parses: numbers, ``+ - * / % ^ !``, parentheses,
``% of`` / ``% off``, ``sqrt() round() abs() factorial()``, ``pi`` and ``e``.
"""

from __future__ import annotations

import re
from typing import Final

from hivemesh.language.slots.numbers import normalize_numbers

_NUM = r"-?\d+(?:\.\d+)?"
_LIST = rf"{_NUM}(?:\s*(?:,\s*and|,|and|plus|&)\s*{_NUM})+"
_FUNCTIONS: Final = frozenset({"sqrt", "round", "abs", "factorial", "cbrt"})
_CONSTANTS: Final = frozenset({"pi", "e"})


def _joined(items: str, op: str) -> str:
    values = re.findall(_NUM, items)
    return "(" + f" {op} ".join(values) + ")"


def _average(m: re.Match[str]) -> str:
    values = re.findall(_NUM, m.group(1))
    return f"(({' + '.join(values)}) / {len(values)})"


# Applied in order to lower-cased text whose numbers are digits; each turns a phrase into symbols.
_REWRITES: Final[tuple[tuple[re.Pattern[str], str | object], ...]] = (
    (re.compile(r"(?<=\d),(?=\d{3}\b)"), ""),
    (re.compile(r"[$€£¥]"), ""),
    (re.compile(r"(\d)(?:st|nd|rd|th)\b"), r"\1"),
    (re.compile(r"\b(?:per\s*cent|percent|pct)\b"), "%"),
    (re.compile(r"%\s*(?:tip|discount|tax)?\s*(?:on|for)\b"), "% of"),
    (re.compile(r"%\s*discount\s+(?:off|on)\b"), "% off"),
    # A price, then its discount with nothing after it: "costs 250 dollars and is 20% off" is
    # 20% off 250 (a few words may come between, none of them a number).
    (
        re.compile(
            rf"(?<![\d.])({_NUM})((?:\s+[a-z']+){{0,5}}?)\s+({_NUM})\s*%\s*(?:discount|off)\b(?!\s*(?:of\s+)?[\d(])"
        ),
        r"\3% off \1",
    ),
    (re.compile(rf"\b(?:the\s+)?(?:sum|total)\s+of\s+({_LIST})"), lambda m: _joined(m.group(1), "+")),
    (re.compile(rf"\b(?:the\s+)?product\s+of\s+({_LIST})"), lambda m: _joined(m.group(1), "*")),
    (re.compile(rf"\b(?:the\s+)?(?:average|mean)\s+of\s+({_LIST})"), _average),
    (
        re.compile(rf"\b(?:the\s+)?difference\s+(?:between|of)\s+({_NUM})\s+and\s+({_NUM})"),
        r"(\1 - \2)",
    ),
    (re.compile(rf"\badd\s+({_NUM})\s+(?:and|to|plus)\s+({_NUM})"), r"\1 + \2"),
    (re.compile(rf"\bsubtract\s+({_NUM})\s+from\s+({_NUM})"), r"\2 - \1"),
    (re.compile(rf"\btake\s+({_NUM})\s+(?:away\s+)?from\s+({_NUM})"), r"\2 - \1"),
    (re.compile(rf"\bmultiply\s+({_NUM})\s+(?:by|and|with|times)\s+({_NUM})"), r"\1 * \2"),
    (re.compile(rf"\bdivide\s+({_NUM})\s+(?:by|over)\s+({_NUM})"), r"\1 / \2"),
    (
        re.compile(rf"\b(?:the\s+)?remainder\s+(?:of|when)\s+({_NUM})\s+(?:is\s+)?divided\s+by\s+({_NUM})"),
        r"\1 % \2",
    ),
    (re.compile(r"\b(?:a\s+)?half\s+(?:of\s+)?(?=[\d(])"), "0.5 * "),
    (re.compile(r"\b(?:a\s+)?third\s+of\s+(?=[\d(])"), "1/3 * "),
    (re.compile(r"\b(?:a\s+)?quarter\s+of\s+(?=[\d(])"), "0.25 * "),
    (re.compile(r"\b(?:double|twice)\s+(?:of\s+)?(?=[\d(])"), "2 * "),
    (re.compile(r"\btriple\s+(?=[\d(])"), "3 * "),
    (re.compile(r"\b(?:the\s+)?cube\s*root\s+(?:of\s+)?"), " cbrt "),
    (re.compile(r"\b(?:the\s+)?(?:square\s*root|sqrt|root)\s+(?:of\s+)?"), " sqrt "),
    (re.compile(r"\b(?:the\s+)?absolute\s+(?:value\s+)?(?:of\s+)?|\babs\s+(?:of\s+)?"), " abs "),
    (re.compile(r"\b(?:the\s+)?factorial\s+of\s+"), " factorial "),
    (re.compile(r"\bround(?:ed)?\s+(?:off\s+|up\s+|down\s+)?(?:of\s+)?(?=[\d(-])"), " round "),
    (re.compile(r"\bsquared\b"), " ^ 2 "),
    (re.compile(r"\bcubed\b"), " ^ 3 "),
    (
        re.compile(
            r"\b(?:raised\s+)?to\s+the\s+power\s+of\b|\braised\s+to(?:\s+the)?\b|\bto\s+the\b|\bpower\s+of\b"
        ),
        " ^ ",
    ),
    (re.compile(r"\bpower\b"), " "),
    (re.compile(r"(?<=[\d)])\s*(?:x|\u00d7)\s*(?=[\d(-])"), " * "),
    (re.compile(r"\b(?:multiplied|multiply|times)\s+by\b|\btimes\b|\bmultiplied\b"), " * "),
    (re.compile(r"\b(?:divided|divide)\s+(?:by|into)\b|\bover\b|\u00f7"), " / "),
    (re.compile(r"\b(?:plus|added\s+to|and)\b"), " + "),
    (re.compile(r"\b(?:minus|less|take\s+away|subtract)\b"), " - "),
    (re.compile(r"\b(?:mod|modulo|modulus)\b"), " % "),
    (re.compile(r"\*\*"), " ^ "),
    (re.compile(r"[\u2212\u2013]"), "-"),
)
_TOKEN = re.compile(r"\d+(?:\.\d+)?|\.\d+|[-+*/^%()!]|[a-z]+")
_BINARY: Final = frozenset({"+", "-", "*", "/", "^"})


def _rewrite(text: str) -> str:
    for pattern, replacement in _REWRITES:
        if callable(replacement):
            text = pattern.sub(replacement, text)
        else:
            text = pattern.sub(str(replacement), text)
    return text


def _keep(tokens: list[str]) -> list[str]:
    """Drop the words around the arithmetic ("what is", "please"), keeping operators and names."""
    kept: list[str] = []
    for i, tok in enumerate(tokens):
        if tok.isalpha() and tok not in _FUNCTIONS and tok not in _CONSTANTS:
            # "of" / "off" matter only right after a percentage ("15% of 80").
            if (tok in ("of", "off") and kept and kept[-1] == "%") or (tok == "factorial" and i > 0):
                kept.append(tok)
            continue
        kept.append(tok)
    return kept


def _operand_end(tokens: list[str], start: int) -> int:
    """Index after the operand beginning at ``start`` (a number, a signed number or a group)."""
    i = start
    while i < len(tokens) and tokens[i] in ("-", "+"):
        i += 1
    if i < len(tokens) and tokens[i] in _FUNCTIONS:
        return _operand_end(tokens, i + 1)
    if i < len(tokens) and tokens[i] == "(":
        depth = 0
        for j in range(i, len(tokens)):
            depth += {"(": 1, ")": -1}.get(tokens[j], 0)
            if depth == 0:
                return j + 1
        return len(tokens)
    if i < len(tokens):
        return i + 1
    return start


def _apply_functions(tokens: list[str]) -> list[str]:
    """Prefix words take the next operand as argument; "10 factorial" becomes factorial(10)."""
    out: list[str] = []
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        if tok in _FUNCTIONS and not (i + 1 < len(tokens) and tokens[i + 1] == "(" and tok != "cbrt"):
            if tok == "factorial" and out and (out[-1].replace(".", "").isdigit() or out[-1] == ")"):
                # postfix: wrap the operand just written
                start = len(out) - 1
                if out[-1] == ")":
                    depth = 0
                    for j in range(len(out) - 1, -1, -1):
                        depth += {")": 1, "(": -1}.get(out[j], 0)
                        if depth == 0:
                            start = j
                            break
                out[start:] = ["factorial", "(", *out[start:], ")"]
                i += 1
                continue
            end = _operand_end(tokens, i + 1)
            inner = _apply_functions(tokens[i + 1 : end])
            if not inner:
                i += 1
                continue
            if inner[0] == "(" and inner[-1] == ")":
                inner = inner[1:-1]
            if tok == "cbrt":
                out += ["(", *inner, ")", "^", "(", "1", "/", "3", ")"]
            else:
                out += [tok, "(", *inner, ")"]
            i = end
            continue
        out.append(tok)
        i += 1
    return out


def _format(tokens: list[str]) -> str:
    parts: list[str] = []
    prev = ""
    for tok in tokens:
        if tok == "mod":
            parts.append(" % ")
        elif tok in ("-", "+") and (not prev or prev in _BINARY or prev in ("(", "of", "off", "mod")):
            parts.append(tok)  # unary sign, written against its operand
        elif tok in _BINARY or tok in ("of", "off"):
            # A percentage sign sticks to its number ("15%"); "mod" marks the modulo operator.
            parts.append("%" if tok == "%" else f" {tok} ")
        else:
            parts.append(tok)
        prev = tok
    text = "".join(parts)
    return re.sub(r"\s+", " ", text).replace("( ", "(").replace(" )", ")").strip()


def _percent_is_modulo(tokens: list[str], i: int) -> bool:
    nxt = tokens[i + 1] if i + 1 < len(tokens) else ""
    return bool(nxt) and (nxt[0].isdigit() or nxt in ("(", "-") or nxt in _FUNCTIONS)


def normalize_expression(text: str) -> str | None:
    """The arithmetic in ``text`` in calculator syntax, or None when there is none."""
    rewritten = _rewrite(normalize_numbers(text).lower())
    tokens = _keep(_TOKEN.findall(rewritten))
    # Strip operators left dangling by dropped words ("what is + 4" never happens, "= ?" does).
    while tokens and tokens[-1] in _BINARY:
        tokens.pop()
    while tokens and tokens[0] in ("*", "/", "^", "%", "+"):
        tokens.pop(0)
    if not any(t[0].isdigit() or t in _CONSTANTS for t in tokens):
        return None
    tokens = _apply_functions(tokens)
    depth = 0
    balanced: list[str] = []
    for tok in tokens:
        if tok == ")" and depth == 0:
            continue
        depth += {"(": 1, ")": -1}.get(tok, 0)
        balanced.append(tok)
    balanced += [")"] * depth
    # A "%" followed by an operand is modulo; otherwise it is a percentage of what precedes it.
    marked = ["mod" if t == "%" and _percent_is_modulo(balanced, i) else t for i, t in enumerate(balanced)]
    return _format(marked) or None
