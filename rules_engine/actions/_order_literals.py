"""Load-time checks of the numbers a `place_order` action writes literally, against the pair's
entry in Kraken's AssetPairs: Kraken refuses a volume with more decimals than the pair's
`lot_decimals` (`EGeneral:Invalid arguments:volume`) and a price that is not a multiple of its
`tick_size` (`EOrder:Tick size check failed`), so such an order could never be placed. A volume
below the pair's `ordermin` is a warning (`below-ordermin`): Kraken revises its minimums, and the
rule is otherwise sound. Computed (`=expression`) and relative (`"+50"`) values are checked by
Kraken when the order is sent.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal, InvalidOperation, localcontext
from typing import Any

from rules_engine.core.decimals import plain
from rules_engine.pairs import PairInfo
from rules_engine.rules.context import BuildContext
from rules_engine.rules.yaml_source import JsonPath


def check_literals(ctx: BuildContext, path: JsonPath, raw: Mapping[str, Any], pair: PairInfo) -> None:
    """Report the literal volumes and prices of the place_order at `path` that Kraken would refuse."""
    viqc = "viqc" in (raw.get("oflags") or ())
    for key in ("volume", "displayvol"):
        amount = _literal(raw.get(key))
        if amount is None or viqc:  # with viqc the volume is in the quote currency
            continue
        lot = Decimal(1).scaleb(-pair.lot_decimals)
        if not _multiple(amount, lot):
            most = f"{pair.lot_decimals} decimals, the most Kraken takes for {pair.altname}"
            down = _down_to(amount, lot)
            smallest = f"Kraken's smallest {pair.altname} order is {plain(pair.ordermin)}"
            hint = f"write {plain(down)}" if down > 0 else smallest
            ctx.report(path + (key,), f"{key} {plain(amount)} has more than {most}", hint=hint,
                       code="too-many-decimals")
        elif key == "volume" and 0 < amount < pair.ordermin:
            ctx.report(path + (key,),
                       f"volume {plain(amount)} is below Kraken's minimum order of {plain(pair.ordermin)} for "
                       f"{pair.altname}",
                       hint=f"Kraken refuses smaller orders: write at least {plain(pair.ordermin)}",
                       code="below-ordermin", severity="warning")
    tick = pair.tick_size if pair.tick_size > 0 else Decimal(1).scaleb(-pair.pair_decimals)
    close = raw.get("close")
    prices: list[tuple[JsonPath, Any]] = [((key,), raw.get(key)) for key in ("price", "price2")]
    if isinstance(close, Mapping):
        prices += [(("close", key), close.get(key)) for key in ("price", "price2")]
    for where, written in prices:
        price = _literal(written)
        if price is not None and price > 0 and not _multiple(price, tick):
            down = _down_to(price, tick)
            ctx.report(path + where,
                       f"price {plain(price)} is not a multiple of {pair.altname}'s tick size {plain(tick)}; Kraken "
                       "refuses it", hint=f"write {plain(down if down > 0 else tick)}", code="too-many-decimals")


def _literal(value: Any) -> Decimal | None:
    """The number written literally (a number or a quoted decimal), else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, Decimal)):
        return Decimal(value)
    if isinstance(value, str) and value.strip().replace(".", "", 1).isdigit():
        return Decimal(value.strip())
    return None


def _multiple(value: Decimal, step: Decimal) -> bool:
    with localcontext() as exact:
        exact.prec = 2100  # a literal has at most 100 digits and an exponent within ±1000
        try:
            return value % step == 0
        except InvalidOperation:
            return True  # no number an order could carry; Kraken's answer will say so


def _down_to(value: Decimal, step: Decimal) -> Decimal:
    """`value` rounded down to a multiple of `step` (70000.123456 by 0.1: 70000.1)."""
    with localcontext() as exact:
        exact.prec = 2100
        return (value // step) * step
