import math

import numpy as np
import pytest

from core.market.pricing import (
    bs_greeks,
    bs_price,
    ibkr_short_option_margin,
    implied_vol,
)

S, K, T, V, R = 100.0, 95.0, 30 / 365, 0.30, 0.04


def test_put_call_parity():
    put = float(bs_price(S, K, T, V, R, right="P"))
    call = float(bs_price(S, K, T, V, R, right="C"))
    assert call - put == pytest.approx(S - K * math.exp(-R * T), abs=1e-9)


def test_known_value():
    # Hull-style check: S=K=100, T=1, r=5%, sigma=20% -> call 10.4506, put 5.5735
    assert float(bs_price(100, 100, 1, 0.2, 0.05, right="C")) == pytest.approx(10.4506, abs=1e-4)
    assert float(bs_price(100, 100, 1, 0.2, 0.05, right="P")) == pytest.approx(5.5735, abs=1e-4)


@pytest.mark.parametrize("right", ["P", "C"])
def test_greeks_match_finite_differences(right):
    g = bs_greeks(S, K, T, V, R, right=right)
    h = 1e-3
    up, down = bs_price(S + h, K, T, V, R, right=right), bs_price(S - h, K, T, V, R, right=right)
    mid = bs_price(S, K, T, V, R, right=right)
    assert float(g["delta"]) == pytest.approx(float((up - down) / (2 * h)), rel=1e-5)
    assert float(g["gamma"]) == pytest.approx(float((up - 2 * mid + down) / h**2), rel=1e-3)
    vega = (bs_price(S, K, T, V + 1e-4, R, right=right)
            - bs_price(S, K, T, V - 1e-4, R, right=right)) / 2e-4 / 100
    assert float(g["vega"]) == pytest.approx(float(vega), rel=1e-5)
    day = 1 / 365
    theta = bs_price(S, K, T - day, V, R, right=right) - mid
    assert float(g["theta"]) == pytest.approx(float(theta), rel=2e-2)


def test_put_delta_is_negative_and_bounded():
    deltas = bs_greeks(S, np.array([60.0, 95.0, 100.0, 140.0]), T, V, R)["delta"]
    assert np.all(deltas < 0) and np.all(deltas >= -1)
    assert np.all(np.diff(deltas) < 0)  # higher strike -> more negative


def test_expired_and_zero_vol_give_intrinsic_without_errors():
    with np.errstate(all="raise"):
        assert float(bs_price(90, 100, 0.0, 0.3)) == 10.0
        assert float(bs_price(110, 100, -1.0, 0.3)) == 0.0
        assert float(bs_price(90, 100, 0.1, 0.0)) == 10.0
        g = bs_greeks(90, 100, 0.0, 0.3)
        assert float(g["delta"]) == -1.0 and float(g["gamma"]) == 0.0


def test_vectorised_over_positions():
    strikes = np.linspace(50, 150, 500)
    prices = bs_price(100.0, strikes, T, V, R)
    assert prices.shape == (500,)
    assert float(prices[0]) < float(prices[-1])


def test_implied_vol_round_trip_and_no_solution():
    price = float(bs_price(S, K, T, 0.42, R))
    assert implied_vol(price, S, K, T, R) == pytest.approx(0.42, abs=1e-6)
    assert implied_vol(0.0, S, K, T, R) is None
    assert implied_vol(1000.0, S, K, T, R) is None
    assert implied_vol(1.0, S, K, 0.0, R) is None


def test_ibkr_margin_worked_example():
    # stock 100, 95 put sold at 1.50: 1.50 + max(20 - 5, 9.5) = 16.50/share -> $1,650
    assert float(ibkr_short_option_margin(100, 95, 1.50)) == pytest.approx(1650.0)


def test_ibkr_margin_broad_index_etf_uses_15_percent():
    # SPY-like: 1.50 + max(15 - 5, 9.5) = 11.50 -> $1,150
    assert float(ibkr_short_option_margin(100, 95, 1.50, broad_index=True)) == pytest.approx(1150)


def test_ibkr_margin_far_otm_uses_ten_percent_of_strike_and_floor():
    # far OTM: 20% x 100 - 40 < 0 -> 10% x 60 = 6 -> (0.10 + 6) x 100
    assert float(ibkr_short_option_margin(100, 60, 0.10)) == pytest.approx(610.0)
    # penny stock: the $2.50/share term of the max() binds, the premium comes on top
    assert float(ibkr_short_option_margin(5, 2, 0.01)) == pytest.approx(251.0)


def test_ibkr_margin_minimum_sits_inside_the_max():
    """IBKR's rule: put price + max(20% x underlying - OTM, 10% x strike, $2.50). PFE 22P
    at 0.30 with PFE at 25: 0.30 + max(5.00 - 3.00, 2.20, 2.50) = 2.80 -> $280, not $250
    (a $2.50 floor under the whole sum)."""
    assert float(ibkr_short_option_margin(25.0, 22.0, 0.30)) == pytest.approx(280.0)
    assert float(ibkr_short_option_margin([25.0], [22.0], [0.30])[0]) == pytest.approx(280.0)


def test_ibkr_margin_itm_put_and_call():
    # ITM put: no OTM amount: 12 + 20% x 100 = 32 -> $3,200
    assert float(ibkr_short_option_margin(100, 110, 12.0)) == pytest.approx(3200.0)
    # short call 110 on 100 at 1.0: 1 + max(20 - 10, 10) = 11 -> $1,100
    assert float(ibkr_short_option_margin(100, 110, 1.0, right="C")) == pytest.approx(1100.0)


def test_one_contract_prices_as_scipy_does():
    """One value takes math.erf/erfc (the simulator's one-contract marks: no scipy to
    load in `putdesk status`); arrays take scipy's ndtr. Prices and greeks agree to
    float noise (1e-12 relative) whichever way a contract is priced."""
    from scipy.special import ndtr

    from core.market.pricing import _n

    rng = np.random.default_rng(7)
    x = np.concatenate([rng.normal(0.0, 2.0, 2000), [0.0, -0.0, 0.7071067811865476, -1.0,
                                                     1.0, -8.0, 8.0, -38.0, 40.0]])
    one_by_one = np.array([float(_n(np.asarray(v))) for v in x])
    assert np.allclose(one_by_one, ndtr(x), rtol=1e-14, atol=1e-300)  # -38: ~3e-316 or 0
    assert float(_n(np.asarray(np.inf))) == 1.0 and float(_n(np.asarray(-np.inf))) == 0.0
    assert math.isnan(float(_n(np.asarray(np.nan))))
    s = rng.uniform(20, 600, 200)
    k = s * rng.uniform(0.6, 1.2, 200)
    t = rng.uniform(1 / 365, 2.0, 200)
    v = rng.uniform(0.05, 1.5, 200)
    for right in ("P", "C"):
        together = bs_price(s, k, t, v, 0.04, 0.01, right=right)
        alone = np.array([float(bs_price(*args, 0.04, 0.01, right=right))
                          for args in zip(s, k, t, v, strict=True)])
        assert np.allclose(alone, together, rtol=1e-12, atol=1e-12)
        greeks = bs_greeks(s, k, t, v, 0.04, 0.01, right=right)
        for i in range(0, 200, 17):
            one = bs_greeks(s[i], k[i], t[i], v[i], 0.04, 0.01, right=right)
            for name, value in one.items():
                assert float(value) == pytest.approx(float(greeks[name][i]), rel=1e-12,
                                                     abs=1e-15), name
