"""Through the pipeline the CLI, the console and the engine call (`scan_csv`): the
columnar screen and the batch scoring give what the row path and scoring one candidate
at a time gave before (the oracle in test_scoring_batch), on the shipped demo export."""

from __future__ import annotations

from pathlib import Path

from core.screening import pipeline
from core.screening.columnar import screen_exact
from tests.core.screening.test_scoring_batch import _score

DEMO = Path(__file__).parents[3] / "core" / "data" / "scenarios" / "demo-barchart.csv"


async def test_scan_csv_reads_and_scores_as_before(desk, monkeypatch):
    engine = await desk()
    seen: list[tuple] = []
    score_all = pipeline.score_all

    def recording(cands, held, risk, validation, rate=0.0):
        seen.append((list(cands), list(held), risk, validation, rate))
        return score_all(cands, held, risk, validation, rate)

    monkeypatch.setattr(pipeline, "score_all", recording)
    result = await engine.screening().scan_csv(DEMO)

    cands, held, risk, validation, rate = seen[0]
    want = sorted((_score(c, held, risk, validation, rate) for c in cands),
                  key=lambda c: (-(c.score or 0), c.symbol, c.strike))
    assert result.accepted == want and [repr(c) for c in result.accepted] == [
        repr(c) for c in want]
    assert len(want) > 0
    # The screen's rejections come first, built (in the worker thread) as a plain list.
    assert isinstance(result.rejected, list)
    settings = engine.settings.screener
    exact = screen_exact(DEMO.read_bytes(), today=engine.screening().today(),
                         now=engine.clock.now(), stale_hours=settings.stale_file_hours,
                         settings=settings)
    assert result.rejected[:len(exact.rejected)] == exact.rejected
    assert result.warnings[:len(exact.warnings) + len(exact.notes)] == [
        *exact.warnings, *exact.notes]
