"""The paper gateway: the simulated IBKR account served as a TWS on 127.0.0.1.

One gateway per data directory. Its files live beside the database:

- `paper-gateway.lock`: held (flock) by the running gateway for its whole life, so a
  second one cannot start and a stale port file is recognised as stale;
- `paper-gateway.json`: its port, pid, scenario and world-clock anchor, read by every
  PutDesk process that connects (and by their clocks: one world time for all);
- `paper-world.json`: the world itself, written after every change (see state.py).

The port is the operator's (`--port N`) or any free one, so two data directories never
share a world and parallel test runs never collide.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from core.clock import NEW_YORK
from core.paper import state
from core.paper.clock import Anchor, WorldClock
from core.paper.server import TwsPeer

if TYPE_CHECKING:
    from core.broker.base import BrokerEvent
    from core.broker.scenario import Scenario
    from core.broker.sim import SimBroker
    from core.config import Settings

log = logging.getLogger("core.paper")

LOCK_FILE = "paper-gateway.lock"
INFO_FILE = "paper-gateway.json"
#: How often the world moves, orders work and quotes go out (wall seconds).
STEP_SECONDS = 0.5
#: World time skipped over: from this long after the close to this long before the open.
AFTER_CLOSE = timedelta(minutes=20)
BEFORE_OPEN = timedelta(minutes=10)


class GatewayError(Exception):
    """The paper gateway cannot start or cannot be reached; the message says why."""


class PortInUse(GatewayError):
    pass


class GatewayRunning(GatewayError):
    pass


def paper_home(settings: Settings) -> Path:
    """The data directory the gateway belongs to: the SQLite database's folder, or the
    user data directory when the database is elsewhere (PostgreSQL)."""
    from sqlalchemy.engine import make_url

    from core.db.session import database_url

    url = make_url(database_url(settings))
    if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
        return Path(url.database).resolve().parent
    from platformdirs import user_data_dir

    home = Path(user_data_dir("putdesk", appauthor=False))
    home.mkdir(parents=True, exist_ok=True, mode=0o700)
    return home


@dataclass(frozen=True)
class GatewayInfo:
    port: int
    pid: int
    scenario: str
    anchor: Anchor
    digest: str = ""  # the scenario's content (client.scenario_digest)

    def as_dict(self) -> dict[str, Any]:
        return {"port": self.port, "pid": self.pid, "scenario": self.scenario,
                "digest": self.digest, "clock": self.anchor.as_dict()}

    @classmethod
    def read(cls, home: Path) -> GatewayInfo | None:
        """The running gateway's file, or None when no gateway holds the lock."""
        if not gateway_running(home):
            return None
        try:
            data = json.loads((home / INFO_FILE).read_text())
            return cls(int(data["port"]), int(data["pid"]), str(data["scenario"]),
                       Anchor.from_dict(data["clock"]), str(data.get("digest", "")))
        except (OSError, ValueError, KeyError, TypeError):
            return None  # being written right now: the caller asks again


def gateway_running(home: Path) -> bool:
    """Whether a gateway holds this data directory's lock (no process races: flock)."""
    path = home / LOCK_FILE
    if not path.exists():
        return False
    with open(path, "a") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(fh, fcntl.LOCK_UN)
        return False


@dataclass(frozen=True)
class GatewayStatus:
    world: datetime
    speed: float
    clients: int
    working_orders: int
    port: int

    def line(self) -> str:
        ny = self.world.astimezone(NEW_YORK)
        return (f"paper gateway :{self.port}  world {ny:%Y-%m-%d %H:%M:%S %Z}  "
                f"speed x{self.speed:g}  clients {self.clients}  "
                f"working orders {self.working_orders}")


class PaperGateway:
    """Owns the lock, the simulator, the TWS server, the world's heartbeat and its
    persistence."""

    def __init__(self, home: Path, sim: SimBroker, clock: WorldClock, scenario_path: str,
                 scenario: Scenario, port: int = 0) -> None:
        self.home = home
        self.sim = sim
        self.clock = clock
        self.scenario = scenario_path
        self._scenario = scenario
        self.peer = TwsPeer(sim, port=port)
        self.peer.record = False
        self._lock: IO[str] | None = None
        self._last_anchor: Anchor | None = None
        self._save_pending = False
        self._walked_to: datetime | None = None
        self.stopped_because: str | None = None  # set when it stops of its own accord

    @property
    def port(self) -> int:
        return self.peer.port

    # --- lifecycle ----------------------------------------------------------------

    def acquire(self) -> None:
        """Take the data directory's lock: GatewayRunning if another gateway has it."""
        self._lock = _take_lock(self.home)

    async def start(self) -> None:
        if self._lock is None:
            self.acquire()
        self.sim.add_listener(self._on_sim_event)
        try:
            await self.peer.start()
        except OSError as exc:
            self.release()
            if exc.errno == errno.EADDRINUSE:
                raise PortInUse(
                    f"Port {self.peer.port} on 127.0.0.1 is held by another program (not a "
                    f"PutDesk paper gateway for {self.home}); choose another with "
                    "--port N, or leave --port out to take a free one") from None
            raise GatewayError(f"Cannot listen on 127.0.0.1:{self.peer.port}: {exc}") from None
        self._write_info()
        log.info("Paper gateway for %s listening on 127.0.0.1:%d", self.home, self.port)

    async def stop(self) -> None:
        if self.orphaned() is None:
            self.save()
        await self.peer.stop()
        self.sim.remove_listener(self._on_sim_event)
        with contextlib.suppress(OSError):
            (self.home / INFO_FILE).unlink()
        self.release()

    def orphaned(self) -> str | None:
        """Why this gateway's data directory is no longer its own (deleted, or its lock
        file replaced), or None. No PutDesk process can find an orphaned gateway (its
        info file is gone with the directory), so it would serve nobody, forever."""
        if self._lock is None:
            return None
        try:
            here = os.stat(self.home / LOCK_FILE)
        except OSError:
            return f"its data directory {self.home} (or its lock file) is gone"
        held = os.fstat(self._lock.fileno())
        if (here.st_dev, here.st_ino) != (held.st_dev, held.st_ino):
            return f"the lock file in {self.home} was replaced"
        return None

    def release(self) -> None:
        if self._lock is not None:
            fcntl.flock(self._lock, fcntl.LOCK_UN)
            self._lock.close()
            self._lock = None

    def _write_info(self) -> None:
        from core.paper.client import scenario_digest

        anchor = self.clock.anchor
        info = GatewayInfo(self.port, os.getpid(), self.scenario, anchor,
                           scenario_digest(self._scenario))
        tmp = self.home / (INFO_FILE + ".tmp")
        tmp.write_text(json.dumps(info.as_dict()))
        os.replace(tmp, self.home / INFO_FILE)
        self._last_anchor = anchor

    # --- persistence ---------------------------------------------------------------

    def save(self, durable: bool = True) -> None:
        """Write the world now (atomically; `durable` also waits for the disk, as after
        an order, a fill or an expiry)."""
        self._save_pending = False
        doc = state.world_document(self.peer, self.scenario, self._scenario, self.clock.now())
        state.save(self.home, doc, durable)

    def _on_sim_event(self, event: BrokerEvent) -> None:
        # An order, a fill, an expiry: stored within this turn of the loop (the server's
        # own listener has run first, so its view of the order is in the document).
        if not self._save_pending:
            self._save_pending = True
            asyncio.get_running_loop().call_soon(self._save_soon)

    def _save_soon(self) -> None:
        if self._save_pending:
            try:
                self.save()
            except OSError:
                log.exception("paper gateway: the world could not be saved")

    # --- the world's heartbeat ------------------------------------------------------

    async def step(self) -> None:
        """Skip closed hours, move the market, settle and work orders, save, push quotes."""
        self._skip_closed()
        self._move_market()
        self.sim.process_time()
        if self.clock.anchor != self._last_anchor:
            self._write_info()
        self.save(durable=False)  # the clock and prices moved: no fsync twice a second
        await self.peer.push_quotes()

    def _move_market(self) -> None:
        """The session's share of world time since the last step, as a random-walk step
        (a trading day is 1/252 of a year: nights and weekends carry no variance)."""
        now = self.clock.now()
        last, self._walked_to = self._walked_to, now
        if last is None or now <= last:
            return
        hours = self.sim.calendar.open_close(now.astimezone(NEW_YORK).date())
        if hours is None:
            return
        start, end = max(last, hours[0]), min(now, hours[1])
        if end <= start:
            return
        session = (hours[1] - hours[0]).total_seconds()
        fraction_of_day = (end - start).total_seconds() / session
        self.sim.random_walk(fraction_of_day * 365.0 / 252.0)

    def _skip_closed(self) -> None:
        now = self.clock.now()
        info = self.sim.calendar.session_at(now)
        if info.session_close is not None and now < info.session_close + AFTER_CLOSE:
            return
        if info.session_open is not None and now < info.session_open:
            if now >= info.session_open - BEFORE_OPEN:
                return
            target = info.session_open - BEFORE_OPEN
        else:
            target = info.next_open - BEFORE_OPEN
        if target > now:
            # Settle what the close decided (expirations) before the night is skipped.
            self.sim.process_time()
            self.clock.jump(target)

    async def serve(self, stop: asyncio.Event,
                    on_status: Callable[[GatewayStatus], None] | None = None) -> None:
        """Run the world until `stop` is set, or until its data directory is gone."""
        while not stop.is_set():
            started = time.monotonic()
            gone = self.orphaned()
            if gone is not None:
                log.warning("Paper gateway on port %d stops: %s", self.port, gone)
                self.stopped_because = gone
                return
            try:
                await self.step()
            except Exception:
                log.exception("paper gateway step failed")
            if on_status is not None:
                on_status(self.status())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(),
                                       max(0.0, STEP_SECONDS - (time.monotonic() - started)))

    def status(self) -> GatewayStatus:
        return GatewayStatus(self.clock.now(), self.clock.speed, len(self.peer.client_ids),
                             len(self.peer._open_orders(None)), self.port)


def open_gateway(settings: Settings, *, scenario: Path | None = None, speed: float = 1.0,
                 port: int = 0, reset: bool = False) -> PaperGateway:
    """The gateway for this data directory, its lock taken (GatewayRunning if another
    has it), its world restored from `paper-world.json` or created from the scenario.
    Not yet listening: start() does that.

    A scenario asked for (`scenario` or PUTDESK_SIM_SCENARIO) that differs from the one
    the stored world was made from is ScenarioMismatch, never a silent reset; `reset`
    discards the stored world first."""
    from core.broker.scenario import Scenario, demo_scenario_path, load_scenario

    home = paper_home(settings)
    asked = scenario or settings.app.sim_scenario
    gateway: PaperGateway | None = None
    lock = _take_lock(home)
    try:
        if reset:
            for name in (state.STATE_FILE, state.STATE_FILE + ".tmp"):
                with contextlib.suppress(FileNotFoundError):
                    (home / name).unlink()
        doc = state.load(home)
        if doc is None:
            path = Path(asked or demo_scenario_path())
            world = load_scenario(path)
            gateway = _assemble(settings, home, world, str(path.resolve()), world.now,
                                speed, port)
        else:
            stored = doc["scenario"]
            where = home / state.STATE_FILE
            if asked is not None:
                wanted = load_scenario(asked)
                if state.scenario_data(wanted) != stored.get("data"):
                    raise state.ScenarioMismatch(
                        f"The paper world in {where} was created from the scenario "
                        f"{stored.get('path')}, not {asked}. To start over from {asked}: "
                        f"putdesk paper --reset --scenario {asked}")
            try:
                world = Scenario.from_data(stored.get("data"))
            except Exception as exc:
                raise state.WorldStateError(f"Paper world {where} is corrupt: scenario: "
                                            f"{exc}. Nothing was changed; fix or move the "
                                            "file, or start over with `putdesk paper "
                                            "--reset`") from None
            gateway = _assemble(settings, home, world, str(stored.get("path")),
                                state.world_time(home, doc), speed, port)
            state.restore(home, doc, gateway.sim, gateway.peer)
        gateway._lock = lock
        if doc is None:
            gateway.save()
        return gateway
    except BaseException:
        fcntl.flock(lock, fcntl.LOCK_UN)
        lock.close()
        raise


def _assemble(settings: Settings, home: Path, world: Scenario, path: str, now: datetime,
              speed: float, port: int) -> PaperGateway:
    from core.broker.sim import SimBroker
    from core.market.calendar import default_calendar

    clock = WorldClock(now, speed)
    sim = SimBroker(world, clock=clock, calendar=default_calendar(), seed=settings.app.sim_seed,
                    rate=settings.app.sim_rate, label=Path(path).name)
    return PaperGateway(home, sim, clock, path, world, port=port)


def _take_lock(home: Path) -> IO[str]:
    home.mkdir(parents=True, exist_ok=True, mode=0o700)
    fh = open(home / LOCK_FILE, "a")  # noqa: SIM115 - held for the gateway's life
    try:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        fh.close()
        info = GatewayInfo.read(home)
        where = f" on port {info.port} (pid {info.pid})" if info else ""
        raise GatewayRunning(f"A paper gateway already runs for {home}{where}; stop it "
                             "first (ctrl+c in its terminal, or kill its pid)") from None
    return fh


async def run_gateway(gateway: PaperGateway,
                      on_status: Callable[[GatewayStatus], None] | None = None,
                      stop: asyncio.Event | None = None) -> None:
    """Start, serve until `stop` (or SIGINT/SIGTERM/SIGHUP), stop."""
    import signal

    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    installed = []
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, stop.set)
            installed.append(sig)
    try:
        await gateway.start()
        await gateway.serve(stop, on_status)
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)
        await gateway.stop()
