"""The paper world on disk: `paper-world.json` beside the database.

It holds the scenario the world was created from (whole, so the world does not depend
on that file staying put), the world clock, everything the simulator changed since
(cash, holdings with their commission, prices, VIX, orders, fills, ids, the random
generator) and TWS's side of every order (client ids and order ids, statuses, execution
totals), so a client reconnecting after a gateway restart finds its orders as it left
them. Written after every change, atomically (a temporary file, fsync, rename): a
gateway killed mid-write leaves the previous state, never half of one.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.paper.orders import ComboLegSpec
from core.paper.session import PeerOrder

if TYPE_CHECKING:
    from core.broker.scenario import Scenario
    from core.broker.sim import SimBroker
    from core.paper.server import TwsPeer

STATE_FILE = "paper-world.json"
FORMAT = "putdesk-paper-world"
VERSION = 1


class WorldStateError(Exception):
    """The stored world cannot be used; the message names the file and says why. Nothing
    was changed."""


class ScenarioMismatch(WorldStateError):
    pass


def scenario_data(scenario: Scenario) -> dict[str, Any]:
    return scenario.model_dump(mode="json")


def _peer_orders(peer: TwsPeer) -> list[dict[str, Any]]:
    out = []
    for po in peer._orders.values():
        if po.sim_id is None:
            continue  # refused before the simulator took it: TWS forgets it too
        d = asdict(po)
        del d["request"]  # the simulator's order carries it
        d["execs"] = [[k, q, v] for k, (q, v) in po.execs.items()]
        out.append(d)
    return out


def world_document(peer: TwsPeer, scenario_path: str, scenario: Scenario,
                   now: datetime) -> dict[str, Any]:
    return {
        "format": FORMAT, "version": VERSION,
        "scenario": {"path": scenario_path, "data": scenario_data(scenario)},
        "world_time": now.astimezone(UTC).isoformat(),
        "sim": peer.sim.world_state(),
        "peer": {"orders": _peer_orders(peer),
                 "next_ids": [[c, n] for c, n in peer._next_ids.items()]},
    }


def save(home: Path, document: dict[str, Any], durable: bool = True) -> None:
    """Replace the stored world in one rename; `durable`: fsync before it, so a power
    cut cannot lose what a client was told (an order taken, a fill)."""
    path = home / STATE_FILE
    tmp = home / (STATE_FILE + ".tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(document, fh, separators=(",", ":"))
        if durable:
            fh.flush()
            os.fsync(fh.fileno())
    os.replace(tmp, path)


def load(home: Path) -> dict[str, Any] | None:
    """The stored document, None if there is none; WorldStateError when it is unreadable
    or not a paper world."""
    path = home / STATE_FILE
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise WorldStateError(f"Paper world {path} is unreadable: {exc}. Nothing was "
                              "changed; fix or move the file, or start over with "
                              "`putdesk paper --reset`") from None
    try:
        doc = json.loads(text)
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            raise ValueError("not a PutDesk paper world")
        if doc.get("version") != VERSION:
            raise ValueError(f"format version {doc.get('version')!r}, this PutDesk reads "
                             f"{VERSION}")
        for key in ("scenario", "sim", "peer"):
            if not isinstance(doc.get(key), dict):
                raise ValueError(f"'{key}' is missing or not an object")
        if not isinstance(doc["scenario"].get("data"), dict):
            raise ValueError("'scenario.data' is missing or not an object")
        if "world_time" not in doc:
            raise ValueError("'world_time' is missing")
    except ValueError as exc:  # JSONDecodeError is a ValueError
        raise WorldStateError(f"Paper world {path} is corrupt: {exc}. Nothing was changed; "
                              "fix or move the file, or start over with "
                              "`putdesk paper --reset`") from None
    return doc


def stored_scenario(home: Path) -> Scenario:
    """The scenario the stored world was made from (a copy of it lives in the world, so
    the world does not depend on the file staying where it was)."""
    from core.broker.scenario import Scenario, ScenarioError

    doc = load(home)
    if doc is None:
        raise WorldStateError(f"No paper world in {home / STATE_FILE}")
    try:
        return Scenario.from_data(doc["scenario"]["data"])
    except ScenarioError as exc:
        raise WorldStateError(f"Paper world {home / STATE_FILE} is corrupt: scenario: {exc}. "
                              "Start over with `putdesk paper --reset`") from None


def restore(home: Path, doc: dict[str, Any], sim: SimBroker, peer: TwsPeer) -> None:
    """Put the stored state into a simulator and server built from its scenario."""
    path = home / STATE_FILE
    try:
        orders = []
        for d in doc["peer"]["orders"]:
            d = dict(d)
            d["combo_legs"] = [ComboLegSpec(**leg) for leg in d["combo_legs"]]
            d["execs"] = {int(k): (float(q), float(v)) for k, q, v in d["execs"]}
            orders.append(d)
        next_ids = {int(c): int(n) for c, n in doc["peer"]["next_ids"]}
        sim.restore_world_state(doc["sim"])
        requests = sim.order_requests()
        for d in orders:
            request = requests[int(d["sim_id"])]
            po = PeerOrder(request=request, **d)
            peer._orders[(po.client_id, po.order_id)] = po
            if po.sim_id is not None:
                peer._by_sim[po.sim_id] = po
        peer._next_ids.update(next_ids)
    except (KeyError, ValueError, TypeError, AttributeError) as exc:
        raise WorldStateError(f"Paper world {path} is corrupt: {type(exc).__name__}: {exc}. "
                              "Nothing was changed; fix or move the file, or start over "
                              "with `putdesk paper --reset`") from None


def world_time(home: Path, doc: dict[str, Any]) -> datetime:
    try:
        moment = datetime.fromisoformat(str(doc["world_time"]))
        if moment.tzinfo is None:
            raise ValueError("no UTC offset")
        return moment
    except ValueError as exc:
        raise WorldStateError(f"Paper world {home / STATE_FILE} is corrupt: world_time: "
                              f"{exc}. Nothing was changed; start over with "
                              "`putdesk paper --reset`") from None
