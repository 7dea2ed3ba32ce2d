"""Counts read as English everywhere in CLI output ("1 contract", "200 shares"): one
helper, core.fmt.plural."""

from core import fmt


def test_plural_counts():
    assert fmt.plural(1, "contract") == "1 contract"
    assert fmt.plural(3, "contract") == "3 contracts"
    assert fmt.plural(-1, "contract") == "-1 contract"
    assert fmt.plural(1, "staged order") == "1 staged order"
    assert fmt.shares(200.0) == "200 shares" and fmt.shares(1.0) == "1 share"
    assert fmt.shares(1_500_000.0) == "1,500,000 shares" and fmt.shares(2.5) == "2.5 shares"
