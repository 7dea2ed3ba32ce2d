"""Performance journal from the database: statistics, buckets, drawdown, CLI and screen."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import pytest

from core.analysis.performance import delta_bucket, dte_bucket, iv_rank_bucket, max_drawdown
from core.clock import NEW_YORK
from core.db.repos import EquityRepo, TradeRepo
from core.db.session import Database
from core.db.tables import Trade, TradeEntrySnapshot

T = datetime(2026, 10, 1, 10, 0, tzinfo=NEW_YORK)


def seed(db: Database, account: str = "") -> None:
    repo = TradeRepo(db)
    rows = [("AAPL", "Information Technology", 40.0, 0.12, 0.45, "CLOSED", "profit_target"),
            ("MSFT", "Information Technology", -260.0, 0.25, 0.60, "CLOSED", "stop_loss"),
            ("KO", "Consumer Staples", 35.0, 0.08, 0.20, "CLOSED", "profit_target"),
            ("JPM", "Financials", 80.0, 0.18, None, "CLOSED", "rolled"),
            ("XOM", "Energy", None, 0.35, 0.50, "ASSIGNED", "assigned"),
            ("DUK", "Utilities", None, 0.10, 0.40, "OPEN", None)]
    for i, (sym, sector, pnl, delta, ivr, status, reason) in enumerate(rows):
        entry = T + timedelta(days=i)
        trade = Trade(symbol=sym, strike=100.0, expiration=(entry + timedelta(days=30)).date(),
                      contracts=1, entry_price=1.0, entry_time=entry, status=status,
                      exit_reason=reason, realized_pnl=pnl, sector=sector, created_at=entry,
                      updated_at=entry)
        repo.record_entry(trade, TradeEntrySnapshot(trade_id=trade.id, delta=-delta,
                                                    iv_rank=ivr, captured_at=entry))
    equity = EquityRepo(db)
    for i, v in enumerate([100_000, 104_000, 98_800, 101_000, 103_000]):
        equity.record(T + timedelta(days=i), float(v), account=account)


def test_buckets_and_drawdown():
    assert delta_bucket(-0.12) == "0.10-0.20" and delta_bucket(None) == "unknown"
    assert dte_bucket(30) == "15-30" and dte_bucket(60) == ">45"
    assert iv_rank_bucket(0.7) == ">=70%"
    assert max_drawdown([(T, 100.0), (T, 120.0), (T, 90.0), (T, 130.0)]) == pytest.approx(-0.25)


async def test_journal_through_the_engine(tmp_path):
    from tests.core.risk.worlds import world, write
    from tests.factories import make_settings, sim_engine

    engine = sim_engine(make_settings(tmp_path), write(tmp_path, world(equity_history=[])))
    await engine.open()
    seed(engine.db, account="DU0000009")  # the journal is the engine's account's
    j = await engine.journal()
    await engine.stop()
    assert j.overall.trades == 4 and j.overall.wins == 3
    assert j.overall.win_rate == pytest.approx(0.75)
    assert j.overall.pnl == pytest.approx(-105.0) and j.overall.average == pytest.approx(-26.25)
    assert j.assigned == 1 and j.open_trades == 1 and j.rolled == 1
    assert j.by_sector["Information Technology"].pnl == pytest.approx(-220.0)
    assert j.by_delta["0.20-0.30"].trades == 1 and j.by_iv_rank["unknown"].trades == 1
    assert j.by_dte["15-30"].trades == 4
    assert j.max_drawdown == pytest.approx(98_800 / 104_000 - 1)
    assert j.best == 80.0 and j.worst == -260.0


def test_cli_performance(env, tmp_path):
    from tests.cli.run import putdesk

    db = Database(env["PUTDESK_DATABASE_URL"])
    db.upgrade()
    seed(db)
    db.dispose()
    r = putdesk(env, "performance", "--json")
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    assert data["closed"]["trades"] == 4 and data["win_rate"] == pytest.approx(0.75)
    assert set(data["by_sector"]) == {"Information Technology", "Consumer Staples",
                                      "Financials"}
    assert len(data["equity_curve"]) >= 5
    human = putdesk(env | {"COLUMNS": "120"}, "performance")
    assert "win rate 75%" in human.stdout and "P&L by sector" in human.stdout
