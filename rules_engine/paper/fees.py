"""Maker/taker fee rates per pair: the first (lowest-volume) tier of Kraken's schedule."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from rules_engine.paper.assets import asset_pairs_snapshot

_HUNDRED = Decimal(100)


@dataclass(frozen=True)
class FeeRate:
    """Fractions of the trade's cost (`0.0025` is 0.25 %)."""

    maker: Decimal
    taker: Decimal


DEFAULT_RATE = FeeRate(maker=Decimal("0.0025"), taker=Decimal("0.004"))


class FeeSchedule:
    """Fee rates by pair altname, with a default for pairs it does not list."""

    def __init__(self, rates: Mapping[str, FeeRate], default: FeeRate = DEFAULT_RATE):
        self._rates = {k.upper(): v for k, v in rates.items()}
        self._raw: dict[str, Mapping[str, Any]] = {}
        self.default = default

    @classmethod
    def from_asset_pairs(cls, result: Mapping[str, Any]) -> FeeSchedule:
        """First tier of `fees` (taker) and `fees_maker` from an AssetPairs `result`
        (read per pair when first asked)."""
        schedule = cls({})
        schedule._raw = {raw["altname"].upper(): raw for raw in result.values()}
        return schedule

    @staticmethod
    def _rate(raw: Mapping[str, Any]) -> FeeRate:
        taker = raw.get("fees") or [[0, DEFAULT_RATE.taker * _HUNDRED]]
        maker = raw.get("fees_maker") or taker
        return FeeRate(maker=Decimal(str(maker[0][1])) / _HUNDRED, taker=Decimal(str(taker[0][1])) / _HUNDRED)

    @classmethod
    def default_schedule(cls) -> FeeSchedule:
        """From the AssetPairs snapshot shipped with the package."""
        return cls.from_asset_pairs(asset_pairs_snapshot())

    @classmethod
    def flat(cls, maker: Decimal | str, taker: Decimal | str) -> FeeSchedule:
        """The same rates (fractions) for every pair."""
        return cls({}, FeeRate(Decimal(str(maker)), Decimal(str(taker))))

    def for_pair(self, altname: str) -> FeeRate:
        key = altname.upper()
        rate = self._rates.get(key)
        if rate is None:
            raw = self._raw.get(key)
            if raw is None:
                return self.default
            rate = self._rates[key] = self._rate(raw)
        return rate
