"""The Engine: owns the broker, the database, the clock and the services; runs the loops.

The console and the CLI are two front ends on it. Front ends read `engine.state` and
subscribe with `add_listener`; they change things only through engine commands
(halt, resume, refresh ...), never by reaching into services.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import signal
import uuid
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy.exc import SQLAlchemyError

from core.actor import whoami
from core.broker.base import (
    AccountValues,
    Broker,
    BrokerError,
    BrokerEvent,
    BrokerInfo,
    BrokerMessage,
    ConnectionChanged,
    OptionContract,
    PositionsChanged,
)
from core.broker.pacing import Pacer
from core.clock import Clock, ShiftedClock, SystemClock
from core.config import BrokerKind, Settings
from core.db import changes
from core.db.changes import ChangeFeed
from core.db.repos import (
    AuditRepo,
    EquityRepo,
    PositionSnapshotRepo,
    RollRepo,
    StagedOrderRepo,
    SystemStateRepo,
    TradeRepo,
)
from core.db.session import Database, DatabaseError, database_url, error_text
from core.db.tables import EquitySnapshot, StagedOrder
from core.execution.adaptive import AdaptiveOrderExecutor
from core.execution.ledger import RISK_ADDING, OrderLedger
from core.execution.orders import OPEN_STATUSES, READ_ONLY_REASON, OrderExecutor
from core.execution.reconcile import Reconciler, ReconcileReport
from core.execution.staging import Staging
from core.market.calendar import MarketCalendar, SessionInfo, default_calendar
from core.market.earnings import EarningsProvider, EarningsService, make_provider
from core.models import Opportunity, OrderResult, PositionView, RiskDecision
from core.monitoring.assignments import AssignmentDetector
from core.monitoring.exits import ExitManager
from core.monitoring.positions import PositionMonitor
from core.monitoring.rolls import RollManager
from core.notify import Notifier
from core.redaction import redact
from core.risk.governor import RiskGovernor
from core.risk.kill_switch import HaltState, KillSwitch, announce
from core.risk.margin import AccountHealth, MarginChecker

if TYPE_CHECKING:
    from core.analysis.performance import Journal
    from core.analysis.stress import Book
    from core.broker.scenario import SeedTrade
    from core.risk.margin import PostTradeMargin
    from core.screening.pipeline import ScanResult, ScreeningPipeline

log = logging.getLogger("putdesk.engine")


class EngineError(Exception):
    """The engine cannot start; the message is for the operator."""


class ReadOnlyError(EngineError):
    """An order-sending command in a read-only process (PUTDESK_READ_ONLY, --read-only)."""


@dataclass(frozen=True)
class EngineState:
    """Everything a front end shows about the engine, as one immutable snapshot."""

    now: datetime
    broker: BrokerInfo
    halt: HaltState
    account: AccountValues | None = None
    health: AccountHealth | None = None
    account_checked_at: datetime | None = None
    account_error: str = ""
    session: SessionInfo | None = None
    started: bool = False
    last_message: str = ""
    orders_version: int = 0  # bumped whenever a staged order changes
    positions: tuple[PositionView, ...] = ()
    positions_checked_at: datetime | None = None
    rolls_version: int = 0  # bumped whenever a roll proposal changes
    trades_version: int = 0  # bumped whenever a trade changes (another process's, too)

    @property
    def excess_liquidity_ratio(self) -> float | None:
        a = self.account
        # No ratio over a NetLiquidation that is missing, zero or negative.
        if a is None or a.excess_liquidity is None or a.net_liquidation is None \
                or not 0 < a.net_liquidation < float("inf"):
            return None
        return a.excess_liquidity / a.net_liquidation


StateListener = Callable[[EngineState], None]

#: Spec section 7: more than a second between the broker's clock and ours is a warning.
CLOCK_SKEW_WARN_SECONDS = 1.0


class Engine:
    def __init__(
        self,
        settings: Settings,
        broker: Broker,
        db: Database,
        clock: Clock,
        calendar: MarketCalendar | None = None,
        wall_clock: Clock | None = None,
        equity_seed: Sequence[tuple[datetime, float]] = (),
        trade_seed: Sequence[SeedTrade] = (),
        earnings_provider: EarningsProvider | None = None,
    ) -> None:
        """`clock` is market time (the simulator's on a scenario, the world's on the
        paper gateway); `wall_clock` stamps halts, resumes, audit rows and notifications.
        On the paper gateway both are the world's clock (Engine.build), so the demo never
        shows two dates; the in-process simulator (tests) keeps real time for stamps,
        as each such process has a world clock of its own.
        `equity_seed` (a scenario's equity history) is written to an empty database so
        the loss breakers have a week start and a peak from the first minute."""
        self.settings = settings
        #: A watcher's process: monitoring reads only. Every order-sending command refuses
        #: (ReadOnlyError), and the loops never stage, send, close, roll or reconcile.
        self.read_only = settings.app.read_only
        self.process = "engine"  # the front end names it (identify)
        self.broker = broker
        self.db = db
        self.clock = clock
        self.calendar = calendar or default_calendar()
        self.wall_clock = wall_clock or SystemClock()
        self.kill_switch = KillSwitch(db, self.wall_clock)
        self.notifier = Notifier(settings.notify, self.wall_clock)
        self.earnings = EarningsService(db, earnings_provider or make_provider(settings, broker),
                                        clock, settings.earnings.cache_hours)
        self._equity = EquityRepo(db)
        self.audit = AuditRepo(db)
        self.staged = StagedOrderRepo(db)
        self.trades = TradeRepo(db)
        self.state_repo = SystemStateRepo(db)
        self.snapshots = PositionSnapshotRepo(db)
        self.rolls = RollRepo(db)
        self.margin = MarginChecker(broker, settings, clock, self._equity,
                                    on_fallback=self._on_whatif_fallback)
        self.governor = RiskGovernor(settings, broker, self.kill_switch, self.margin,
                                     self.earnings, clock)
        # One pacer for every order-path request, so concurrent orders stay under IBKR's
        # message rate together.
        self.pacer = Pacer(settings.validation.pacing_msgs_per_sec)
        self.adaptive = AdaptiveOrderExecutor(broker, settings.execution, self.pacer,
                                              halted=self._risk_halt)
        #: Every order this process sends is a ledger row it claims under this name.
        self._instance = uuid.uuid4().hex[:6]  # two engines in one process are two senders
        self.ledger = OrderLedger(self.staged, clock, self.wall_clock,
                                  f"{whoami('engine')} [{self._instance}]",
                                  settings.execution.order_lease_seconds)
        self.executor = OrderExecutor(self)
        self.staging = Staging(self)
        self.reconciler = Reconciler(self)
        self.monitor = PositionMonitor(self)
        self.exits = ExitManager(self)
        self.roll_manager = RollManager(self)
        self.assignments = AssignmentDetector(self)
        self._equity_seed = list(equity_seed)
        self._trade_seed = list(trade_seed)
        self._listeners: list[StateListener] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._adoptions: set[asyncio.Task[None]] = set()
        self._stopping = asyncio.Event()
        self._desk = False  # started as the trading desk: it answers the broker's news
        self._reconnecting = False
        self._loop_ref: asyncio.AbstractEventLoop | None = None  # set by open()
        self._changes = ChangeFeed(db)
        #: Own commits publish their versions themselves (a trading desk's subscription,
        #: core/db/changes.py); orders_changed() and rolls_changed() then add none.
        self._hears_own_commits = False
        self._feed_failing = False
        self._state = EngineState(now=clock.now(), broker=broker.info(),
                                  halt=self.kill_switch.state)
        self.kill_switch.add_listener(self._on_halt_changed)
        broker.add_listener(self._on_broker_event)

    # --- construction --------------------------------------------------------

    @classmethod
    def build(
        cls,
        settings: Settings,
        *,
        scenario: Path | None = None,
        clock: Clock | None = None,
        db: Database | None = None,
        client_id: int | None = None,
        spare_client_ids: int = 0,
    ) -> Engine:
        """The engine for these settings: the paper gateway (started if none runs for this
        data directory), the in-process simulator, or IBKR; database from the URL.
        `client_id` overrides PUTDESK_IBKR_CLIENT_ID on the paper gateway (one-shot
        commands take their own, so they never collide with a console)."""
        db = db or Database(database_url(settings))
        calendar = default_calendar()
        broker: Broker
        seed: list[tuple[datetime, float]] = []
        trades: list[SeedTrade] = []
        wall_clock: Clock | None = None
        earnings: EarningsProvider | None = None
        if settings.app.broker is BrokerKind.SIM:
            from core.broker.scenario import demo_scenario_path, load_scenario
            from core.broker.sim import SimBroker

            path = scenario or settings.app.sim_scenario or demo_scenario_path()
            world = load_scenario(path, round(settings.app.scenario_max_mb * 1024 * 1024))
            clock = clock or ShiftedClock(world.now)
            broker = SimBroker(world, clock=clock, calendar=calendar, seed=settings.app.sim_seed,
                               rate=settings.app.sim_rate, label=Path(path).name)
            seed = world.equity_closes()
            trades = world.open_trades()
        elif settings.app.broker is BrokerKind.PAPER:
            from core.broker.ibkr import IbkrBroker
            from core.market.earnings import SimEarnings
            from core.paper.client import GatewayClock, ensure_gateway
            from core.paper.gateway import paper_home
            from core.paper.state import stored_scenario

            info = ensure_gateway(settings, scenario)
            home = paper_home(settings)
            world = stored_scenario(home)  # the running world's own copy
            clock = clock or GatewayClock(home, info.anchor)
            wall_clock = clock  # one clock: the world's, in every process
            ibkr = settings.ibkr.model_copy(update={
                "host": "127.0.0.1", "port": info.port,
                "client_id": settings.ibkr.client_id if client_id is None else client_id})
            broker = IbkrBroker(ibkr, clock,
                                pacing_msgs_per_sec=settings.validation.pacing_msgs_per_sec,
                                spare_client_ids=spare_client_ids)
            seed = world.equity_closes()
            trades = world.open_trades()
            if settings.earnings.provider in ("auto", "scenario"):
                unds = world.underlyings
                earnings = SimEarnings(lambda s: unds[s].earnings if s in unds else None,
                                       lambda: sorted(unds))
        else:
            from core.broker.ibkr import IbkrBroker

            clock = clock or SystemClock()
            broker = IbkrBroker(settings.ibkr, clock,
                                pacing_msgs_per_sec=settings.validation.pacing_msgs_per_sec)
        return cls(settings, broker, db, clock, calendar, wall_clock=wall_clock,
                   equity_seed=seed, trade_seed=trades, earnings_provider=earnings)

    # --- state -----------------------------------------------------------------

    @property
    def state(self) -> EngineState:
        return self._state

    def add_listener(self, listener: StateListener) -> None:
        self._listeners.append(listener)

    def remove_listener(self, listener: StateListener) -> None:
        with contextlib.suppress(ValueError):
            self._listeners.remove(listener)

    def _publish(self, **changes: object) -> None:
        if isinstance(changes.get("last_message"), str):  # on every screen: redacted
            changes["last_message"] = redact(str(changes["last_message"]))
        self._state = replace(self._state, now=self.clock.now(), broker=self.broker.info(),
                              halt=self.kill_switch.state, **changes)  # type: ignore[arg-type]
        for listener in list(self._listeners):
            try:
                listener(self._state)
            except Exception:
                log.exception("engine listener failed")

    def identify(self, process: str) -> None:
        """Name this process in the orders it sends and the halts it makes ('console',
        'cli execute' ...): a ledger row's sender says who follows the order."""
        self.process = process
        self.ledger.sender = f"{whoami(process)} [{self._instance}]"

    def _risk_halt(self) -> str | None:
        halted, why = self.kill_switch.is_halted()
        if not halted:
            return None
        return why or "halted"

    def _on_halt_changed(self, state: HaltState) -> None:
        self._publish(last_message=f"TRADING HALTED: {state.reason}" if state.halted
                      else "Trading active")
        if state.halted:
            # New risk stops at once: every opening order this process works is cancelled
            # now (other processes do the same when the halt reaches them); closes go on.
            stopped = self.adaptive.stop_all(f"Trading halted ({state.reason}): an opening "
                                             "order is cancelled, not repriced",
                                             action="SELL")
            stopped += self.roll_manager.stop_all(f"Trading halted ({state.reason})")
            if stopped:
                log.warning("Halt: cancelling %d working opening order(s): %s", len(stopped),
                            ", ".join(stopped))
            announce(self.notifier, state)

    def _on_broker_event(self, event: BrokerEvent) -> None:
        if isinstance(event, ConnectionChanged):
            text = "Broker connected" if event.connected else f"Broker disconnected: {event.reason}"
            expected = event.connected or self._stopping.is_set()
            (log.info if expected else log.error)(text)
            self._publish(last_message=text)
            if not event.connected and not self._stopping.is_set():
                self._spawn(self._reconnect())
        elif isinstance(event, BrokerMessage) and event.severity != "INFO":
            self._publish(last_message=f"Broker {event.code or ''}: {event.message}".strip())
        elif isinstance(event, PositionsChanged):
            # Expiry, assignment or an order elsewhere: the trading desk looks at the book
            # again now. A one-shot command does not: its look would alert and answer
            # assignments beside the desk's.
            self._publish(last_message=f"Positions changed: {event.reason}")
            if self._desk and not self._stopping.is_set():
                self._spawn(self._first_look())

    # --- lifecycle -------------------------------------------------------------

    async def open(self) -> None:
        """Upgrade the database, load the halt flag, seed the equity history: all a
        one-shot command needs before it connects."""
        self._loop_ref = asyncio.get_running_loop()
        try:
            await asyncio.to_thread(self.db.upgrade)
        except DatabaseError as exc:  # it names the URL already: say it once
            url = self.db.redacted_url
            cause = str(exc).removeprefix(f"Database {url}: ")
            raise EngineError(f"Database {url} unusable: {cause}") from exc
        except Exception as exc:
            raise EngineError(f"Database {self.db.redacted_url} unusable: {exc}") from exc
        await asyncio.to_thread(self.kill_switch.sync)
        if self._equity_seed:
            await asyncio.to_thread(self._seed_equity)
        if self._trade_seed:
            await asyncio.to_thread(self._seed_trades)

    async def start(self, *, trading_desk: bool = True) -> None:
        """open(), connect, start the loops. `trading_desk=False` (a one-shot command
        that sends orders) runs only what its orders need: the halt sync, the ledger
        heartbeat and the reconnect; no open scheduler, monitor cycle or account loop."""
        await self.open()
        self._desk = trading_desk
        self._publish(session=self.calendar.session_at(self.clock.now()))
        await self._connect_once()
        if not self.broker.connected:
            self._spawn(self._reconnect())
        self._spawn(self._loop(self.settings.app.kill_switch_sync_seconds, self.sync_halt))
        if trading_desk:
            self._spawn(self._loop(1.0, self.tick))
            # Other processes' orders, fills, trades and roll decisions reach the screens
            # within a sync, as their halts do.
            await self.watch_changes()  # the baseline: what is on screen now is current
            changes.subscribe(self.db.engine, self._changed_here)  # own changes: at once
            self._hears_own_commits = True
            self._spawn(self._loop(self.settings.app.kill_switch_sync_seconds,
                                   self.watch_changes))
            # Market-time cadences follow a sped-up world (the paper gateway's --speed): a
            # 15-minute monitor runs every 1.5 s at x600, never more often than once a
            # second.
            speed = float(getattr(self.clock, "speed", 1.0))

            def paced(minutes: float) -> float:
                return minutes * 60 if speed <= 1 else max(1.0, minutes * 60 / speed)

            self._spawn(self._loop(paced(self.settings.risk.account_health_interval_minutes),
                                   self.refresh_account))
            self._spawn(self._loop(paced(self.settings.monitoring.interval_minutes),
                                   self.monitor_cycle))
        if not self.read_only:
            self._spawn(self._loop(self.settings.execution.order_lease_seconds / 3,
                                   self.follow_orders))
        if self.broker.connected and trading_desk:
            await self._first_look()
        self._publish(started=True)

    async def _first_look(self) -> None:
        """Positions on screen at start (no exits: those wait for the monitor's cycle)."""
        try:
            await self.monitor_cycle(exits=False)
        except Exception:
            log.exception("first position check failed")

    def _seed_trades(self) -> None:
        """The scenario's open puts become trades (with entry snapshots) once, in a
        database that has no trades at all, so the monitor has entries to measure
        against. A database with any trade is never seeded again: a trade closed since
        must not come back as OPEN when a later command starts."""
        from datetime import time as time_of_day

        from core.clock import NEW_YORK
        from core.db.tables import Trade, TradeEntrySnapshot
        from core.market.sectors import get_sector

        if self.trades.any():
            return
        added = 0
        for s in self._trade_seed:
            c = s.contract
            opened = s.opened or self.clock.now().date()
            when = datetime.combine(opened, time_of_day(10, 0), NEW_YORK)
            trade = Trade(symbol=c.symbol, right=c.right, strike=c.strike,
                          expiration=c.expiration, contracts=abs(s.quantity),
                          entry_price=s.avg_price, entry_time=when, sector=get_sector(c.symbol),
                          roll_count=s.roll_count, created_at=when, updated_at=when)
            self.trades.record_entry(trade, TradeEntrySnapshot(
                trade_id=trade.id, underlying_price=s.underlying_at_entry,
                sector=trade.sector, captured_at=when))
            added += 1
        if added:
            log.info("Seeded %d open trades from the scenario", added)

    def _seed_equity(self) -> None:
        account = self.broker.info().account_id
        if self._equity.has_history(account):
            return
        for moment, nlv in self._equity_seed:
            self._equity.record(moment, nlv, source="scenario", account=account)
        log.info("Seeded %d equity history points from the scenario", len(self._equity_seed))

    async def stop(self, reason: str = "PutDesk process stopping") -> None:
        """Stop the loops and disconnect. Every order this process still works is
        cancelled first (and its outcome recorded): none is left with nobody following."""
        if not self._stopping.is_set():
            await self.cancel_working(reason)
        self._stopping.set()
        changes.unsubscribe(self.db.engine, self._changed_here)
        self._hears_own_commits = False
        await self.notifier.drain(within=2.0)
        await self.notifier.close()
        with contextlib.suppress(Exception):
            await self.earnings.close()
        for task in [*self._tasks, *self._adoptions]:
            task.cancel()
        for task in [*self._tasks, *self._adoptions]:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()
        with contextlib.suppress(Exception):
            await self.broker.disconnect()
        self.db.dispose()

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coro)
        task.set_name(getattr(coro, "__qualname__", "engine task"))
        self._tasks.append(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        """A spawned task's failure is logged (never "exception was never retrieved");
        a database failure halts new orders like any other."""
        if task in self._tasks:
            self._tasks.remove(task)
        exc = None if task.cancelled() else task.exception()
        if isinstance(exc, SQLAlchemyError):
            self.database_fault(exc, f"running {task.get_name()}")
        elif exc is not None:
            log.error("engine task %s failed", task.get_name(), exc_info=exc)

    async def _loop(self, every: float, step: Callable[[], object]) -> None:
        while not self._stopping.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), timeout=every)
            if self._stopping.is_set():
                return
            try:
                result = step()
                if asyncio.iscoroutine(result):
                    await result
            except SQLAlchemyError as exc:
                self.database_fault(exc, f"running {getattr(step, '__name__', step)}")
            except Exception:
                log.exception("engine loop step %s failed", getattr(step, "__name__", step))

    async def _connect_once(self) -> bool:
        try:
            await self.broker.connect()
        except BrokerError as exc:
            log.error("Broker connection failed: %s", exc)
            self._publish(last_message=f"Broker connection failed: {exc}")
            return False
        await self._check_clock()
        try:
            await self.refresh_account()
            if not self.read_only:  # reconciling rewrites order records: the trading job
                await self.reconcile()
                await self.adopt_orphans()
        except SQLAlchemyError as exc:
            # Connected, not reconciled: halted until the database answers, then reconciled
            # (sync_halt). The reconnect itself is done.
            self.database_fault(exc, "reconciling after the connect")
        return True

    async def _check_clock(self) -> float | None:
        """Spec section 7 (clock sync): warn when the broker's clock and ours differ by
        more than CLOCK_SKEW_WARN_SECONDS. Market sessions, expiries and the open
        scheduler all run on our clock, so a skew is an operator problem worth a WARNING.
        Returns the skew in seconds (broker minus ours), None if the broker cannot say."""
        try:
            broker_now = await asyncio.wait_for(self.broker.current_time(), timeout=5.0)
        except (BrokerError, TimeoutError) as exc:
            log.warning("Clock check skipped: the broker did not report its time (%s)", exc)
            return None
        # IBKR reports whole seconds (truncated): compare against the middle of that second.
        skew = (broker_now - self.clock.now()).total_seconds()
        if broker_now.microsecond == 0:
            skew += 0.5
        if abs(skew) > CLOCK_SKEW_WARN_SECONDS:
            text = (f"Clock skew: broker time differs from local time by {skew:+.1f} s; "
                    "check NTP on this machine")
            self.alert("WARNING", text, kind="clock_skew")
        return skew

    async def _reconnect(self) -> None:
        """Reconnect with exponential backoff and jitter until connected or stopped."""
        if self._reconnecting:
            return
        self._reconnecting = True
        cap = self.settings.ibkr.reconnect_max_seconds
        delay = min(1.0, cap)
        try:
            while not self.broker.connected and not self._stopping.is_set():
                wait = delay * (0.8 + 0.4 * random.random())
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), timeout=wait)
                    return
                if await self._connect_once():
                    return
                delay = min(delay * 2, cap)
        finally:
            self._reconnecting = False

    # --- orders this process follows ------------------------------------------------

    async def cancel_working(self, reason: str, within: float = 10.0) -> list[str]:
        """Cancel every order this process is working (shutdown, a signal) and wait, up
        to `within` seconds, for their outcomes to be recorded."""
        refs = self.adaptive.stop_all(reason) + self.roll_manager.stop_all(reason)
        if not refs:
            return []
        log.warning("Cancelling %d working order(s) before stopping: %s", len(refs),
                    ", ".join(refs))
        try:
            await asyncio.wait_for(asyncio.gather(self.adaptive.idle.wait(),
                                                  self.roll_manager.idle.wait(),
                                                  self.exits.settled()), within)
        except TimeoutError:
            log.error("Orders %s: cancels not confirmed within %g s; the next PutDesk "
                      "process adopts them when their claim runs out",
                      ", ".join(self.adaptive.working() + self.roll_manager.working()), within)
        return refs

    async def follow_orders(self) -> None:
        """The ledger heartbeat: renew the claims of the orders this process follows, act
        on cancels other processes asked for, and adopt orders whose sender is gone."""
        rows = await asyncio.to_thread(self.ledger.heartbeat)
        for row in rows:
            why = f"cancelled by {row.cancel_requested}"
            if row.cancel_requested and (self.adaptive.stop(row.order_ref, why)
                                         or self.roll_manager.stop(row.order_ref, why)):
                log.warning("Order %s: cancel asked by %s", row.order_ref,
                            row.cancel_requested)
        if self.broker.connected:
            await self.adopt_orphans()

    async def adopt_orphans(self) -> list[str]:
        """Orders whose sender stopped renewing its claim (killed, crashed, its machine
        lost): take each over (one adopter wins) and follow it to its end."""
        if self.read_only or not self.broker.connected:
            return []
        from core.execution.adopt import follow_adopted

        adopted = []
        for row in await asyncio.to_thread(self.ledger.orphans):
            if await asyncio.to_thread(self.ledger.take_over, row):
                adopted.append(row.order_ref)
                await asyncio.to_thread(
                    self.audit_event, "order_adopted",
                    f"{row.order_ref} ({row.kind}) adopted from {row.sender or 'unknown'}: "
                    "its sender is gone", "WARNING", self.ledger.sender, row.symbol)
                task = asyncio.ensure_future(follow_adopted(self, row))
                task.set_name(f"adopted {row.order_ref}")
                self._adoptions.add(task)
                task.add_done_callback(self._adoption_done)
        return adopted

    def _adoption_done(self, task: asyncio.Task[None]) -> None:
        self._adoptions.discard(task)
        self._task_done(task)

    async def adoptions_settled(self) -> None:
        """Wait until every adopted order is followed to its end (a one-shot command
        that adopted orders does not exit before)."""
        while self._adoptions:
            await asyncio.gather(*list(self._adoptions), return_exceptions=True)

    # --- periodic steps --------------------------------------------------------

    async def sync_halt(self) -> HaltState:
        """Re-read the kill switch so halts from other processes arrive within seconds.
        When it lifts a database-fault halt, reconcile: what happened at the broker
        while the database was away is written now."""
        held = self.kill_switch.held
        state = await asyncio.to_thread(self.kill_switch.sync)
        if held and not self.kill_switch.held and self.broker.connected and not self.read_only:
            await self.reconcile()
        return state

    async def watch_changes(self) -> set[str]:
        """One small query (core/db/changes.py): when any process changed the order
        ledger, the trades or the roll proposals since the last look, the screens that
        show them are told (a new version); otherwise nothing is published."""
        try:
            changed = await asyncio.to_thread(self._changes.changed)
        except SQLAlchemyError as exc:
            # Not a fault of its own: the kill switch's sync reads the same database at
            # the same pace and halts on it. The feed waits, and its next look compares
            # with what was seen before, so nothing changed meanwhile is missed.
            if not self._feed_failing:
                log.warning("Change feed unreadable (%s): screens may lag other processes "
                            "until the database answers", error_text(exc))
            self._feed_failing = True
            return set()
        self._feed_failing = False
        self._bump_versions(changed)
        return changed

    def _changed_here(self, tokens: dict[str, str]) -> None:
        """A write of this process committed (any thread): its screens hear at once, and
        the feed's next look does not announce it again."""
        loop = self._loop_ref
        if loop is None:
            return
        feeds = self._changes.committed(tokens)
        if feeds:
            with contextlib.suppress(RuntimeError):  # the loop has closed
                loop.call_soon_threadsafe(self._bump_versions, feeds)

    def _bump_versions(self, feeds: set[str]) -> None:
        versions = {"orders": "orders_version", "rolls": "rolls_version",
                    "trades": "trades_version"}
        bumps = {versions[f]: getattr(self._state, versions[f]) + 1 for f in feeds
                 if f in versions}
        if bumps:
            self._publish(**bumps)

    async def tick(self) -> None:
        """Once a second: move simulated time and keep the market session current."""
        process_time = getattr(self.broker, "process_time", None)
        if callable(process_time):
            process_time()
        session = self.calendar.session_at(self.clock.now())
        self._publish(session=session)
        if (self.settings.execution.auto_execute and session.allows_orders and not self.read_only
                and self.broker.connected and not self.staging.busy):
            self._spawn(self.staging.scheduler_step())

    async def refresh_account(self) -> AccountValues | None:
        """Account health (spec 4.4): one account request, cached, recorded as equity."""
        if not self.broker.connected:
            return None
        try:
            health = await self.margin.check_account_health()
        except BrokerError as exc:
            log.warning("Account health check failed: %s", exc)
            self._publish(account_error=str(exc))
            return None
        if health.status in ("warning", "danger"):
            ratio = health.excess_ratio or 0.0
            log.warning("Account health %s: ExcessLiquidity %.1f%% of NLV", health.status.upper(),
                        ratio * 100)
        self._publish(account=health.values, health=health, account_checked_at=health.checked_at,
                      account_error="")
        return health.values

    # --- commands --------------------------------------------------------------

    def refuse_if_read_only(self, what: str) -> None:
        """Every order-sending command calls this first: a read-only process sends nothing."""
        if self.read_only:
            log.warning("%s refused: this process is read-only", what)
            raise ReadOnlyError(f"{READ_ONLY_REASON} ({what} refused)")

    def screening(self) -> ScreeningPipeline:
        from core.screening.pipeline import ScreeningPipeline

        return ScreeningPipeline(self.broker, self.earnings, self.settings, self.clock)

    async def record_scan(self, result: ScanResult, actor: str | None = None) -> None:
        """A screening result is an audit event (counts, top candidates, rejections by
        stage), whichever front end ran it."""
        stages: dict[str, int] = {}
        for r in result.rejected:
            stages[r.stage] = stages.get(r.stage, 0) + 1
        text = (f"Scan {result.source or '?'}: {len(result.accepted)} accepted, "
                f"{len(result.rejected)} rejected")
        data = {"source": result.source, "accepted": len(result.accepted),
                "rejected_by_stage": stages, "warnings": result.warnings,
                "top": [f"{c.symbol} {c.expiration} {c.strike:g}P score {c.score:.3f}"
                        for c in sorted(result.accepted, key=lambda c: -(c.score or 0))[:10]]}
        await asyncio.to_thread(self.audit_event, "scan", text, "INFO",
                                actor or whoami("engine"), None, data)

    async def check(self, opportunity: Opportunity, *, whatif: bool = True,
                    actor: str | None = None, revalidating: str | None = None) -> RiskDecision:
        """Size and run the pre-trade checks; the decision is an audit event. Orders on
        their way count as part of the book: every sent one, and every staged one for a
        new trade. `revalidating` (a staged order's id, re-checked before it is sent)
        counts neither itself nor the staged orders queued after it: of two staged
        orders for one contract (two processes staging at once) the earlier is sent and
        the later is the duplicate, even when both are re-checked in one batch."""
        staged = await asyncio.to_thread(self.staged.list, OPEN_STATUSES, RISK_ADDING)
        own = next((o for o in staged if o.id == revalidating), None)

        def counted(o: StagedOrder) -> bool:
            if own is None or o.status != "STAGED":
                return o is not own
            return (o.created_at, o.id) < (own.created_at, own.id)

        pending = [OptionContract(o.symbol, o.expiration, o.strike, "P") for o in staged
                   if counted(o) and o.expiration is not None and o.strike is not None]
        own_ref = own.order_ref if own is not None else None
        decision = await self.governor.pre_trade_check(opportunity, whatif=whatif,
                                                       pending=pending, exclude_ref=own_ref)
        if self.margin.health is not None and self.margin.health is not self._state.health:
            h = self.margin.health
            self._publish(account=h.values, health=h, account_checked_at=h.checked_at)
        first = decision.rejected_by
        if first is not None and first.name in ("margin", "excess_liquidity"):
            self.alert("CRITICAL", f"Margin limit rejection: {opportunity.label}: "
                       f"{first.reason}", "margin_rejection", symbol=opportunity.symbol)
        await asyncio.to_thread(self.audit_event, "risk_decision",
                                f"{decision.opportunity.label} x{decision.opportunity.contracts}:"
                                f" {decision.summary}",
                                "INFO" if decision.approved else "WARNING",
                                actor or whoami("engine"), opportunity.symbol,
                                decision.as_dict())
        return decision

    async def stage(self, decision: RiskDecision, actor: str | None = None) -> StagedOrder:
        """Keep an approved decision as an order to send (at the open, or on command)."""
        self.refuse_if_read_only("staging")
        return await self.staging.stage(decision, actor or whoami("engine"))

    async def execute(self, ids: list[str] | None = None, *, dry_run: bool | None = None
                      ) -> list[tuple[StagedOrder, OrderResult]]:
        """Send staged orders now (all, or `ids`), each re-validated first."""
        self.refuse_if_read_only("sending orders")
        return await self.staging.execute(ids, dry_run=dry_run)

    async def cancel_staged(self, staged_id: str, actor: str | None = None) -> StagedOrder:
        self.refuse_if_read_only("cancelling an order")
        return await self.staging.cancel(staged_id, actor or whoami("engine"))

    async def reconcile(self) -> ReconcileReport:
        self.refuse_if_read_only("reconciling order records")
        return await self.reconciler.run()

    async def verify_post_trade_margin(self) -> PostTradeMargin:
        """Spec 2.1B: after fills, poll the account; ExcessLiquidity below 10% of NLV (or
        an account that cannot be read) halts trading."""
        result = await self.margin.verify_post_trade_margin()
        health = self.margin.health
        if health is not None:
            self._publish(account=health.values, health=health,
                          account_checked_at=health.checked_at)
        if not result.is_healthy:
            reason = f"Post-trade margin danger: {result.warning}"
            await asyncio.to_thread(self.halt, reason, "post-trade margin check")
            self.alert("EMERGENCY", reason, "post_trade_margin")
        elif result.warning:
            self.alert("WARNING", f"Post-trade margin low: {result.warning}",
                       "post_trade_margin")
        return result

    def alert(self, severity: str, message: str, kind: str = "alert",
              symbol: str | None = None, data: dict[str, Any] | None = None) -> None:
        """The notifier hook: logged, an audit event, and on the console's status line."""
        level = getattr(logging, severity if severity != "EMERGENCY" else "CRITICAL",
                        logging.WARNING)
        log.log(level, "%s: %s", severity, message)
        self.audit_event(kind, message, severity, "engine", symbol, data)
        self.notifier.notify(severity, kind, message, symbol, data)
        self._publish(last_message=f"{severity}: {message}")

    async def stress_book(self) -> Book:
        """The book as the stress test needs it: positions, stock, account, VIX. Missing
        account figures or underlying prices stop it (no stress figures on a guess); a
        missing implied vol is assumed and said in the book's notes."""
        from core.analysis.stress import DEFAULT_IV, Book, BookLine
        from core.clock import new_york
        from core.risk.margin import clean

        views = await self.monitor.refresh(notify=False)
        health = self.margin.health or await self.margin.account_health()
        if health is None:
            raise EngineError("Account values unavailable: cannot stress the book")
        a = health.values
        nlv, maint = clean(a.net_liquidation), clean(a.maint_margin_req)
        elv = clean(a.equity_with_loan)
        if nlv is None or maint is None or elv is None:
            raise EngineError("NetLiquidation, EquityWithLoan or MaintMarginReq not reported: "
                              "cannot stress the book")
        unpriced = [v.position_id for v in views if v.underlying_price is None]
        if unpriced:
            raise EngineError(f"No underlying price for {', '.join(unpriced)}: cannot stress "
                              "the book")
        lines, notes = [], []
        for v in views:
            iv = v.iv
            if iv is None:
                try:
                    iv = await self.broker.underlying_iv(v.symbol)
                except BrokerError:
                    iv = None
                if iv is None:
                    notes.append(f"{v.position_id}: no implied vol from the broker, "
                                 f"{DEFAULT_IV:.0%} assumed")
            assert v.underlying_price is not None
            lines.append(BookLine(v.symbol, v.contract.strike, v.contract.expiration,
                                  v.contracts, v.underlying_price, iv, v.mark))
        stocks = []
        for p in self.monitor.stocks:
            price = await self.broker.underlying_price(p.symbol)
            if price is None:
                notes.append(f"{p.symbol} shares: no price, valued at cost {p.avg_cost:.2f}")
                price = p.avg_cost
            stocks.append((p.symbol, p.quantity, price))
        for note in notes:
            log.warning("Stress test: %s", note)
        return Book(tuple(lines), tuple(stocks), nlv, elv, maint,
                    new_york(self.clock.now()).date(), await self.governor.vix(),
                    rate=self.settings.stress.risk_free_rate, notes=tuple(notes))

    async def journal(self) -> Journal:
        from core.analysis.performance import build_journal

        def build() -> Journal:
            return build_journal(self.trades.all(), self.trades.entry_snapshot,
                                 self._equity.history(account=self.broker.info().account_id))

        return await asyncio.to_thread(build)

    def rolls_changed(self) -> None:
        """This process wrote roll proposals: the screens reload them (once: a desk's
        own commit has published already)."""
        if not self._hears_own_commits:
            self._publish(rolls_version=self._state.rolls_version + 1)

    async def monitor_cycle(self, only: str | None = None, exits: bool = True
                            ) -> tuple[PositionView, ...]:
        """Positions with alerts and snapshots; then exits and roll proposals (spec 4.2,
        5.3) when the market takes orders; then the assignment check (5.4)."""
        views = await self.monitor.refresh(notify=not self.read_only)
        self._publish(positions=views, positions_checked_at=self.clock.now())
        if self.read_only:
            # A watcher only looks: exits, roll proposals and assignment responses act (and
            # alert), and the trading process does that.
            return views
        session = self.calendar.session_at(self.clock.now())
        if exits and session.allows_orders:
            await self._run_exits([v for v in views if only is None or v.position_id == only])
        await self.assignments.check_for_assignments()
        return views

    async def _run_exits(self, views: list[PositionView]) -> None:
        today = self.clock.now() - timedelta(hours=20)
        stale = self.clock.now() - timedelta(minutes=2 * self.settings.monitoring.interval_minutes)
        for v in views:
            proposals = await asyncio.to_thread(self.rolls.for_position, v.position_id)
            for p in proposals:
                if p.status == "PENDING" and p.created_at < stale:
                    # Its quotes are old: a fresh evaluation replaces it.
                    await asyncio.to_thread(self.rolls.decide, p.id, "PENDING", "EXPIRED",
                                            "monitor", self.clock.now())
                    p.status = "EXPIRED"
                    self.rolls_changed()
            pending = any(p.status == "PENDING" for p in proposals)
            rejected = any(p.status == "REJECTED" and p.updated_at >= today for p in proposals)
            decision = self.exits.evaluate(v, roll_pending=pending, roll_rejected=rejected)
            if decision.action == "roll":
                proposal, why = await self.roll_manager.propose(v)
                if proposal is not None:
                    continue
                loss = v.loss_multiple or 0.0
                decision = replace(decision, action="close", rule="stop_approach",
                                   reason=f"Loss {loss:.0%} of premium approaches the stop; "
                                          f"{why}")
            if decision.action == "wait" and decision.rule == "stop_loss":
                self.alert("CRITICAL", f"{v.position_id}: {decision.reason}", "exit",
                           symbol=v.symbol)
            if decision.action != "close":
                continue
            if self.kill_switch.is_halted()[0]:
                log.warning("Exit %s (%s) not sent: trading halted", v.position_id,
                            decision.reason)
                continue
            hold = self.exits.zero_bid_hold(v, decision.rule)
            if hold is not None:
                log.info("Exit %s (%s): %s", v.position_id, decision.reason, hold)
                continue
            self.exits.start_close(v, f"{decision.rule}: {decision.reason}", "exit manager")

    def orders_changed(self, message: str = "") -> None:
        """This process wrote the order ledger (with a message for the status line): the
        screens reload it (once: a desk's own commit has published already)."""
        changes: dict[str, object] = {}
        if not self._hears_own_commits:
            changes["orders_version"] = self._state.orders_version + 1
        if message:
            changes["last_message"] = message
        if changes:
            self._publish(**changes)

    async def equity_history(self, since: datetime | None = None) -> list[EquitySnapshot]:
        """This account's equity history (one database may hold several accounts')."""
        return await asyncio.to_thread(self._equity.history, since,
                                       self.broker.info().account_id)

    def audit_event(self, kind: str, message: str, severity: str, actor: str,
               symbol: str | None = None, data: dict[str, Any] | None = None) -> None:
        try:
            self.audit.record(kind, message, ts=self.wall_clock.now(), severity=severity,
                              actor=actor, source="engine", symbol=symbol, data=data)
        except SQLAlchemyError as exc:
            log.error("could not write the audit event %s: %s", kind, error_text(exc))
            self.database_fault(exc, f"writing the audit event {kind}")
        except Exception:
            log.exception("could not write the audit event %s", kind)

    def database_fault(self, exc: BaseException, doing: str) -> None:
        """The database failed (locked by another process, unreachable): no new orders
        until it answers. Halted in memory (it cannot take a halt row); the kill switch's
        sync lifts it once the database takes a write again. Safe from any thread."""
        reason = f"Database unavailable: {error_text(exc)}"
        if self.kill_switch.held:
            return
        log.error("%s (while %s): new orders halted until it answers", reason, doing)
        try:
            running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:  # a worker thread (to_thread)
            running = None
        loop = self._loop_ref
        if loop is None or running is loop:
            self.kill_switch.hold(reason)
            return
        # The halt's listeners (screen, notifier) belong on the engine's loop.
        with contextlib.suppress(RuntimeError):  # the loop has closed: nothing trades
            loop.call_soon_threadsafe(self.kill_switch.hold, reason)

    def _on_whatif_fallback(self, text: str) -> None:
        self.alert("WARNING", text, "whatif_fallback")

    def halt(self, reason: str, actor: str | None = None) -> HaltState:
        return self.kill_switch.halt(reason, actor or whoami("engine"))

    def resume(self, actor: str | None = None) -> HaltState:
        self.refuse_if_read_only("resuming trading")
        return self.kill_switch.resume(actor or whoami("engine"))

    def install_signal_handlers(self, on_signal: Callable[[str], None] | None = None, *,
                                halt: bool = True,
                                signals: Sequence[signal.Signals] = (signal.SIGTERM,
                                                                     signal.SIGHUP)) -> None:
        """On these signals: halt trading, persisted (`halt`: the trading console; a
        watcher or a one-shot command does not halt the book), stop every order this
        process works (they are cancelled at the broker before it exits: none is left
        working with nobody following it), then call `on_signal` so the front end shuts
        down (and awaits stop(), which waits for those cancels)."""
        loop = asyncio.get_running_loop()
        for sig in signals:
            loop.add_signal_handler(sig, self._on_signal, sig.name, on_signal, halt)

    def _on_signal(self, name: str, on_signal: Callable[[str], None] | None,
                   halt: bool = True) -> None:
        if halt:
            try:
                self.halt(f"Signal {name} received", whoami(f"signal to {self.process}"))
            except Exception:
                log.exception("could not persist the halt on %s", name)
        refs = self.adaptive.stop_all(f"Signal {name}: PutDesk stopping") + \
            self.roll_manager.stop_all(f"Signal {name}: PutDesk stopping")
        if refs:
            log.warning("Signal %s: cancelling working order(s) %s before exiting", name,
                        ", ".join(refs))
        if on_signal is not None:
            on_signal(name)
