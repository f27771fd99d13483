"""A pure Kraken Futures paper exchange: linear perpetuals (`PF_XBTUSD`, ...) in one
multi-collateral ("flex") margin account per API key. No I/O; time is passed in.

- Products follow the spot market: the mark (and index, last) price of `PF_XBTUSD` is the
  simulated spot price of `XBTUSD`.
- Order types: `mkt`, `lmt`, `post`, `ioc`, `fok`, `stp` and `take_profit` (with or
  without `limitPrice`). Fills are whole (no depth): market at the mark (taker fee),
  resting limits at their limit price when the mark reaches them (maker fee).
- Margin: initial margin `initial_margin` (2 %, i.e. 50x) of the notional that an order
  adds to the position; collateral is valued at spot prices; realised PnL and fees settle
  in USD.

The simulator serves it over Kraken's Futures REST API (`sim.futures_api`); dry-run runs it
as the paper Futures account (`execution.paper_futures`), saved with `snapshot()`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from typing import Any

from rules_engine.pairs import PairRegistry
from rules_engine.paper.ids import IdSource

PERPETUAL_BASES = ("XBT", "ETH", "SOL", "XRP", "LTC", "ADA", "DOT", "LINK", "XDG")
ORDER_TYPES = ("lmt", "post", "ioc", "fok", "mkt", "stp", "take_profit")
LIMITED = frozenset({"lmt", "post", "ioc", "fok"})
STOPS = frozenset({"stp", "take_profit"})
_ZERO = Decimal(0)


@dataclass(frozen=True)
class Product:
    symbol: str  # PF_XBTUSD
    underlying: str  # spot altname, XBTUSD
    base: str  # XBT
    tick_size: Decimal
    size_decimals: int = 4

    @property
    def pair(self) -> str:
        return f"{self.base}:USD"


def default_products(pairs: PairRegistry) -> list[Product]:
    """One perpetual per listed base that has a spot `<BASE>USD` pair."""
    products = []
    for base in PERPETUAL_BASES:
        spot = pairs.get(f"{base}USD")
        if spot is not None:
            tick = spot.tick_size if spot.tick_size > 0 else Decimal(1).scaleb(-spot.pair_decimals)
            products.append(Product(f"PF_{base}USD", spot.altname, base, tick))
    return products


@dataclass
class FuturesOrder:
    order_id: str
    account: str
    symbol: str
    side: str
    order_type: str
    size: Decimal
    received: float
    limit_price: Decimal | None = None
    stop_price: Decimal | None = None
    cli_ord_id: str | None = None
    reduce_only: bool = False
    status: str = "untouched"  # untouched | filled | cancelled
    filled: Decimal = _ZERO
    triggered: bool = False
    updated: float = 0.0

    @property
    def is_open(self) -> bool:
        return self.status == "untouched"


@dataclass
class Position:
    symbol: str
    size: Decimal  # signed: long > 0
    price: Decimal
    fill_time: float


@dataclass(frozen=True)
class FuturesFill:
    fill_id: str
    order_id: str
    account: str
    symbol: str
    side: str
    price: Decimal
    size: Decimal
    fee: Decimal
    maker: bool
    time: float


@dataclass
class SendResult:
    status: str
    order: FuturesOrder
    fills: list[FuturesFill] = field(default_factory=list)


class FuturesExchange:
    def __init__(
        self,
        products: Iterable[Product],
        *,
        seed: int | str = 0,
        maker_fee: Decimal = Decimal("0.0002"),
        taker_fee: Decimal = Decimal("0.0005"),
        initial_margin: Decimal = Decimal("0.02"),
    ):
        self.products = {p.symbol: p for p in products}
        self._of_underlying: dict[str, list[Product]] = {}
        for product in self.products.values():
            self._of_underlying.setdefault(product.underlying, []).append(product)
        self.maker_fee, self.taker_fee, self.initial_margin = maker_fee, taker_fee, initial_margin
        self.orders: dict[str, FuturesOrder] = {}
        self.fills: list[FuturesFill] = []
        self._collateral: dict[str, dict[str, Decimal]] = {}
        self._positions: dict[str, dict[str, Position]] = {}
        self._spot: dict[str, Decimal] = {}
        self._dead_man: dict[str, float] = {}
        self._ids = IdSource(f"{seed}:futures")

    # ------------------------------------------------------------------ state

    def product(self, symbol: str) -> Product | None:
        return self.products.get(symbol.upper())

    def set_collateral(self, account: str, currency: str, amount: Decimal | str) -> None:
        self._collateral.setdefault(account, {})[currency.upper()] = Decimal(str(amount))

    def collateral(self, account: str) -> dict[str, Decimal]:
        return dict(self._collateral.get(account, {}))

    def positions(self, account: str) -> list[Position]:
        return [p for p in self._positions.get(account, {}).values() if p.size]

    def open_orders(self, account: str) -> list[FuturesOrder]:
        return [o for o in self.orders.values() if o.account == account and o.is_open]

    def mark(self, symbol: str) -> Decimal | None:
        product = self.product(symbol)
        return None if product is None else self._spot.get(product.underlying)

    def value_usd(self, currency: str, amount: Decimal) -> Decimal:
        """What some collateral is worth in USD at spot prices (0 if unpriced)."""
        if currency == "USD":
            return amount
        price = self._spot.get(f"{currency}USD")
        return amount * price if price else _ZERO

    def unrealized(self, account: str) -> Decimal:
        total = _ZERO
        for position in self.positions(account):
            mark = self.mark(position.symbol)
            if mark is not None:
                total += (mark - position.price) * position.size
        return total

    def margin(self, account: str) -> dict[str, Decimal]:
        """Collateral value, PnL, margins and what is available for new orders (USD)."""
        collateral = sum((self.value_usd(c, a) for c, a in self._collateral.get(account, {}).items()), _ZERO)
        pnl = self.unrealized(account)
        positions_im = sum(
            (abs(p.size) * (self.mark(p.symbol) or p.price) * self.initial_margin for p in self.positions(account)),
            _ZERO,
        )
        orders_im = sum((self._order_margin(o) for o in self.open_orders(account)), _ZERO)
        equity = collateral + pnl
        return {
            "collateral": collateral,
            "pnl": pnl,
            "equity": equity,
            "initial_margin": positions_im,
            "initial_margin_with_orders": positions_im + orders_im,
            "maintenance_margin": positions_im / 2,
            "available": equity - positions_im - orders_im,
        }

    def _order_price(self, order: FuturesOrder) -> Decimal:
        return order.limit_price or order.stop_price or self.mark(order.symbol) or _ZERO

    def _added_exposure(self, order: FuturesOrder) -> Decimal:
        position = self._positions.get(order.account, {}).get(order.symbol)
        current = position.size if position else _ZERO
        signed = order.size if order.side == "buy" else -order.size
        return max(_ZERO, abs(current + signed) - abs(current))

    def _order_margin(self, order: FuturesOrder) -> Decimal:
        return self._added_exposure(order) * self._order_price(order) * self.initial_margin

    # ------------------------------------------------------------------ orders

    def send_order(
        self,
        account: str,
        *,
        symbol: str,
        side: str,
        order_type: str,
        size: Decimal,
        now: float,
        limit_price: Decimal | None = None,
        stop_price: Decimal | None = None,
        cli_ord_id: str | None = None,
        reduce_only: bool = False,
    ) -> SendResult:
        """Place an order; the result's status is Kraken's `sendStatus.status`.
        Arguments must already be present and typed (the API layer checks that)."""
        self.advance(now)
        product = self.products[symbol.upper()]
        order = FuturesOrder(
            order_id=self._ids.uuid(),
            account=account,
            symbol=product.symbol,
            side=side,
            order_type=order_type,
            size=size,
            received=now,
            limit_price=limit_price,
            stop_price=stop_price,
            cli_ord_id=cli_ord_id,
            reduce_only=reduce_only,
            updated=now,
        )
        rejected = self._reject_reason(order, product)
        if rejected:
            order.status = "rejected"
            return SendResult(rejected, order)
        mark = self.mark(product.symbol)
        if order_type == "post" and mark is not None and self._marketable(order, mark):
            order.status = "rejected"
            return SendResult("postWouldExecute", order)
        if order_type in ("ioc", "fok") and (mark is None or not self._marketable(order, mark)):
            order.status = "rejected"
            return SendResult("iocWouldNotExecute", order)
        self.orders[order.order_id] = order
        fills: list[FuturesFill] = []
        self._evaluate(order, now, fills, arriving=True)
        return SendResult("filled" if order.status == "filled" else "placed", order, fills)

    def _reject_reason(self, order: FuturesOrder, product: Product) -> str | None:
        if order.size <= 0 or order.size != round(order.size, product.size_decimals):
            return "invalidSize"
        for price in (order.limit_price, order.stop_price):
            if price is not None and (price <= 0 or price % product.tick_size != 0):
                return "invalidPrice"
        if order.cli_ord_id is not None:
            if len(order.cli_ord_id) > 100:
                return "clientOrderIdTooBig"
            if any(o.cli_ord_id == order.cli_ord_id for o in self.orders.values() if o.account == order.account):
                return "clientOrderIdAlreadyExist"
        if order.order_type == "mkt" and self.mark(product.symbol) is None:
            return "marketInactive"
        if order.reduce_only and self._added_exposure(order) > 0:
            return "wouldNotReducePosition"
        if self._order_margin(order) > self.margin(order.account)["available"]:
            return "insufficientAvailableFunds"
        return None

    @staticmethod
    def _marketable(order: FuturesOrder, mark: Decimal) -> bool:
        assert order.limit_price is not None
        return mark <= order.limit_price if order.side == "buy" else mark >= order.limit_price

    def _evaluate(self, order: FuturesOrder, now: float, fills: list[FuturesFill], arriving: bool) -> None:
        mark = self.mark(order.symbol)
        if mark is None or not order.is_open:
            return
        if order.order_type in STOPS and not order.triggered:
            assert order.stop_price is not None
            buy, stop = order.side == "buy", order.stop_price
            if order.order_type == "stp":
                crossed = mark >= stop if buy else mark <= stop
            else:
                crossed = mark <= stop if buy else mark >= stop
            if not crossed:
                return
            order.triggered, arriving = True, True
            if order.limit_price is None:
                self._fill(order, mark, False, now, fills)
                return
        if order.order_type == "mkt":
            self._fill(order, mark, False, now, fills)
        elif self._marketable(order, mark):
            assert order.limit_price is not None  # _marketable holds only for an order with a limit price
            self._fill(order, mark if arriving else order.limit_price, not arriving, now, fills)

    def _fill(self, order: FuturesOrder, price: Decimal, maker: bool, now: float, fills: list[FuturesFill]) -> None:
        signed = order.size if order.side == "buy" else -order.size
        book = self._positions.setdefault(order.account, {})
        position = book.get(order.symbol) or Position(order.symbol, _ZERO, price, now)
        realized = _ZERO
        if position.size and (position.size > 0) != (signed > 0):
            closed = min(abs(position.size), abs(signed))
            realized = closed * (price - position.price) * (1 if position.size > 0 else -1)
        new_size = position.size + signed
        if not position.size or (position.size > 0) != (new_size > 0):
            position.price = price  # opened, or flipped to the other side
        elif abs(new_size) > abs(position.size):
            position.price = (position.price * position.size + price * signed) / new_size
        position.size, position.fill_time = new_size, now
        book[order.symbol] = position
        fee = order.size * price * (self.maker_fee if maker else self.taker_fee)
        wallet = self._collateral.setdefault(order.account, {})
        wallet["USD"] = wallet.get("USD", _ZERO) + realized - fee
        order.status, order.filled, order.updated = "filled", order.size, now
        fill = FuturesFill(self._ids.uuid(), order.order_id, order.account, order.symbol, order.side, price, order.size,
                           fee, maker, now)
        self.fills.append(fill)
        fills.append(fill)

    def cancel(self, account: str, now: float, *, order_id: str | None = None,
               cli_ord_id: str | None = None) -> FuturesOrder | None:
        for order in self.open_orders(account):
            if (order_id and order.order_id == order_id) or (cli_ord_id and order.cli_ord_id == cli_ord_id):
                order.status, order.updated = "cancelled", now
                return order
        return None

    def cancel_all(self, account: str, now: float, symbol: str | None = None) -> list[FuturesOrder]:
        chosen = [o for o in self.open_orders(account) if symbol is None or o.symbol == symbol.upper()]
        for order in chosen:
            order.status, order.updated = "cancelled", now
        return chosen

    def cancel_all_after(self, account: str, timeout: int, now: float) -> float | None:
        if timeout <= 0:
            self._dead_man.pop(account, None)
            return None
        self._dead_man[account] = now + timeout
        return self._dead_man[account]

    def advance(self, now: float) -> list[FuturesOrder]:
        """Run the dead man's switch; returns the orders it cancelled."""
        cancelled: list[FuturesOrder] = []
        for account, trigger in list(self._dead_man.items()):
            if now >= trigger:
                del self._dead_man[account]
                cancelled += self.cancel_all(account, now)
        return cancelled

    @property
    def idle(self) -> bool:
        """No order is open and no dead man's switch is armed: a spot price moves only the marks."""
        return not self._dead_man and not any(o.is_open for o in self.orders.values())

    def on_spot_price(self, altname: str, price: Decimal, now: float) -> list[FuturesFill]:
        """The spot price of `altname` moved: move marks, trigger and fill."""
        self._spot[altname] = Decimal(price)
        self.advance(now)
        fills: list[FuturesFill] = []
        for order in list(self.orders.values()):
            product = self.products[order.symbol]
            if order.is_open and product.underlying == altname:
                self._evaluate(order, now, fills, arriving=False)
        return fills

    def products_of(self, altname: str) -> list[Product]:
        return list(self._of_underlying.get(altname, ()))

    # ------------------------------------------------------------------ persistence

    def snapshot(self, keep_closed: int = 1000) -> dict[str, Any]:
        """The state as JSON-serialisable data (amounts as strings); of the finished orders
        and the fills only the last `keep_closed` are kept."""
        finished = [o for o in self.orders.values() if not o.is_open][-keep_closed:] if keep_closed > 0 else []
        orders = [o for o in self.orders.values() if o.is_open or o in finished]
        return {
            "version": 1,
            "seed": self._ids.seed,
            "id_counter": self._ids.counter,
            "orders": [_plain(asdict(o)) for o in orders],
            "fills": [_plain(asdict(f)) for f in self.fills[-keep_closed:]] if keep_closed > 0 else [],
            "collateral": {a: {c: str(v) for c, v in w.items()} for a, w in self._collateral.items()},
            "positions": {a: [_plain(asdict(p)) for p in book.values()] for a, book in self._positions.items()},
            "spot": {k: str(v) for k, v in self._spot.items()},
            "dead_man": dict(self._dead_man),
        }

    def restore(self, data: Mapping[str, Any]) -> None:
        """Take the state of a `snapshot()` (products and fees stay as constructed)."""
        self._ids = IdSource(data["seed"], int(data["id_counter"]))
        self.orders = {}
        for raw in data["orders"]:
            order = FuturesOrder(**_decimals(raw, ("size", "limit_price", "stop_price", "filled")))
            self.orders[order.order_id] = order
        self.fills = [FuturesFill(**_decimals(raw, ("price", "size", "fee"))) for raw in data["fills"]]
        self._collateral = {a: {c: Decimal(v) for c, v in w.items()} for a, w in data["collateral"].items()}
        self._positions = {a: {p["symbol"]: Position(**_decimals(p, ("size", "price"))) for p in book}
                           for a, book in data["positions"].items()}
        self._spot = {k: Decimal(v) for k, v in data["spot"].items()}
        self._dead_man = {k: float(v) for k, v in data["dead_man"].items()}


def _plain(data: dict[str, Any]) -> dict[str, Any]:
    return {k: str(v) if isinstance(v, Decimal) else v for k, v in data.items()}


def _decimals(data: Mapping[str, Any], names: tuple[str, ...]) -> dict[str, Any]:
    return {k: Decimal(v) if k in names and v is not None else v for k, v in data.items()}

