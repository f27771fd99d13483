"""High availability for one API key: a standby engine, lease renewal, and the takeover
protocol of the scale-out design note (section 4.3), for `store: {standby: true, exclusive: true}`.

    cell = HaCell(settings, spec, holder)        # open_backend makes it
    cell.wait_for_key()                          # standby: until the key's lease is free, expired or orphaned
    executor = build_executor(..., **cell.executor_options(options))   # lease-gated clients
    info = cell.take_over(executor, store, live=True)   # fence, then wait out every AddOrder deadline
    driver.start(now)                            # Dispatcher.recover: looks every non-final intent up
    cell.started(info, store, audit)             # audit "epoch_started"

- **Lease.** `LeaseKeeper` renews the key's lease every `lease_ttl / 3` on its own thread; the
  database's clock judges expiry. The engine may call Kraken with the key only until its
  monotonic clock passes (time the last successful renewal was *sent* + TTL - TTL/6); after
  that a private call waits up to `LAPSE_WAIT` for a renewal of the same epoch, then is
  refused before it is signed (`LeaseLost`, `unsent`: the dispatcher leaves such an order
  `pending` for the next holder) and `/readyz` says why, until a renewal of the same epoch
  succeeds again.
- **Halt.** A renewal that finds another epoch (fenced), or Kraken refusing one of this
  engine's nonces (`EAPI:Invalid nonce`: the new holder's fence got there first) halts the
  cell for good: nothing more is signed, the callback (the service) stops the engine.
  The engine never retries a refused nonce, so a demoted leader sends at most one request
  that Kraken refuses.
- **Takeover.** (a) acquire: epoch + 1 (`LeaseSession.try_take`); (b) fence: the epoch's
  first private call is `CancelAllOrdersAfter(dead_man_switch.timeout)`, its nonce above
  the previous holder's reserved ceiling (the `nonces` row, written only under the epoch
  check), repeated with fresh nonces until one is answered; (c) reconcile: wait until every
  non-final decision's AddOrder deadline (5 s in this mode) has passed, then the dispatcher's
  recovery looks each up by `cl_ord_id` (not found: not sent, it was fenced; sent now, once, if
  still fresh: `execution.resend`, the code a restarted single engine runs too); (d) act,
  after auditing `epoch_started` (holder, fence nonce, reconcile summary).
- **Release.** With `release_after`, a holder that cannot reach Kraken that long gives the
  key up for another engine and keeps off it as long again (`service.release`).
- **Clocks.** Order deadlines use Kraken's clock (the offset is measured against the public
  `Time` call at takeover). `RULES_ENGINE_TEST_CLOCK_SKEW` (seconds, tests only) skews the
  wall clock the Kraken clients use (nonces, deadlines) to show that nothing depends on it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from rules_engine.audit.sink import AuditSink
from rules_engine.config import StoreConfig
from rules_engine.crashpoints import armed, crash_point
from rules_engine.execution.deadlines import wait_out_deadlines
from rules_engine.kraken.errors import KrakenError
from rules_engine.kraken.http import DEFAULT_TIMEOUT, DEFAULT_USER_AGENT, RequestsTransport, Transport
from rules_engine.kraken.nonce import NonceSource, NonceStore, Turn
from rules_engine.pgstore import StoreSettings
from rules_engine.pgstore.lease import Lease, LeaseSession
from rules_engine.pgstore.release import released_hold_off
from rules_engine.service.kraken_clock import SharedKrakenClock
from rules_engine.service.release import ReleaseWatch
from rules_engine.service.startup import StartupError
from rules_engine.state import StateStoreError
from rules_engine.state.protocol import EngineStore

if TYPE_CHECKING:
    from rules_engine.service.worker_leases import WorkerLeases

log = logging.getLogger("rules_engine.ha")

ORDER_DEADLINE = 5.0
"""AddOrder `deadline`, seconds ahead, in high-availability mode: how long a request of a
demoted leader can still be placed, so how long a takeover waits before "not found" is proof."""
LOOKUP_EVERY = 2.0
"""Seconds from a takeover's first lookup of a previous epoch's orders to its second."""
LAPSE_WAIT = 2.0
"""At most this long (and at most the lease's TTL) a private call waits for a late renewal to
end a lapse before it is refused (`LeaseLost`): an order decided while the renewing thread was
starved of CPU leaves a moment later instead of never (its deadline still 3 s or more ahead)."""
SKEW_ENV = "RULES_ENGINE_TEST_CLOCK_SKEW"
MID_REQUEST_AFTER = 0.3
"""The `order.mid_request` crash point fires this long after an AddOrder left (tests)."""


class LeaseLost(KrakenError):
    """This engine may not use the API key now: its lease lapsed, or another engine took the key.
    Raised before anything is signed (`GatedNonceSource`): the request never left."""

    unsent = True


class LeaseKeeper:
    """Renews one lease on a thread (see the module); `check()` is the gate of every private call."""

    def __init__(self, session: LeaseSession, lease: Lease, *, sent_at: float, renew_every: float,
                 monotonic: Callable[[], float] = time.monotonic,
                 on_halt: Callable[[str], None] | None = None,
                 on_event: Callable[[dict[str, Any]], None] | None = None) -> None:
        self.session = session
        self.epoch = lease.epoch
        self.ttl = session.ttl
        self.margin = session.ttl / 6
        self.renew_every = renew_every
        self._monotonic = monotonic
        self.on_halt = on_halt
        self.on_event = on_event  # the end of a lapse (with its length), for the audit chain
        self.lapsed_at: float | None = None
        self.valid_until = sent_at + self.ttl - self.margin
        self.halted: str | None = None
        self.failure: str | None = None
        self.renewals = 0
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._renewed = threading.Condition()  # told of each renewal and of a halt (`check(wait=)`)
        self._thread = threading.Thread(target=self._run, name="lease-keeper", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.renew_every):
            if self.halted is not None:
                return
            self.renew_once()
            self._note_lapse()

    def _note_lapse(self) -> None:
        """Tell `on_event` when sending stopped for lack of a renewal (noticed by the gate or
        the keeper, whichever first: a renewal may hang), and when a renewal ended it."""
        now = self._monotonic()
        event = None
        with self._lock:
            if self.lapsed_at is None and now > self.valid_until and self.halted is None:
                self.lapsed_at = self.valid_until
                event = {"event": "lapsed", "epoch": self.epoch, "reason": self.failure or "not renewed in time"}
            elif self.lapsed_at is not None and now <= self.valid_until:
                event = {"event": "renewed", "epoch": self.epoch, "lapsed_s": round(now - self.lapsed_at, 3)}
                self.lapsed_at = None
        if event is not None:
            self._tell(event)

    def _tell(self, event: dict[str, Any]) -> None:
        log.warning("lease %s: %s", event["event"], event)
        if self.on_event is not None and event["event"] == "renewed":  # a lapse is audited once it ended:
            self.on_event(event)  # while it lasts the store is usually out of reach (the write would wait)

    def renew_once(self) -> None:
        sent = self._monotonic()
        try:
            renewed = self.session.renew(self.epoch)
        except StateStoreError as exc:
            self.renew_failed(exc)
            return
        self.renewal_result(sent, renewed)

    def renew_failed(self, exc: StateStoreError) -> None:
        """A renewal could not be made (the store is out of reach): nothing changes until the lease lapses."""
        if self.failure is None:
            log.warning("cannot renew the key's lease (epoch %d): %s", self.epoch, exc)
        self.failure = str(exc)

    def renewal_result(self, sent: float, renewed: bool) -> None:
        """A renewal sent at `sent` (monotonic) was answered: extended, or the key has a newer epoch (halt)."""
        if not renewed:
            self.halt(f"fenced: the key's lease is now held by a newer epoch than {self.epoch}; "
                      "this engine stops acting")
            return
        self.valid_until = sent + self.ttl - self.margin
        self.failure = None
        self.renewals += 1
        with self._renewed:
            self._renewed.notify_all()
        crash_point("lease.renewed")

    def check(self, wait: float = 0.0) -> None:
        """Raise LeaseLost unless this engine may call Kraken with the key now. A lapse (a
        renewal late: the renewing thread starved of CPU, the store slow) is first waited out
        for up to `wait` seconds: a renewal of the same epoch ends it; a halt does not."""
        if wait > 0 and self.halted is None and self._monotonic() > self.valid_until:
            with self._renewed:
                self._renewed.wait_for(lambda: self.halted is not None or self._monotonic() <= self.valid_until,
                                       timeout=wait)
        if self.halted is not None:
            raise LeaseLost(self.halted)
        if self._monotonic() > self.valid_until:
            self._note_lapse()
            raise LeaseLost(f"the key's lease (epoch {self.epoch}) was not renewed in time"
                            + (f": {self.failure}" if self.failure else "") + "; nothing is sent until it is")

    def problem(self) -> str | None:
        """Why this engine may not trade now (for /readyz), None while it may."""
        try:
            self.check()
        except LeaseLost as exc:
            return str(exc)
        return None

    def halt(self, reason: str) -> None:
        """Stop for good (fenced or refused nonce): idempotent, tells `on_halt` once."""
        with self._lock:
            if self.halted is not None:
                return
            self.halted = reason
        with self._renewed:
            self._renewed.notify_all()
        log.error("lease: %s", reason)
        if self.on_halt is not None:
            self.on_halt(reason)

    def stop(self, *, release: bool) -> None:
        """End the renewals; `release`: let the lease expire now (a clean stop), unless halted."""
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(self.ttl + 5)
        if release and self.halted is None:
            try:
                self.session.release(self.epoch)
            except StateStoreError as exc:
                log.warning("cannot release the key's lease: %s", exc)
        self.session.close()


class GatedNonceSource(NonceSource):
    """A NonceSource whose every turn first passes `gate` (LeaseLost: nothing is signed)."""

    def __init__(self, store: NonceStore | None = None, *, gate: Callable[[], None], **options: Any) -> None:
        super().__init__(store, **options)
        self._gate = gate
        self.last_issued: int | None = None

    @contextmanager
    def turn(self, key_fingerprint: str, grace: float) -> Iterator[Turn]:
        self._gate()
        with super().turn(key_fingerprint, grace) as turn:
            self._gate()
            self.last_issued = turn.nonce
            yield turn


class GatedTransport:
    """The clients' transport, watching answers: a refused nonce halts the cell (`on_refused_nonce`)."""

    def __init__(self, inner: Transport, on_refused_nonce: Callable[[str], None]) -> None:
        self.inner = inner
        self._on_refused_nonce = on_refused_nonce

    def request(self, http_method: str, url: str, *, api_method: str, params: Mapping[str, Any] | None = None,
                body: str | None = None, headers: Mapping[str, str] | None = None) -> Any:
        timer = None
        if api_method == "AddOrder":
            crash_point("order.signed")
            if armed("order.mid_request"):
                timer = threading.Timer(MID_REQUEST_AFTER, crash_point, ("order.mid_request",))
                timer.start()
        try:
            answer = self.inner.request(http_method, url, api_method=api_method, params=params, body=body,
                                        headers=headers)
        finally:
            if timer is not None:
                timer.join()  # the crash point kills the process while the request is on its way
        errors = answer.get("error") if isinstance(answer, Mapping) else None
        texts = errors if isinstance(errors, list) else [errors] if isinstance(errors, str) else []
        if any("nonce" in str(text).lower() for text in texts):
            self._on_refused_nonce(f"{api_method}: {texts[0]}")
        return answer

    def close(self) -> None:
        close = getattr(self.inner, "close", None)
        if close is not None:
            close()


@dataclass
class Takeover:
    """What `take_over` did, for the `epoch_started` record."""

    epoch: int
    holder: str
    previous: dict[str, Any] | None
    lease_wait: float
    fence: dict[str, Any] = field(default_factory=dict)
    waited_for_deadlines: float = 0.0
    unresolved: list[str] = field(default_factory=list)


class HaCell:
    """One API key's high-availability side (see the module)."""

    def __init__(self, settings: StoreSettings, spec: StoreConfig, holder: str, *,
                 environ: Mapping[str, str], dead_man_timeout: float = 60.0,
                 sleep: Callable[[float], None] = time.sleep, leases: WorkerLeases | None = None,
                 kraken_clock: SharedKrakenClock | None = None) -> None:
        self.settings = settings
        self.leases = leases  # a worker's cell: the worker's shared lease connections and thread
        self.kraken_clock = kraken_clock  # a worker's cell: Kraken's clock measured once for every cell
        self.session = (LeaseSession(settings, holder, spec.lease_ttl) if leases is None
                        else leases.session(settings, spec.lease_ttl))
        self.renew_every = spec.lease_ttl / 3
        self.poll_every = min(self.renew_every, 0.5)
        self.fence_timeout = int(max(1, min(dead_man_timeout, 86399)))
        self.skew = float(environ.get(SKEW_ENV) or 0)
        self.offset = 0.0  # Kraken's clock minus this engine's (skewed) wall clock
        self.lease: Lease | None = None
        self.previous: Lease | None = None
        self.keeper: LeaseKeeper | None = None
        self.lease_wait = 0.0
        self.on_halt: Callable[[str], None] | None = None
        self.on_event: Callable[[dict[str, Any]], None] | None = None
        self.store_fenced: Callable[[], bool] = lambda: False  # a write of this engine found a newer epoch
        self.release = ReleaseWatch(settings, holder, spec.release_after) if spec.release_after else None
        self._nonces: list[GatedNonceSource] = []
        self._sleep = sleep

    # ------------------------------------------------------------------ clocks

    def wall(self) -> float:
        return time.time() + self.skew

    def wall_ns(self) -> int:
        return time.time_ns() + int(self.skew * 1_000_000_000)

    def kraken_time(self) -> float:
        """Kraken's clock as measured at takeover: what order deadlines are computed on."""
        return self.wall() + self.offset

    # ------------------------------------------------------------------ the lease

    def wait_for_key(self) -> Lease:
        """Take the key's lease (epoch + 1) as soon as it is free, expired or its holder's
        session has ended; start renewing it. Blocks while another engine holds it."""
        began = time.monotonic()
        announced = False
        tried = False
        hold_off = began + self._hold_off()  # this holder released the key lately (service.release)
        while True:
            if self.leases is not None and tried:  # a worker's cell: one poll of the worker for every waiting key
                self._sleep(0)  # the worker's hook: this cell stands by (raises once the worker stops)
                self.leases.wait_takeable(self.settings.key_id)
            tried = True
            sent = time.monotonic()
            try:
                before = self.session.current()
                lease = self.session.try_take() if sent >= hold_off else None
            except StateStoreError as exc:
                log.warning("standby: %s; trying again", exc)
                self._sleep(self.poll_every)
                continue
            if lease is not None:
                self.lease, self.previous = lease, before
                self.lease_wait = time.monotonic() - began
                make = LeaseKeeper if self.leases is None else self.leases.keeper
                self.keeper = make(self.session, lease, sent_at=sent, renew_every=self.renew_every,
                                   on_halt=self._halted, on_event=self._event)
                self.keeper.start()
                log.info("took key %s: epoch %d (after %.2f s)", self.settings.key_id, lease.epoch, self.lease_wait)
                return lease
            if not announced and before is not None:
                log.info("standby for key %s: held by %s (epoch %d); waiting for its lease to lapse",
                         self.settings.key_id, before.holder, before.epoch)
                announced = True
            if self.leases is None:
                self._sleep(self.poll_every)

    def _hold_off(self) -> float:
        try:
            return released_hold_off(self.settings, self.session.holder) if self.release is not None else 0.0
        except StateStoreError as exc:
            log.warning("standby: %s", exc)
            return 0.0

    def _event(self, event: dict[str, Any]) -> None:
        if self.on_event is not None:
            self.on_event(event)

    def _halted(self, reason: str) -> None:
        if self.on_halt is not None:
            self.on_halt(reason)

    def check(self) -> None:
        if self.keeper is None:
            raise LeaseLost("this engine does not hold the key's lease")
        if self.keeper.halted is None and self.store_fenced():
            self.keeper.halt("fenced: a write of this engine found the key held by a newer epoch; "
                             "this engine stops acting")
        self.keeper.check(wait=min(self.keeper.ttl, LAPSE_WAIT))

    def problem(self) -> str | None:
        """For /readyz: why this engine may not trade now."""
        return "standby: the key's lease is not held" if self.keeper is None else self.keeper.problem()

    @property
    def halted(self) -> str | None:
        return None if self.keeper is None else self.keeper.halted

    def _refused_nonce(self, what: str) -> None:
        if self.keeper is not None:
            self.keeper.halt(f"Kraken refused this engine's nonce ({what}): another engine holds the key "
                             "now; this engine stops without retrying")

    # ------------------------------------------------------------------ the executor

    def executor_options(self, options: Mapping[str, Any]) -> dict[str, Any]:
        """`build_executor` options with lease-gated clients: the gated nonce source, the
        nonce-watching transport, Kraken's clock, and the 5 s order deadline. `client_options`
        may name `http_environment`, the proxy settings cache the transport shares (`RequestsTransport`)."""
        client = dict(options.get("client_options") or {})
        environment = client.pop("http_environment", None)  # a worker's: shared by its cells' transports
        inner = client.get("transport") or RequestsTransport(timeout=client.get("timeout", DEFAULT_TIMEOUT),
                                                             user_agent=client.get("user_agent", DEFAULT_USER_AGENT),
                                                             environment=environment)
        if self.release is not None:  # release_after: every call's outcome is watched
            inner = self.release.transport(inner)
        client["transport"] = GatedTransport(inner, self._refused_nonce)
        client.setdefault("clock", self.kraken_time)
        return {**options, "client_options": client, "nonces": self._nonce_source, "order_deadline": ORDER_DEADLINE}

    def _nonce_source(self, store: NonceStore | None = None, **options: Any) -> GatedNonceSource:
        source = GatedNonceSource(store, gate=self.check, clock_ns=self.wall_ns, **options)
        self._nonces.append(source)
        return source

    # ------------------------------------------------------------------ takeover

    def take_over(self, executor: Any, store: EngineStore, *, live: bool, audit: AuditSink | None = None) -> Takeover:
        """Fence the key and wait until every non-final decision's deadline has passed (see
        the module); the dispatcher's recovery then looks them up. Runs before the engine acts.
        `audit` tells which `pending` decisions may have left (`dispatcher.may_have_left`;
        without it, all of them are waited for)."""
        try:
            return self._take_over(executor, store, live=live, audit=audit)
        except LeaseLost as exc:
            raise StartupError(f"takeover of key {self.settings.key_id} abandoned: {exc}") from None

    def _take_over(self, executor: Any, store: EngineStore, *, live: bool, audit: AuditSink | None) -> Takeover:
        assert self.lease is not None
        previous = None if self.previous is None else {"holder": self.previous.holder, "epoch": self.previous.epoch}
        info = Takeover(self.lease.epoch, self.lease.holder, previous, round(self.lease_wait, 3))
        spot = getattr(getattr(executor, "inner", executor), "spot", None)
        if live and spot is not None:
            if self.release is not None:
                self.release.probe = spot.time
            self._measure_offset(spot)
            info.fence = self._fence(spot, store)
        info.unresolved = [d.cl_ord_id for d in store.unresolved_decisions()]
        if live:
            self._wait_for_deadlines(executor, store, info, audit)
        crash_point("takeover.reconcile")  # fenced, deadlines passed, not yet looked up
        self.check()
        return info

    def _wait_for_deadlines(self, executor: Any, store: EngineStore, info: Takeover, audit: AuditSink | None) -> None:
        """Wait until no order of a previous epoch can still be placed, on Kraken's clock
        (`execution.deadlines`, the code a restarted single engine runs too)."""
        waited = wait_out_deadlines(executor, store, audit, order_deadline=ORDER_DEADLINE, clock=self.kraken_time,
                                    sleep=self._sleep, lookup_every=LOOKUP_EVERY)
        info.waited_for_deadlines = round(waited, 3)

    def _measure_offset(self, spot: Any) -> None:
        if self.kraken_clock is None:
            offset = self._read_offset(spot)
        else:  # a worker's cell: one measurement for all of them (service.kraken_clock)
            endpoint = f"{getattr(spot, 'base_url', '')} skew={self.skew}"
            offset = self.kraken_clock.offset(endpoint, lambda: self._read_offset(spot))
        if offset is not None:
            self.offset = offset

    def _read_offset(self, spot: Any) -> float | None:
        try:
            before = self.wall()
            server = float(spot.time()["unixtime"])
            after = self.wall()
        except (KrakenError, KeyError, TypeError, ValueError) as exc:
            log.warning("cannot read Kraken's clock (order deadlines use this engine's): %s", exc)
            return None
        return server + 0.5 - (before + after) / 2  # unixtime is whole seconds

    def _fence(self, spot: Any, store: EngineStore) -> dict[str, Any]:
        fingerprint = spot.credentials.fingerprint
        ceiling = store.load(fingerprint)
        attempts = 0
        while True:
            self.check()
            attempts += 1
            try:
                spot.cancel_all_orders_after(self.fence_timeout)
                break
            except LeaseLost:
                raise
            except KrakenError as exc:
                log.warning("takeover: the fence (CancelAllOrdersAfter) failed (attempt %d): %s", attempts, exc)
                self._sleep(min(1.0, self.poll_every))
        nonce = next((s.last_issued for s in self._nonces if s.last_issued is not None), None)
        log.info("takeover: fenced key %s with nonce %s (previous ceiling %d)", self.settings.key_id, nonce, ceiling)
        return {"method": "CancelAllOrdersAfter", "timeout": self.fence_timeout, "nonce": nonce,
                "previous_nonce_ceiling": ceiling, "attempts": attempts}

    def started(self, info: Takeover, store: EngineStore, audit: AuditSink) -> dict[str, Any]:
        """Audit `epoch_started`: the epoch, its holder, the fence and what reconcile found."""
        outcomes: dict[str, str] = {}
        for cl_ord_id in info.unresolved:
            record = store.get_decision(cl_ord_id)
            status = record.status if record is not None else "missing"
            if status == "rejected" and record is not None and \
                    ((record.outcome or {}).get("result") or {}).get("data", {}).get("error_class") == "OrderNotPlaced":
                status = "not sent (fenced)"
            if record is not None and store.resent(cl_ord_id) is not None:  # proven never placed: sent now
                status = f"resent, {status}"  # (execution.resend)
            outcomes[cl_ord_id] = status
        summary = dict(sorted(Counter(outcomes.values()).items()))
        data = {"epoch": info.epoch, "holder": info.holder, "previous": info.previous, "lease_wait_s": info.lease_wait,
                "fence": info.fence, "waited_for_deadlines_s": info.waited_for_deadlines,
                "reconcile": {"summary": summary, "orders": outcomes}}
        audit.append("epoch_started", data=data, sync=True)
        if self.release is not None and self.keeper is not None:
            self.release.start(info.epoch, self.keeper.halt, self._event)
        return data

    def close(self, *, release: bool = True) -> None:
        if self.release is not None:
            self.release.stop()
        if self.keeper is not None:
            self.keeper.stop(release=release)
        else:
            self.session.close()
