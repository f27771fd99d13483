"""The paper exchange: a pure spot matcher and wallet, shared by the simulator and the
engine's dry-run paper wallet.

No I/O and no clock: every call takes `now` (epoch seconds). The market has one price
per pair (`on_price`); there is no depth, so an order fills in full when the price
reaches it:

- market orders fill at once at the last price (taker fee);
- a limit order that is marketable on arrival fills at the last price (taker), unless
  it is post-only (`oflags=post`), which Kraken cancels instead; otherwise it rests and
  fills at its limit price when the last price reaches it (maker fee);
- stop-loss / take-profit (and their -limit forms) trigger when the last price crosses
  the trigger price (stop-loss: against you, take-profit: in your favour); the plain
  forms then fill at the last price, the -limit forms become a limit order at `price2`;
- trailing-stop(-limit) trigger when the price comes back `trail` from the best price
  seen since placement; iceberg orders behave as limit orders (no hidden volume).

Balances are reserved (`hold_trade`) for open orders: a buy holds quote for
`volume * price * (1 + taker fee)`, a sell holds the base volume. Fees are charged in the
quote currency unless `oflags=fcib` asks for the base currency.

Refusals raise `ExchangeError` with Kraken's own error string.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from rules_engine.pairs import PairInfo, PairRegistry, default_registry
from rules_engine.paper.assets import Assets, asset_decimals, quantize, round_down, round_up
from rules_engine.paper.errors import ExchangeError
from rules_engine.paper.fees import FeeSchedule
from rules_engine.paper.ids import IdSource
from rules_engine.paper.orders import (
    CLOSE_ORDER_TYPES,
    LIMIT_LIKE,
    OFLAGS,
    ORDER_TYPES,
    SUPPORTED_ORDER_TYPES,
    TRAILING,
    TRIGGERED,
    WITH_LIMIT_AFTER_TRIGGER,
    Order,
    OrderRequest,
)

INT32 = 2**31
DEAD_MAN_REASON = "Dead man's switch"
_ZERO = Decimal(0)


@dataclass(frozen=True)
class Fill:
    """One trade of one order (orders fill in full, so one per order)."""

    trade_id: str
    txid: str
    account: str
    pair: str
    side: str
    ordertype: str
    price: Decimal
    volume: Decimal
    cost: Decimal
    fee: Decimal
    fee_asset: str
    maker: bool
    time: float

    def to_json(self) -> dict[str, Any]:
        return {name: (str(v) if isinstance(v, Decimal) else v) for name, v in vars(self).items()}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Fill:
        values = dict(data)
        for key in ("price", "volume", "cost", "fee"):
            values[key] = Decimal(values[key])
        return cls(**values)


def _invalid(field: str) -> ExchangeError:
    return ExchangeError(f"EGeneral:Invalid arguments:{field}")


_HEXDIGITS = frozenset("0123456789abcdefABCDEF")


def valid_cl_ord_id(value: str) -> bool:
    """A long UUID, a 32-hex short UUID, or free ASCII text up to 18 characters."""
    hexdigits = _HEXDIGITS
    if len(value) == 36 and [len(p) for p in value.split("-")] == [8, 4, 4, 4, 12]:
        return set(value.replace("-", "")) <= hexdigits
    if len(value) == 32 and set(value) <= hexdigits:
        return True
    return 0 < len(value) <= 18 and value.isascii() and value.isprintable()


def _decimals(value: Decimal) -> int:
    exponent = value.normalize().as_tuple().exponent
    return -exponent if isinstance(exponent, int) and exponent < 0 else 0


class PaperExchange:
    """Accounts, orders and fills of a simulated Kraken spot market."""

    def __init__(
        self,
        pairs: PairRegistry | None = None,
        fees: FeeSchedule | None = None,
        *,
        seed: int | str = 0,
    ):
        self.pairs = pairs if pairs is not None else default_registry()
        self.fees = fees if fees is not None else FeeSchedule.default_schedule()
        self.assets = Assets(self.pairs)
        self.orders: dict[str, Order] = {}
        self.trades: dict[str, Fill] = {}
        self._open: dict[str, Order] = {}
        self._balances: dict[str, dict[str, Decimal]] = {}
        self._last: dict[str, Decimal] = {}
        self._dead_man: dict[str, float] = {}
        self._ids = IdSource(seed)

    # ------------------------------------------------------------------ wallet

    def set_balance(self, account: str, asset: str, amount: Decimal | str) -> None:
        """Set one balance; `asset` may be any spelling (`XBT`, `BTC`, `XXBT`)."""
        self._balances.setdefault(account, {})[self.assets.resolve(asset)] = Decimal(str(amount))

    def set_balances(self, account: str, balances: Mapping[str, Decimal | str]) -> None:
        for asset, amount in balances.items():
            self.set_balance(account, asset, amount)

    def balances(self, account: str) -> dict[str, Decimal]:
        """Total balances by Kraken asset code (held amounts included)."""
        return dict(self._balances.get(account, {}))

    def accounts(self) -> list[str]:
        """Every account that has a wallet."""
        return list(self._balances)

    def holds(self, account: str) -> dict[str, Decimal]:
        """Amounts reserved by open orders (`hold_trade`), by asset."""
        held: dict[str, Decimal] = {}
        for order in self._open.values():
            if order.account == account and order.hold:
                held[order.hold_asset] = held.get(order.hold_asset, _ZERO) + order.hold
        return held

    def available(self, account: str, asset: str) -> Decimal:
        code = self.assets.get(asset) or asset
        return self._balances.get(account, {}).get(code, _ZERO) - self.holds(account).get(code, _ZERO)

    def _credit(self, account: str, asset: str, amount: Decimal) -> None:
        wallet = self._balances.setdefault(account, {})
        wallet[asset] = wallet.get(asset, _ZERO) + amount

    # ------------------------------------------------------------------ market

    def pair(self, symbol: str) -> PairInfo:
        pair = self.pairs.get(symbol)
        if pair is None:
            raise ExchangeError("EQuery:Unknown asset pair")
        return pair

    def last_price(self, symbol: str) -> Decimal | None:
        pair = self.pairs.get(symbol)
        return None if pair is None else self._last.get(pair.altname)

    @property
    def idle(self) -> bool:
        """No order is open and no dead man's switch is armed: time passing and price moves
        change nothing but the last prices."""
        return not self._open and not self._dead_man

    def quiet_band(self, symbol: str) -> tuple[Decimal | None, Decimal | None] | None:
        """The open interval of prices `symbol` can trade at without triggering or filling any
        open order (None for an open end); None when no such promise holds (no price yet, a
        market or trailing order open). Time-based changes are `next_time()`'s."""
        pair = self.pairs.get(symbol)
        if pair is None or pair.altname not in self._last:
            return None
        low: Decimal | None = None
        high: Decimal | None = None
        for order in self._open.values():
            if order.pair != pair.altname or order.status != "open":
                continue
            if order.ordertype == "market" or order.ordertype in TRAILING:
                return None
            buy = order.side == "buy"
            if order.ordertype in TRIGGERED and not order.triggered:
                price = order.price
                falls = buy != order.ordertype.startswith("stop-loss")  # triggers at or below the price
            else:
                price = order.limit_price()
                falls = buy
            if price is None:
                return None
            if falls and (low is None or price > low):
                low = price
            elif not falls and (high is None or price < high):
                high = price
        return low, high

    def next_time(self) -> float | None:
        """When time alone next changes something (an expiry, a scheduled start, a dead man's
        switch); None: nothing is scheduled."""
        times = list(self._dead_man.values())
        for order in self._open.values():
            if order.expiretm:
                times.append(order.expiretm)
            if order.status == "pending":
                times.append(order.starttm)
        return min(times) if times else None

    def note_price(self, symbol: str, price: Decimal) -> bool:
        """Record the last price of `symbol` without matching anything (for an idle
        exchange, where `on_price` would do no more); False for an unknown pair."""
        pair = self.pairs.get(symbol)
        if pair is None:
            return False
        self._last[pair.altname] = price if type(price) is Decimal else Decimal(price)
        return True

    def on_price(self, symbol: str, price: Decimal, now: float) -> list[Fill]:
        """The market for `symbol` now trades at `price`: trigger and fill what it reaches."""
        pair = self.pair(symbol)
        self._last[pair.altname] = Decimal(price)
        if self.idle:
            return []
        fills: list[Fill] = []
        self._advance(now, fills, [])
        for order in [o for o in self._open.values() if o.pair == pair.altname]:
            self._evaluate(order, now, fills, arriving=False)
        return fills

    def advance(self, now: float) -> list[Order]:
        """Apply time: start scheduled orders, expire old ones, run the dead man's switch.
        Returns the orders whose status changed."""
        changed: list[Order] = []
        self._advance(now, [], changed)
        return changed

    def _advance(self, now: float, fills: list[Fill], changed: list[Order]) -> None:
        for account, trigger in list(self._dead_man.items()):
            if now >= trigger:
                del self._dead_man[account]
                changed.extend(self.cancel_all(account, now, reason=DEAD_MAN_REASON))
        for order in list(self._open.values()):
            if order.expiretm and now >= order.expiretm:
                self._close(order, "expired", None, now)
                changed.append(order)
            elif order.status == "pending" and now >= order.starttm:
                order.status = "open"
                changed.append(order)
                self._evaluate(order, now, fills, arriving=True)

    # ------------------------------------------------------------------ orders

    def open_orders(self, account: str) -> list[Order]:
        return [o for o in self._open.values() if o.account == account]

    def open_orders_of_pair(self, pair: str) -> list[Order]:
        """Every account's open orders in one pair (altname)."""
        return [o for o in self._open.values() if o.pair == pair]

    def closed_orders(self, account: str) -> list[Order]:
        return [o for o in self.orders.values() if o.account == account and not o.is_open]

    def validate(self, account: str, request: OrderRequest, now: float) -> Order:
        """Check an order as AddOrder with `validate=true` does: arguments, minimums, tick
        size and duplicate `cl_ord_id`, but not funds. Nothing is placed."""
        return self._build(account, request, now, txid="")

    def place(self, account: str, request: OrderRequest, now: float) -> tuple[Order, list[Fill]]:
        """Place an order; returns it and any fills it caused at once."""
        self._advance(now, [], [])
        order = self._build(account, request, now, txid="")
        self._reserve(order)
        self._check_funds(order)
        order.txid = self._ids.txid()
        fills: list[Fill] = []
        self._store(order)
        if order.status == "open":
            self._evaluate(order, now, fills, arriving=True)
        return order, fills

    def amend(self, order: Order, request: OrderRequest, now: float) -> list[Fill]:
        """Change an open order in place (Kraken's AmendOrder): volume, prices and display
        volume from `request` (checked by the caller with `validate`). Its hold follows; a
        price that now crosses the market fills at once. When the new hold is not covered,
        raises `EOrder:Insufficient funds` and changes nothing."""
        saved = (order.volume, order.price, order.price2, order.displayvol, order.hold_asset, order.hold)
        order.volume, order.price, order.price2 = request.volume, request.price, request.price2
        order.displayvol = request.displayvol
        self._reserve(order)
        if self.available(order.account, order.hold_asset) < 0:
            order.volume, order.price, order.price2, order.displayvol, order.hold_asset, order.hold = saved
            raise ExchangeError("EOrder:Insufficient funds")
        fills: list[Fill] = []
        if order.status == "open":
            self._evaluate(order, now, fills, arriving=True)
        return fills

    def replace(self, old: Order, request: OrderRequest, now: float) -> Order:
        """Cancel `old` and place `request` in its stead (Kraken's EditOrder); if the new order
        is refused, `old` stays open as it was and the refusal is raised."""
        status = old.status
        self._close(old, "canceled", "Order replaced", now)
        try:
            new, _ = self.place(old.account, request, now)
        except ExchangeError:
            old.status, old.reason, old.closetm = status, None, None
            self._open[old.txid] = old
            self._reserve(old)
            raise
        return new

    def new_trade_id(self) -> str:
        """A fresh `TXXXXX-XXXXX-XXXXXX` identifier (trades, amends)."""
        return self._ids.trade_id()

    def select(
        self,
        account: str,
        *,
        txid: str | None = None,
        userref: int | None = None,
        cl_ord_id: str | None = None,
    ) -> list[Order]:
        """The account's open orders matching a txid, a userref or a cl_ord_id.
        A bare integer given as `txid` is read as a userref, as Kraken's CancelOrder does."""
        if txid is not None and userref is None and txid.lstrip("-").isdigit():
            userref = int(txid)
            txid = None
        return [
            o
            for o in self.open_orders(account)
            if (txid is not None and o.txid == txid)
            or (userref is not None and o.userref == userref)
            or (cl_ord_id is not None and o.cl_ord_id == cl_ord_id)
        ]

    def cancel(
        self,
        account: str,
        now: float,
        *,
        txid: str | None = None,
        userref: int | None = None,
        cl_ord_id: str | None = None,
    ) -> list[Order]:
        """Cancel by txid, userref (all orders carrying it) or cl_ord_id (see `select`)."""
        chosen = self.select(account, txid=txid, userref=userref, cl_ord_id=cl_ord_id)
        if not chosen:
            raise ExchangeError("EOrder:Unknown order")
        for order in chosen:
            self._close(order, "canceled", "User requested", now)
        return chosen

    def cancel_all(self, account: str, now: float, reason: str = "User requested") -> list[Order]:
        chosen = self.open_orders(account)
        for order in chosen:
            self._close(order, "canceled", reason, now)
        return chosen

    def cancel_all_after(self, account: str, timeout: int, now: float) -> float | None:
        """Arm (or with 0 disarm) the dead man's switch; returns the trigger time."""
        if timeout <= 0:
            self._dead_man.pop(account, None)
            return None
        self._dead_man[account] = now + timeout
        return self._dead_man[account]

    def dead_man_trigger(self, account: str) -> float | None:
        return self._dead_man.get(account)

    # ------------------------------------------------------------------ internals

    def _build(self, account: str, req: OrderRequest, now: float, txid: str) -> Order:
        pair = self.pair(req.pair)
        if req.side not in ("buy", "sell"):
            raise _invalid("type")
        if req.ordertype not in ORDER_TYPES or req.ordertype not in SUPPORTED_ORDER_TYPES:
            raise _invalid("ordertype")
        self._check_flags(req)
        self._check_prices(req, pair)
        self._check_times(req, now)
        self._check_refs(account, req)
        viqc = "viqc" in req.oflags
        if req.volume <= 0 or (not viqc and _decimals(req.volume) > pair.lot_decimals):
            raise _invalid("volume")
        if req.ordertype == "iceberg":
            if req.displayvol is None or not req.volume / 15 <= req.displayvol <= req.volume:
                raise _invalid("displayvol")
        elif req.displayvol is not None:
            raise _invalid("displayvol")
        reference = self._reference_price(req, pair)
        base_volume = req.volume / reference if viqc else req.volume
        if base_volume < pair.ordermin:
            raise ExchangeError("EOrder:Order minimum not met")
        if base_volume * reference < pair.costmin:
            raise ExchangeError("EOrder:Cost minimum not met")
        return Order(
            txid=txid,
            account=account,
            pair=pair.altname,
            side=req.side,
            ordertype=req.ordertype,
            volume=req.volume,
            opentm=now,
            price=req.price,
            price2=req.price2,
            trail=req.trail,
            trail_limit=req.trail_limit,
            oflags=tuple(sorted(req.oflags)),
            timeinforce=req.timeinforce,
            starttm=req.starttm,
            expiretm=req.expiretm,
            userref=req.userref,
            cl_ord_id=req.cl_ord_id,
            close=req.close,
            displayvol=req.displayvol,
            status="pending" if req.starttm > now else "open",
            peak=self._last.get(pair.altname) if req.ordertype in TRAILING else None,
        )

    @staticmethod
    def _check_flags(req: OrderRequest) -> None:
        flags = req.oflags
        if flags - OFLAGS or {"fcib", "fciq"} <= flags:
            raise _invalid("oflags")
        if "post" in flags and req.ordertype not in LIMIT_LIKE:
            raise _invalid("oflags")
        if "viqc" in flags and (req.ordertype != "market" or req.side != "buy"):
            raise _invalid("oflags")
        if req.timeinforce not in ("GTC", "IOC", "GTD"):
            raise _invalid("timeinforce")

    @staticmethod
    def _check_prices(req: OrderRequest, pair: PairInfo) -> None:
        kind = req.ordertype
        if kind in TRAILING:
            if req.trail is None or req.trail.amount <= 0:
                raise _invalid("price")
            if kind == "trailing-stop-limit" and req.trail_limit is None:
                raise _invalid("price2")
        elif kind != "market" and (req.price is None or req.price <= 0):
            raise _invalid("price")
        if kind in WITH_LIMIT_AFTER_TRIGGER - TRAILING and (req.price2 is None or req.price2 <= 0):
            raise _invalid("price2")
        prices = [req.price, req.price2]
        if req.close is not None:
            close = req.close
            if close.ordertype not in CLOSE_ORDER_TYPES or close.ordertype in TRAILING:
                raise _invalid("close[ordertype]")
            if close.price is None or close.price <= 0:
                raise _invalid("close[price]")
            if close.ordertype in WITH_LIMIT_AFTER_TRIGGER and (close.price2 is None or close.price2 <= 0):
                raise _invalid("close[price2]")
            prices += [close.price, close.price2]
        tick = pair.tick_size if pair.tick_size > 0 else Decimal(1).scaleb(-pair.pair_decimals)
        for price in prices:
            if price is not None and price % tick != 0:
                raise ExchangeError("EOrder:Tick size check failed")

    @staticmethod
    def _check_times(req: OrderRequest, now: float) -> None:
        if req.timeinforce == "GTD" and not req.expiretm:
            raise _invalid("expiretm")
        if req.expiretm and (req.expiretm <= now or req.expiretm <= req.starttm):
            raise _invalid("expiretm")

    def _check_refs(self, account: str, req: OrderRequest) -> None:
        if req.userref is not None:
            if req.cl_ord_id is not None:
                raise _invalid("cl_ord_id")
            if not -INT32 <= req.userref < INT32:
                raise _invalid("userref")
        if req.cl_ord_id is not None:
            if not valid_cl_ord_id(req.cl_ord_id):
                raise _invalid("cl_ord_id")
            if any(o.cl_ord_id == req.cl_ord_id for o in self.open_orders(account)):
                raise ExchangeError("EOrder:Duplicate order")

    def _reference_price(self, req: OrderRequest, pair: PairInfo) -> Decimal:
        """The price the order's cost is judged at (for minimums and holds)."""
        if req.ordertype in WITH_LIMIT_AFTER_TRIGGER - TRAILING:
            assert req.price2 is not None  # _check_prices requires it
            return req.price2
        if req.ordertype not in TRAILING and req.ordertype != "market":
            assert req.price is not None  # _check_prices requires it
            return req.price
        last = self._last.get(pair.altname)
        if last is None:
            raise ExchangeError("EService:Unavailable")
        if req.trail is not None and req.side == "buy":
            return last + req.trail.of(last)
        return last

    def _reserve(self, order: Order) -> None:
        """Set what the order holds while it is open."""
        pair = self.pair(order.pair)
        rate = self.fees.for_pair(pair.altname).taker
        fee_in_base = "fcib" in order.oflags
        if order.side == "sell":
            amount = order.volume * (1 + rate) if fee_in_base else order.volume
            order.hold_asset, order.hold = pair.base, round_up(amount, asset_decimals(pair.base))
        elif "viqc" in order.oflags:
            order.hold_asset, order.hold = pair.quote, round_up(order.volume * (1 + rate), asset_decimals(pair.quote))
        else:
            price = self._reference_price(_as_request(order), pair)
            factor = 1 if fee_in_base else 1 + rate
            order.hold_asset = pair.quote
            order.hold = round_up(order.volume * price * factor, asset_decimals(pair.quote))

    def _check_funds(self, order: Order) -> None:
        if self.available(order.account, order.hold_asset) < order.hold:
            raise ExchangeError("EOrder:Insufficient funds")

    def _store(self, order: Order) -> None:
        self.orders[order.txid] = order
        self._open[order.txid] = order

    def _close(self, order: Order, status: str, reason: str | None, now: float) -> None:
        order.status, order.reason, order.closetm, order.hold = status, reason, now, _ZERO
        self._open.pop(order.txid, None)

    def _evaluate(self, order: Order, now: float, fills: list[Fill], arriving: bool) -> None:
        last = self._last.get(order.pair)
        if last is None or order.status != "open":
            return
        if order.ordertype == "market":
            self._execute(order, last, False, now, fills)
            return
        if order.ordertype in TRIGGERED and not order.triggered:
            if not self._triggers(order, last):
                return
            order.triggered = True
            order.misc = "stopped"
            if order.ordertype not in WITH_LIMIT_AFTER_TRIGGER:
                self._execute(order, last, False, now, fills)
                return
            arriving = True
        limit = order.limit_price()
        assert limit is not None
        marketable = last <= limit if order.side == "buy" else last >= limit
        if arriving and marketable:
            if "post" in order.oflags:
                self._close(order, "canceled", "Post only order", now)
            else:
                self._execute(order, last, False, now, fills)
        elif arriving and order.timeinforce == "IOC":
            self._close(order, "canceled", "Unfilled IOC order", now)
        elif arriving:
            order.resting = True
        elif marketable:
            self._execute(order, limit, True, now, fills)

    def _triggers(self, order: Order, last: Decimal) -> bool:
        """Has `last` crossed the order's trigger? Sets `stopprice` (and `limitprice`)."""
        pair = self.pair(order.pair)
        buy = order.side == "buy"
        if order.ordertype in TRAILING:
            assert order.trail is not None
            peak = last if order.peak is None else (min(order.peak, last) if buy else max(order.peak, last))
            order.peak = peak
            distance = order.trail.of(peak)
            trigger = peak + distance if buy else peak - distance
            crossed = last >= trigger if buy else last <= trigger
        else:
            assert order.price is not None
            trigger = order.price
            if order.ordertype.startswith("stop-loss"):
                crossed = last >= trigger if buy else last <= trigger
            else:
                crossed = last <= trigger if buy else last >= trigger
        if crossed:
            order.stopprice = quantize(trigger, pair.pair_decimals)
            if order.ordertype == "trailing-stop-limit":
                assert order.trail_limit is not None
                limit = order.stopprice + order.trail_limit.of(order.stopprice)
                order.limitprice = quantize(limit, pair.pair_decimals)
            elif order.ordertype in WITH_LIMIT_AFTER_TRIGGER:
                assert order.price2 is not None  # _check_prices required it
                order.limitprice = order.price2
        return crossed

    def _execute(self, order: Order, price: Decimal, maker: bool, now: float, fills: list[Fill]) -> None:
        pair = self.pair(order.pair)
        rates = self.fees.for_pair(pair.altname)
        rate = rates.maker if maker else rates.taker
        base_places, quote_places = asset_decimals(pair.base), asset_decimals(pair.quote)
        volume = order.volume
        if "viqc" in order.oflags:
            volume = round_down(order.volume / (price * (1 + rate)), pair.lot_decimals)
        cost = quantize(volume * price, quote_places)
        fee_in_base = "fcib" in order.oflags
        fee = quantize(volume * rate, base_places) if fee_in_base else quantize(cost * rate, quote_places)
        fee_asset = pair.base if fee_in_base else pair.quote
        if order.side == "buy":
            spend_asset, spend = pair.quote, cost + (_ZERO if fee_in_base else fee)
        else:
            spend_asset, spend = pair.base, volume + (fee if fee_in_base else _ZERO)
        own_hold = order.hold if order.hold_asset == spend_asset else _ZERO
        if self.available(order.account, spend_asset) + own_hold < spend:
            self._close(order, "canceled", "Insufficient funds", now)
            return
        if order.side == "buy":
            self._credit(order.account, pair.quote, -(cost + (_ZERO if fee_in_base else fee)))
            self._credit(order.account, pair.base, volume - (fee if fee_in_base else _ZERO))
        else:
            self._credit(order.account, pair.base, -(volume + (fee if fee_in_base else _ZERO)))
            self._credit(order.account, pair.quote, cost - (_ZERO if fee_in_base else fee))
        fill = Fill(
            trade_id=self._ids.trade_id(),
            txid=order.txid,
            account=order.account,
            pair=pair.altname,
            side=order.side,
            ordertype=order.ordertype,
            price=price,
            volume=volume,
            cost=cost,
            fee=fee,
            fee_asset=fee_asset,
            maker=maker,
            time=now,
        )
        self.trades[fill.trade_id] = fill
        fills.append(fill)
        order.vol_exec, order.cost, order.fee, order.avg_price = volume, cost, fee, price
        order.trades.append(fill.trade_id)
        self._close(order, "closed", None, now)
        if order.close is not None:
            self._place_close(order, volume, now, fills)

    def _place_close(self, parent: Order, volume: Decimal, now: float, fills: list[Fill]) -> None:
        """Open the conditional close of a filled order (cancelled at once if unaffordable)."""
        close = parent.close
        assert close is not None
        order = Order(
            txid=self._ids.txid(),
            account=parent.account,
            pair=parent.pair,
            side="sell" if parent.side == "buy" else "buy",
            ordertype=close.ordertype,
            volume=volume,
            opentm=now,
            price=close.price,
            price2=close.price2,
            parent=parent.txid,
        )
        self._reserve(order)
        self._store(order)
        if self.available(order.account, order.hold_asset) < 0:
            self._close(order, "canceled", "Insufficient funds", now)
            return
        self._evaluate(order, now, fills, arriving=True)

    # ------------------------------------------------------------------ persistence

    def snapshot(self) -> dict[str, Any]:
        """All state as JSON-serialisable data (amounts as strings)."""
        return {
            "version": 1,
            "seed": self._ids.seed,
            "id_counter": self._ids.counter,
            "balances": {a: {k: str(v) for k, v in w.items()} for a, w in self._balances.items()},
            "last": {k: str(v) for k, v in self._last.items()},
            "orders": [o.to_json() for o in self.orders.values()],
            "trades": [t.to_json() for t in self.trades.values()],
            "dead_man": dict(self._dead_man),
        }

    @classmethod
    def from_snapshot(
        cls,
        data: Mapping[str, Any],
        pairs: PairRegistry | None = None,
        fees: FeeSchedule | None = None,
    ) -> PaperExchange:
        exchange = cls(pairs, fees, seed=data["seed"])
        exchange._ids.counter = int(data["id_counter"])
        exchange._balances = {
            a: {k: Decimal(v) for k, v in w.items()} for a, w in data["balances"].items()
        }
        exchange._last = {k: Decimal(v) for k, v in data["last"].items()}
        for raw in data["orders"]:
            order = Order.from_json(raw)
            exchange.orders[order.txid] = order
            if order.is_open:
                exchange._open[order.txid] = order
        exchange.trades = {t["trade_id"]: Fill.from_json(t) for t in data["trades"]}
        exchange._dead_man = {k: float(v) for k, v in data["dead_man"].items()}
        return exchange


def _as_request(order: Order) -> OrderRequest:
    return OrderRequest(
        pair=order.pair,
        side=order.side,
        ordertype=order.ordertype,
        volume=order.volume,
        price=order.price,
        price2=order.price2,
        trail=order.trail,
        trail_limit=order.trail_limit,
        oflags=frozenset(order.oflags),
    )

