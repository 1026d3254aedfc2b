"""A safe arithmetic evaluator for the calculator: a tokenizer and a precedence-climbing parser.

Nothing is ever handed to ``eval``. Arithmetic is exact (fractions) while it can be, so
``0.1 + 0.2`` is ``0.3``; square roots of non-squares and fractional powers fall back to floats.

Grammar, loosest first::

    sum      := product (("+" | "-") product)*        a + b% means a * (1 + b/100)
    product  := unary (("*" | "/" | "%") unary)*       "%" between two operands is modulo
    unary    := ("-" | "+") unary | power
    power    := postfix ("^" unary)?                   right associative; -2^2 is -4
    postfix  := primary ("!" | "%" | "% of" unary | "% off" unary)*
    primary  := number | "(" sum ")" | name "(" sum ("," sum)* ")" | "pi" | "e"
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction

from hivemesh.mesh.errors import InvalidArgument

Number = Fraction | float

FIELD = "arguments.expression"
# Results beyond what a double can hold are reported, not rounded to infinity.
LIMIT = Fraction(int(1.7976931348623157e308))
_MAX_FACTORIAL = 170
_MAX_ROUND_DIGITS = 15

_TOKEN = re.compile(
    r"\s*(?:(?P<number>(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?)|(?P<name>[A-Za-z]+)|(?P<op>\*\*|[-+*/%^()!,\u00d7\u00f7\u2212]))"
)
# Typeset operators people paste: multiplication sign, division sign, minus sign.
_SYNONYMS = {"**": "^", "\u00d7": "*", "\u00f7": "/", "\u2212": "-"}


@dataclass(frozen=True)
class _Token:
    kind: str  # "number", "name", "op" or "end"
    text: str
    at: int


def _error(message: str, reason: str) -> InvalidArgument:
    return InvalidArgument.field(FIELD, message, reason=reason)


def tokenize(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    at = 0
    while at < len(text):
        if text[at:].strip() == "":
            break
        match = _TOKEN.match(text, at)
        if match is None:
            position = at + len(text[at:]) - len(text[at:].lstrip())
            raise _error(f"unexpected {text[position]!r} at position {position + 1}", "INVALID_EXPRESSION")
        kind = match.lastgroup or "op"
        value = match.group(kind)
        tokens.append(_Token(kind, _SYNONYMS.get(value, value.lower()), match.start(kind)))
        at = match.end()
    tokens.append(_Token("end", "", len(text)))
    return tokens


def evaluate(text: str) -> Number:
    """The value of ``text``; raises InvalidArgument (INVALID_EXPRESSION, DIVISION_BY_ZERO, OVERFLOW,
    MATH_DOMAIN) naming ``arguments.expression``."""
    parser = _Parser(tokenize(text))
    value, _ = parser.sum()
    parser.expect_end()
    return value


class _Parser:
    def __init__(self, tokens: list[_Token]) -> None:
        self._tokens = tokens
        self._at = 0

    def _peek(self, ahead: int = 0) -> _Token:
        return self._tokens[min(self._at + ahead, len(self._tokens) - 1)]

    def _next(self) -> _Token:
        token = self._peek()
        self._at += 1
        return token

    def _accept(self, text: str) -> bool:
        if self._peek().kind != "end" and self._peek().text == text:
            self._at += 1
            return True
        return False

    def expect_end(self) -> None:
        token = self._peek()
        if token.kind != "end":
            raise _error(f"unexpected {token.text!r} at position {token.at + 1}", "INVALID_EXPRESSION")

    def _starts_operand(self, token: _Token) -> bool:
        return (token.kind in ("number", "name") and token.text not in ("of", "off")) or token.text == "("

    # Each level returns (value, is_percentage) so "200 + 10%" can mean "200 plus 10% of it".
    def sum(self) -> tuple[Number, bool]:
        value, percent = self.product()
        while self._peek().text in ("+", "-") and self._peek().kind == "op":
            op = self._next().text
            right, right_percent = self.product()
            sign = 1 if op == "+" else -1
            value = (
                _mul(value, _add(Fraction(1), _mul(Fraction(sign), right)))
                if right_percent
                else (_add(value, _mul(Fraction(sign), right)))
            )
            percent = False
        return value, percent

    def product(self) -> tuple[Number, bool]:
        value, percent = self.unary()
        while self._peek().kind == "op" and self._peek().text in ("*", "/", "%"):
            op = self._next().text
            right, _ = self.unary()
            value = {"*": _mul, "/": _div, "%": _mod}[op](value, right)
            percent = False
        return value, percent

    def unary(self) -> tuple[Number, bool]:
        if self._accept("-"):
            value, percent = self.unary()
            return _mul(Fraction(-1), value), percent
        if self._accept("+"):
            return self.unary()
        return self.power()

    def power(self) -> tuple[Number, bool]:
        base, percent = self.postfix()
        if self._accept("^"):
            exponent, _ = self.unary()
            return _pow(base, exponent), False
        return base, percent

    def postfix(self) -> tuple[Number, bool]:
        value = self.primary()
        percent = False
        while True:
            if self._accept("!"):
                value, percent = _factorial(value), False
            elif self._peek().text == "%" and not self._starts_operand(self._peek(1)):
                self._next()
                share = _div(value, Fraction(100))
                if self._accept("of"):
                    whole, _ = self.unary()
                    value, percent = _mul(share, whole), False
                elif self._accept("off"):
                    whole, _ = self.unary()
                    value, percent = _mul(whole, _add(Fraction(1), _mul(Fraction(-1), share))), False
                else:
                    value, percent = share, True
            else:
                return value, percent

    def primary(self) -> Number:
        token = self._next()
        if token.kind == "number":
            return _number(token.text)
        if token.text == "(":
            value, _ = self.sum()
            self._close(token)
            return value
        if token.kind == "name":
            if token.text in _CONSTANTS:
                return _CONSTANTS[token.text]
            function = _FUNCTIONS.get(token.text)
            if function is None:
                raise _error(f"unknown name {token.text!r} at position {token.at + 1}", "INVALID_EXPRESSION")
            opening = self._peek()
            if not self._accept("("):
                raise _error(f"{token.text} needs parentheses, e.g. {token.text}(16)", "INVALID_EXPRESSION")
            args = [self.sum()[0]]
            while self._accept(","):
                args.append(self.sum()[0])
            self._close(opening)
            return function(args)
        if token.kind == "end":
            raise _error("the expression ends too early", "INVALID_EXPRESSION")
        raise _error(f"unexpected {token.text!r} at position {token.at + 1}", "INVALID_EXPRESSION")

    def _close(self, opening: _Token) -> None:
        if not self._accept(")"):
            raise _error(f"the parenthesis at position {opening.at + 1} is not closed", "INVALID_EXPRESSION")


def _number(text: str) -> Number:
    value = Fraction(Decimal(text))
    return _checked(value)


def _checked(value: Number) -> Number:
    if isinstance(value, float):
        if math.isnan(value):
            raise _error("the result is not a real number", "MATH_DOMAIN")
        if math.isinf(value):
            raise _error("the result is too large", "OVERFLOW")
        return value
    if abs(value) > LIMIT:
        raise _error("the result is too large", "OVERFLOW")
    return value


def _add(a: Number, b: Number) -> Number:
    return _checked(a + b)


def _mul(a: Number, b: Number) -> Number:
    return _checked(a * b)


def _div(a: Number, b: Number) -> Number:
    if b == 0:
        raise _error("division by zero", "DIVISION_BY_ZERO")
    return _checked(a / b)


def _mod(a: Number, b: Number) -> Number:
    if b == 0:
        raise _error("modulo by zero", "DIVISION_BY_ZERO")
    return _checked(a % b)


def _pow(base: Number, exponent: Number) -> Number:
    if base == 0 and exponent < 0:
        raise _error("division by zero (zero to a negative power)", "DIVISION_BY_ZERO")
    if isinstance(base, Fraction) and isinstance(exponent, Fraction) and exponent.denominator == 1:
        # Estimate the size first: 10^10^9 must fail fast instead of computing a billion digits.
        if base not in (0, 1, -1):
            magnitude = abs(math.log10(abs(base.numerator)) - math.log10(base.denominator))
            if magnitude * abs(exponent.numerator) > 400:
                raise _error("the result is too large", "OVERFLOW")
        return _checked(base**exponent.numerator)
    if base < 0:
        raise _error("a negative number to a fractional power is not a real number", "MATH_DOMAIN")
    try:
        return _checked(float(base) ** float(exponent))
    except OverflowError:
        raise _error("the result is too large", "OVERFLOW") from None


def _factorial(value: Number) -> Number:
    if (
        value < 0
        or (isinstance(value, Fraction) and value.denominator != 1)
        or (isinstance(value, float) and not value.is_integer())
    ):
        raise _error("factorial needs a whole number that is not negative", "MATH_DOMAIN")
    if value > _MAX_FACTORIAL:
        raise _error("the result is too large", "OVERFLOW")
    return Fraction(math.factorial(int(value)))


def _sqrt(args: list[Number]) -> Number:
    (value,) = _arity("sqrt", args, 1)
    if value < 0:
        raise _error("the square root of a negative number is not a real number", "MATH_DOMAIN")
    if isinstance(value, Fraction):
        num, den = math.isqrt(value.numerator), math.isqrt(value.denominator)
        if num * num == value.numerator and den * den == value.denominator:
            return Fraction(num, den)
    return math.sqrt(value)


def _round(args: list[Number]) -> Number:
    value, *rest = _arity("round", args, 1, 2)
    digits = rest[0] if rest else Fraction(0)
    if digits != int(digits) or not 0 <= digits <= _MAX_ROUND_DIGITS:
        raise _error(f"round takes 0 to {_MAX_ROUND_DIGITS} decimal places", "INVALID_EXPRESSION")
    exact = (
        Decimal(value.numerator) / Decimal(value.denominator)
        if isinstance(value, Fraction)
        else (Decimal(repr(value)))
    )
    # Half away from zero, as people round (Python's round() rounds half to even).
    return Fraction(exact.quantize(Decimal(1).scaleb(-int(digits)), rounding=ROUND_HALF_UP))


def _abs(args: list[Number]) -> Number:
    (value,) = _arity("abs", args, 1)
    return -value if value < 0 else value


def _factorial_call(args: list[Number]) -> Number:
    (value,) = _arity("factorial", args, 1)
    return _factorial(value)


def _arity(name: str, args: list[Number], least: int, most: int | None = None) -> list[Number]:
    most = least if most is None else most
    if not least <= len(args) <= most:
        wanted = str(least) if least == most else f"{least} or {most}"
        raise _error(f"{name} takes {wanted} argument(s), got {len(args)}", "INVALID_EXPRESSION")
    return args


_FUNCTIONS: dict[str, Callable[[list[Number]], Number]] = {
    "sqrt": _sqrt,
    "round": _round,
    "abs": _abs,
    "factorial": _factorial_call,
}
_CONSTANTS: dict[str, Number] = {"pi": math.pi, "e": math.e}


def format_number(value: Number, significant: int = 10) -> str:
    """Integers exactly (no ".0"); other values to ``significant`` digits, trailing zeros dropped;
    scientific notation below 1e-6 and from 1e21 up."""
    if isinstance(value, Fraction) and value.denominator == 1 and abs(value) < 10**21:
        return str(value.numerator)
    x = float(value)
    if x == 0:
        return "0"
    if not 1e-6 <= abs(x) < 1e21:
        return f"{x:.{significant}g}"
    decimals = significant - 1 - math.floor(math.log10(abs(x)))
    if decimals <= 0:
        return str(round(x))
    text = f"{x:.{decimals}f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text
