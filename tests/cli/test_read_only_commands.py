"""Read-only commands write no trades: the scenario's trades are seeded once, into a
database with no trades, and a trade closed since never comes back (issue 15)."""

import json
from datetime import UTC, datetime

from core.db.repos import TradeRepo
from core.db.session import Database
from tests.cli.run import putdesk


def _trades(url: str) -> list[tuple[str, str, float, str]]:
    db = Database(url)
    try:
        return sorted((t.id, t.symbol, t.strike, t.status) for t in TradeRepo(db).all())
    finally:
        db.dispose()


def test_rolls_and_performance_leave_the_trades_unchanged(env):
    first = putdesk(env, "positions", "--json")
    assert first.returncode == 0, first.stderr
    url = env["PUTDESK_DATABASE_URL"]
    seeded = _trades(url)
    assert seeded and all(status == "OPEN" for *_x, status in seeded)
    # The operator closes one of them (as an exit would).
    db = Database(url)
    repo = TradeRepo(db)
    trade = repo.get(seeded[0][0])
    assert trade is not None
    trade.status, trade.exit_price = "CLOSED", 0.10
    trade.exit_time, trade.exit_reason = datetime(2026, 11, 24, 16, tzinfo=UTC), "test"
    repo.update(trade)
    db.dispose()
    after_close = _trades(url)
    for _ in range(2):
        for command in ("rolls", "performance"):
            r = putdesk(env, command, "--json")
            assert r.returncode == 0, r.stderr
            json.loads(r.stdout)
    assert _trades(url) == after_close
    assert [s for *_x, s in after_close].count("CLOSED") == 1
