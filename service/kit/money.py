"""Money: Decimal in code, integer minor units in the database, one rounding rule."""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from functools import lru_cache

from babel.numbers import get_currency_precision, list_currencies

# Keeps every amount, in minor units of any currency, far inside a BIGINT.
MAX_AMOUNT = Decimal(10) ** 12
# Longer than any amount, rate or percent a caller means; a million digits costs real CPU.
MAX_DECIMAL_TEXT = 64
# Digits before or after the point: past these, decimal arithmetic overflows its context
# (1e1000000 parses, but abs() or quantize() of it raise decimal.Overflow).
MAX_DECIMAL_PLACES = 30
_ONE = Decimal(1)


class MoneyError(ValueError):
    """An amount or currency that cannot be accepted."""


@lru_cache(maxsize=512)
def _known_currencies() -> frozenset[str]:
    return frozenset(list_currencies())


def is_currency(code: str) -> bool:
    """True for an upper-case ISO 4217 code that babel knows."""
    return len(code) == 3 and code.isupper() and code in _known_currencies()


@lru_cache(maxsize=512)
def minor_units(currency: str) -> int:
    """Digits after the decimal point for the currency (JPY 0, USD 2, KWD 3)."""
    if not is_currency(currency):
        raise MoneyError(f"unknown currency {currency!r}")
    return int(get_currency_precision(currency))


@lru_cache(maxsize=512)
def _quantum(currency: str) -> Decimal:
    return Decimal(1).scaleb(-minor_units(currency))


def round_money(amount: Decimal, currency: str) -> Decimal:
    """The one rounding rule: half-even to the currency's minor unit."""
    # The rounding given by position: as a keyword, CPython's argument parsing costs
    # about as much again as the quantize.
    return amount.quantize(_quantum(currency), ROUND_HALF_EVEN)


def round_to_int(value: Decimal) -> int:
    """Half-even to a whole number: for proportions of amounts already in minor units."""
    return int(value.quantize(_ONE, ROUND_HALF_EVEN))


def to_minor(amount: Decimal, currency: str) -> int:
    """Exact conversion to integer minor units; refuses sub-minor digits."""
    scaled = amount.scaleb(minor_units(currency))
    if scaled != scaled.to_integral_value():
        raise MoneyError(f"{amount} has more decimals than {currency} allows")
    return int(scaled)


def from_minor(minor: int, currency: str) -> Decimal:
    """Integer minor units to a Decimal with the currency's exponent."""
    return Decimal(minor).scaleb(-minor_units(currency)).quantize(_quantum(currency))


def parse_decimal(text: str) -> Decimal:
    """A finite Decimal from text, refusing NaN, infinities, overlong text and exponents
    past what decimal arithmetic can hold."""
    text = text.strip()
    if len(text) > MAX_DECIMAL_TEXT:
        raise MoneyError(f"is longer than {MAX_DECIMAL_TEXT} characters")
    try:
        value = Decimal(text)
    except (InvalidOperation, ValueError) as exc:
        raise MoneyError(f"{text!r} is not a decimal number") from exc
    except ArithmeticError as exc:  # decimal.Overflow, for an exponent such as 1e1000000
        raise MoneyError(f"{text!r} is out of range") from exc
    if not value.is_finite():
        raise MoneyError(f"{text!r} is not a finite number")
    exponent = value.as_tuple().exponent
    if value.adjusted() > MAX_DECIMAL_PLACES or (
        isinstance(exponent, int) and exponent < -MAX_DECIMAL_PLACES
    ):
        raise MoneyError(f"{text!r} is out of range")
    # -0 is 0: it would otherwise be echoed back as "-0.00".
    return value.copy_abs() if value.is_zero() else value


def parse_amount(
    text: str | int | Decimal, currency: str, *, allow_negative: bool = False
) -> Decimal:
    """Parse a decimal string for the currency, refusing floats, NaN and excess digits."""
    if isinstance(text, bool) or isinstance(text, float):
        raise MoneyError("amounts are decimal strings, not floats")
    value = parse_decimal(str(text))
    if value < 0 and not allow_negative:
        raise MoneyError("must not be negative")
    if abs(value) >= MAX_AMOUNT:
        raise MoneyError(f"must be less than {MAX_AMOUNT:,} in absolute value")
    places = minor_units(currency)
    if value != value.quantize(_quantum(currency), ROUND_HALF_EVEN):
        raise MoneyError(f"{currency} allows at most {places} decimal places")
    return round_money(value, currency)


def format_amount(amount: Decimal, currency: str) -> str:
    """The API's string form: fixed decimals for the currency, no exponent."""
    return f"{round_money(amount, currency):f}"


def format_minor(minor: int, currency: str) -> str:
    """Minor units straight to the API's string form, f"{from_minor(minor, currency):f}",
    written from the integer's digits (a sale's answer writes several)."""
    places = minor_units(currency)
    if places == 0:
        return str(minor)
    digits = str(-minor if minor < 0 else minor).rjust(places + 1, "0")
    sign = "-" if minor < 0 else ""
    return f"{sign}{digits[:-places]}.{digits[-places:]}"
