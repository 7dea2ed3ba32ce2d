"""The fault suite (issue 9, item 2): every fault on the simulator, end to end, with its
named outcome and the log line that says it. One module per fault family:

- test_whatif.py — WhatIf timeout, error, IBKR's unset sentinel: the Layer-1 estimate
  stands in with "WhatIf unavailable, using estimate — proceed with caution".
- test_order_life.py — the link drops before sending, after the claim, after the accept,
  between partial fills, while repricing, at the cancel; broker reject; partial fill.
- test_data_gaps.py — missing greeks (candidate, position, trade), missing IV history,
  earnings provider down (dead port, HTTP 500, hanging).
- test_notifier.py — webhook dead/500/hanging and SMTP down, seen from the engine.
- test_database.py — SQLite locked and PostgreSQL unreachable, at start and mid-run.
- test_clock_skew.py — broker clock ahead/behind by more than a second, or silent.
- test_second_instance.py — two engines on one database: kill switch and orders.

Each module's docstring lists its outcomes and log lines, and the existing tests
elsewhere that already prove a fault (path::name), which are not repeated here. The
wire-protocol peer's side of these faults is a separate suite.
"""
