"""A safe arithmetic evaluator for the calculator: a tokenizer and a precedence-climbing parser.

Nothing is ever handed to ``eval``. Arithmetic is exact (fractions) while it can be, so
``0.1 + 0.2`` is ``0.3``; square roots of non-squares and fractional powers fall back to floats.

The cost of an expression is bounded, whatever it says (docs/tools.md, "Bounded cost"):

- Size. No exact value has a numerator or denominator longer than ``MAX_EXACT_BITS``. A value that
  would be longer is rounded to ``APPROXIMATE_DIGITS`` significant digits, and a power whose exact
  value would be longer is computed that way from the start: its length is known from its
  operands before any work (``|n| * bits`` for ``(p/q)^n``), so ``1.00000000000000000001^1000000000``
  costs a few dozen multiplications of 60-digit decimals, not twenty billion digits.
- Magnitude. A result beyond a double's range is refused (``OVERFLOW``); one nearer zero than
  ``1e-400`` is zero.
- Nesting. Parentheses, function calls, signs and exponents nest at most ``MAX_DEPTH`` deep.

Grammar, loosest first::

    sum      := product (("+" | "-") product)*        a + b% means a * (1 + b/100)
    product  := unary (("*" | "/" | "%") unary)*       "%" between two operands is modulo
    unary    := ("-" | "+") unary | power
    power    := postfix ("^" unary)?                   right associative; -2^2 is -4
    postfix  := primary ("!" | "%" | "% of" unary | "% off" unary)*
    primary  := number | "(" sum ")" | name "(" sum ("," sum)* ")" | "pi" | "e"
"""

from __future__ import annotations

import contextlib
import decimal
import math
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction

from hivemesh.mesh.errors import InvalidArgument

Number = Fraction | float

FIELD = "arguments.expression"
# Results beyond what a double can hold are reported, not rounded to infinity.
LIMIT = Fraction(int(1.7976931348623157e308))
# Results nearer zero than this are zero (a double holds nothing below 5e-324 either).
TINY = Fraction(1, 10**400)
# Longest numerator or denominator of an exact value, in bits (about 1233 decimal digits).
MAX_EXACT_BITS = 4096
# Significant digits kept of a value too long to keep exactly.
APPROXIMATE_DIGITS = 50
# Deepest nesting of parentheses, function calls, signs and exponents.
MAX_DEPTH = 64
_MAX_FACTORIAL = 170
_MAX_ROUND_DIGITS = 15
# Decimal exponents of literals beyond these are out of range before they are converted: turning
# "1e-999999999" into a fraction would build a billion-digit denominator.
_LARGEST_EXPONENT = 309
_SMALLEST_EXPONENT = -401

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
        self._depth = 0

    @contextlib.contextmanager
    def _nested(self, token: _Token) -> Iterator[None]:
        """One level deeper; each level is a few frames of this recursive parser."""
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise _error(
                    f"the expression nests deeper than {MAX_DEPTH} levels (at position {token.at + 1})",
                    "EXPRESSION_TOO_DEEP",
                )
            yield
        finally:
            self._depth -= 1

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
        sign = self._peek()
        if self._accept("-"):
            with self._nested(sign):
                value, percent = self.unary()
            return _mul(Fraction(-1), value), percent
        if self._accept("+"):
            with self._nested(sign):
                return self.unary()
        return self.power()

    def power(self) -> tuple[Number, bool]:
        base, percent = self.postfix()
        caret = self._peek()
        if self._accept("^"):
            with self._nested(caret):
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
                    with self._nested(self._peek()):
                        whole, _ = self.unary()
                    value, percent = _mul(share, whole), False
                elif self._accept("off"):
                    with self._nested(self._peek()):
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
            with self._nested(token):
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
            with self._nested(opening):
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
    written = Decimal(text)
    if written.is_zero():
        return Fraction(0)
    if written.adjusted() > _LARGEST_EXPONENT:
        raise _error("the result is too large", "OVERFLOW")
    if written.adjusted() < _SMALLEST_EXPONENT:
        return Fraction(0)
    return _checked(Fraction(written))


def _checked(value: Number) -> Number:
    """``value`` within the bounds: refused beyond a double's range, zero when tinier than TINY,
    rounded when too long to keep exactly."""
    if isinstance(value, float):
        if math.isnan(value):
            raise _error("the result is not a real number", "MATH_DOMAIN")
        if math.isinf(value):
            raise _error("the result is too large", "OVERFLOW")
        return value
    if abs(value) > LIMIT:
        raise _error("the result is too large", "OVERFLOW")
    if abs(value) < TINY:
        return Fraction(0)
    if value.numerator.bit_length() > MAX_EXACT_BITS or value.denominator.bit_length() > MAX_EXACT_BITS:
        return _approximate(value)
    return value


def _approximate(value: Fraction) -> Fraction:
    """``value`` to APPROXIMATE_DIGITS significant digits (it lies between TINY and LIMIT, so the
    result is a few hundred digits long at most)."""
    with decimal.localcontext(decimal.Context(prec=APPROXIMATE_DIGITS)):
        return Fraction(Decimal(value.numerator) / Decimal(value.denominator))


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
        n = exponent.numerator
        if base in (0, 1, -1):
            return base**n
        # The exact power's length follows from its operands: (p/q)^n has about |n| times their
        # bits. Too long to keep, it is computed in decimal to the digits that will be kept.
        if abs(n) * max(base.numerator.bit_length(), base.denominator.bit_length()) > MAX_EXACT_BITS:
            return _decimal_power(base, n)
        return _checked(base**n)
    if base < 0:
        raise _error("a negative number to a fractional power is not a real number", "MATH_DOMAIN")
    try:
        return _checked(float(base) ** float(exponent))
    except OverflowError:
        raise _error("the result is too large", "OVERFLOW") from None


def _decimal_power(base: Fraction, n: int) -> Number:
    """``base ** n`` to APPROXIMATE_DIGITS significant digits: O(log n) multiplications of numbers
    a few dozen digits longer (the error of rounding the base grows n times, so n's own digits are
    added to the precision)."""
    context = decimal.Context(
        prec=APPROXIMATE_DIGITS + len(str(abs(n))) + 5,
        Emax=10**6,
        Emin=-(10**6),
        traps=[decimal.Overflow, decimal.InvalidOperation, decimal.DivisionByZero],
    )
    try:
        with decimal.localcontext(context):
            power = (Decimal(base.numerator) / Decimal(base.denominator)) ** n
    except decimal.Overflow:
        raise _error("the result is too large", "OVERFLOW") from None
    if power.is_zero() or power.adjusted() < _SMALLEST_EXPONENT:
        return Fraction(0)
    if power.adjusted() > _LARGEST_EXPONENT:
        raise _error("the result is too large", "OVERFLOW")
    return _checked(_approximate(Fraction(power)))


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
    # Enough digits for the largest value (309) and the most places (15).
    with decimal.localcontext(decimal.Context(prec=400)):
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
