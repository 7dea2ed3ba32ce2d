"""Black-Scholes prices and greeks, vectorised over numpy arrays, and IBKR's Reg T margin
rule for short options. Used by the simulator (its market model), Layer 1 of the margin
check (the estimate) and the stress test (repricing the book)."""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

Array = NDArray[np.float64]
SECONDS_PER_YEAR = 365.0 * 24 * 3600
#: Broad-based index ETFs: IBKR (and CBOE/FINRA) use 15% instead of 20% of the underlying.
BROAD_INDEX_ETFS = frozenset({"SPY", "QQQ", "IWM", "DIA"})
_SQRT1_2 = math.sqrt(0.5)


def _ndtr(a: float) -> float:
    """Standard normal CDF of one value: scipy's `ndtr` step for step (Cephes: erf near
    zero, erfc in the tails, where 1 - erf would lose the digits), on the C library's
    erf/erfc. It agrees with scipy to ~1e-15 (relative) for |a| < 5 and ~1e-13 in the far
    tails, where the two erfc implementations part (glibc's is the closer one there)."""
    x = a * _SQRT1_2
    z = abs(x)
    if z < _SQRT1_2:
        return 0.5 + 0.5 * math.erf(x)
    y = 0.5 * math.erfc(z)
    return 1.0 - y if x > 0 else y


def _n(x: Array) -> Array:
    """Standard normal CDF. One value (the simulator's marks, one contract at a time) in
    Python; arrays with scipy, imported on first use: it costs ~0.25 s and ~15 MiB, which
    `putdesk status` must not pay. Arrays stay on scipy whatever their size, so a book's
    figures are computed one way (a stress run solves each mark's volatility and reprices
    the book at it: the residual at no move is float noise, and its sign shows)."""
    if x.ndim == 0:
        return np.asarray(_ndtr(float(x)), dtype=np.float64)
    from scipy.special import ndtr

    return np.asarray(ndtr(x), dtype=np.float64)


def _arr(x: ArrayLike) -> Array:
    return np.asarray(x, dtype=np.float64)


def _d1_d2(s: Array, k: Array, t: Array, sigma: Array, r: Array, q: Array) -> tuple[Array, Array]:
    vol_t = sigma * np.sqrt(t)
    with np.errstate(divide="ignore", invalid="ignore"):
        d1 = (np.log(s / k) + (r - q + 0.5 * sigma**2) * t) / vol_t
    return np.asarray(d1, dtype=np.float64), np.asarray(d1 - vol_t, dtype=np.float64)


def bs_price(s: ArrayLike, k: ArrayLike, t: ArrayLike, sigma: ArrayLike, r: ArrayLike = 0.0,
             q: ArrayLike = 0.0, right: Literal["P", "C"] = "P") -> Array:
    """European option price. t in years; at t <= 0 or sigma <= 0 the price is intrinsic
    (discounted forward intrinsic when only sigma is 0)."""
    s, k, t, sigma, r, q = map(_arr, (s, k, t, sigma, r, q))
    s, k, t, sigma, r, q = np.broadcast_arrays(s, k, t, sigma, r, q)
    live = (t > 0) & (sigma > 0)
    tt = np.where(live, t, 1.0)
    ss = np.where(live, sigma, 1.0)
    d1, d2 = _d1_d2(s, k, tt, ss, r, q)
    disc_k = k * np.exp(-r * tt)
    disc_s = s * np.exp(-q * tt)
    if right == "P":
        model = disc_k * _n(-d2) - disc_s * _n(-d1)
        intrinsic = np.maximum(k - s, 0.0)
    else:
        model = disc_s * _n(d1) - disc_k * _n(d2)
        intrinsic = np.maximum(s - k, 0.0)
    return np.asarray(np.where(live, np.maximum(model, 0.0), intrinsic), dtype=np.float64)


def bs_greeks(s: ArrayLike, k: ArrayLike, t: ArrayLike, sigma: ArrayLike, r: ArrayLike = 0.0,
              q: ArrayLike = 0.0, right: Literal["P", "C"] = "P") -> dict[str, Array]:
    """delta, gamma, theta (per calendar day), vega (per 1 vol point = 0.01)."""
    s, k, t, sigma, r, q = map(_arr, (s, k, t, sigma, r, q))
    s, k, t, sigma, r, q = np.broadcast_arrays(s, k, t, sigma, r, q)
    live = (t > 0) & (sigma > 0)
    tt = np.where(live, t, 1.0)
    ss = np.where(live, sigma, 1.0)
    d1, d2 = _d1_d2(s, k, tt, ss, r, q)
    pdf = np.exp(-0.5 * d1**2) / np.sqrt(2 * np.pi)
    eq = np.exp(-q * tt)
    er = np.exp(-r * tt)
    gamma = eq * pdf / (s * ss * np.sqrt(tt))
    vega = s * eq * pdf * np.sqrt(tt) / 100.0
    common = -s * eq * pdf * ss / (2 * np.sqrt(tt))
    if right == "P":
        delta = eq * (_n(d1) - 1.0)
        theta = common + r * k * er * _n(-d2) - q * s * eq * _n(-d1)
        dead_delta = np.where(s < k, -1.0, 0.0)
    else:
        delta = eq * _n(d1)
        theta = common - r * k * er * _n(d2) + q * s * eq * _n(d1)
        dead_delta = np.where(s > k, 1.0, 0.0)
    zero = np.zeros_like(s)
    return {
        "delta": np.where(live, delta, dead_delta),
        "gamma": np.where(live, gamma, zero),
        "theta": np.where(live, theta / 365.0, zero),
        "vega": np.where(live, vega, zero),
    }


def implied_vol(price: float, s: float, k: float, t: float, r: float = 0.0, q: float = 0.0,
                right: Literal["P", "C"] = "P") -> float | None:
    """The volatility that reproduces `price`; None when no volatility does (price below
    intrinsic or above the no-arbitrage bound, or no time left)."""
    from scipy.optimize import brentq

    if t <= 0 or price <= 0:
        return None
    lo, hi = 1e-4, 5.0

    def f(v: float) -> float:
        return float(bs_price(s, k, t, v, r, q, right)) - price

    f_lo, f_hi = f(lo), f(hi)
    if f_lo > 0 or f_hi < 0:
        return None
    return float(brentq(f, lo, hi, xtol=1e-8))


def implied_vols(price: ArrayLike, s: ArrayLike, k: ArrayLike, t: ArrayLike, guess: ArrayLike,
                 r: float = 0.0, right: Literal["P", "C"] = "P", tolerance: float = 1e-6,
                 iterations: int = 30) -> tuple[Array, Array]:
    """`implied_vol` for many options at once: (vols, solved). Newton steps from `guess`,
    kept inside a bracket that bisection narrows, so every option converges or is
    reported unsolved (price outside what any volatility gives, or no time left); an
    unsolved option keeps its guess."""
    price, s, k, t, guess = np.broadcast_arrays(*map(_arr, (price, s, k, t, guess)))
    lo = np.full(price.shape, 1e-4)
    hi = np.full(price.shape, 5.0)
    reachable = ((t > 0) & (price > 0) & (bs_price(s, k, t, lo, r, right=right) <= price)
                 & (price <= bs_price(s, k, t, hi, r, right=right)))
    sigma = np.clip(np.where(np.isfinite(guess) & (guess > 0), guess, 0.3), 1e-4, 5.0)
    tt = np.where(t > 0, t, 1.0)
    done = ~reachable
    for _ in range(iterations):
        model = bs_price(s, k, tt, sigma, r, right=right)
        diff = model - price
        done |= np.abs(diff) < tolerance
        if done.all():
            break
        hi = np.where(diff > 0, sigma, hi)  # price rises with volatility
        lo = np.where(diff < 0, sigma, lo)
        d1, _d2 = _d1_d2(s, k, tt, sigma, np.asarray(r), np.asarray(0.0))
        vega = s * np.exp(-0.5 * d1**2) / np.sqrt(2 * np.pi) * np.sqrt(tt)
        with np.errstate(divide="ignore", invalid="ignore"):
            newton = sigma - diff / vega
        inside = np.isfinite(newton) & (newton > lo) & (newton < hi)
        sigma = np.where(done, sigma, np.where(inside, newton, (lo + hi) / 2))
    solved = reachable & (np.abs(bs_price(s, k, tt, sigma, r, right=right) - price)
                          < tolerance * 10)
    return np.where(solved, sigma, guess), solved


def ibkr_short_option_margin(underlying: ArrayLike, strike: ArrayLike, option_price: ArrayLike,
                             right: Literal["P", "C"] = "P", broad_index: ArrayLike = False,
                             multiplier: float = 100.0) -> Array:
    """IBKR's Reg T initial (= maintenance) margin per short contract:
    option price + max(pct x underlying - OTM amount, 10% x strike [put] / underlying [call],
    $2.50), pct 20% (15% for broad-based index ETFs); x multiplier. The $2.50 per share is
    one of the max()'s terms, as IBKR's rule reads, not a floor under the whole sum.
    Examples: stock 100, 95 put at 1.50 -> (1.50 + max(20 - 5, 9.5, 2.5)) x 100 = $1,650;
    PFE 22 put at 0.30 with PFE at 25 -> (0.30 + max(2.0, 2.2, 2.5)) x 100 = $280."""
    if all(isinstance(x, (int, float)) for x in (underlying, strike, option_price)) \
            and isinstance(broad_index, bool):
        # One contract at a time (the governor, thousands a second): plain floats are
        # ~40x faster than building arrays for a scalar.
        u, k0, p0 = float(underlying), float(strike), float(option_price)
        rate = 0.15 if broad_index else 0.20
        if right == "P":
            value = p0 + max(rate * u - max(u - k0, 0.0), 0.10 * k0, 2.50)
        else:
            value = p0 + max(rate * u - max(k0 - u, 0.0), 0.10 * u, 2.50)
        return np.asarray(value * multiplier)
    s, k, p = map(_arr, (underlying, strike, option_price))
    pct = np.where(np.asarray(broad_index, dtype=bool), 0.15, 0.20)
    if right == "P":
        otm = np.maximum(s - k, 0.0)
        floor = 0.10 * k
    else:
        otm = np.maximum(k - s, 0.0)
        floor = 0.10 * s
    per_share = p + np.maximum(np.maximum(pct * s - otm, floor), 2.50)
    return per_share * multiplier


def is_broad_index(symbol: str) -> bool:
    return symbol.upper() in BROAD_INDEX_ETFS


def prob_above(s: float, k: float, t: float, sigma: float, r: float = 0.0,
               q: float = 0.0) -> float | None:
    """Risk-neutral probability that the underlying ends above `k`: N(d2). For a short
    put that is the probability it expires out of the money (not 1 - |delta|, which is
    N(d1) and overstates it). None when undefined (no time, no volatility, no price)."""
    if t <= 0 or sigma <= 0 or s <= 0 or k <= 0:
        return None
    _d1, d2 = _d1_d2(*(np.asarray(x, dtype=np.float64) for x in (s, k, t, sigma, r, q)))
    return float(_n(d2))
