"""``scipy.stats.kstwo.sf`` for many (statistic, n) pairs at once, with scipy's exact values.

scipy evaluates the two-sided Kolmogorov distribution element by element in Python
(``scipy/stats/_ksstats.py``, Simard & L'Ecuyer's choice of method per pair): about 35 us
per pair through the Pelz-Good series, which is the method for the window sample sizes
(``n`` > 140) and the statistics of windows without drift (``n d^2 < 2.2``,
``n d^1.5 > 1.4``). `kstwo_sf` runs that series for all such pairs together, one row per
pair, every operation scipy's, in scipy's order, on the same float64 values (the scalar
powers ``z**k`` through the same C ``pow`` as numpy's scalar math; see `_pelz_good_sf` for
the terms), so each p-value equals scipy's bit for bit
(``tests/stream/drift/test_kolmogorov.py`` checks thousands of pairs).
Pairs from ``n d^2 >= 2.2`` take scipy's Smirnov ufunc on the array, as scipy does; every
other pair (small ``n``, Durbin's matrix method, the extremes) goes to ``kstwo.sf`` itself.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from scipy import special, stats

__all__ = ["kstwo_sf"]

# scipy's constants, computed as scipy computes them
_SQRT2PI = np.sqrt(2 * np.pi)
_SQRT3 = np.sqrt(3)
_PI_SQUARED = np.pi ** 2
_PI_FOUR = np.pi ** 4
_PI_SIX = np.pi ** 6
_MIN_LOG = -708


def kstwo_sf(statistics: np.ndarray, n: np.ndarray) -> np.ndarray:
    """``scipy.stats.kstwo.sf(statistics, n)``, identical values, vectorised where scipy loops.

    Examples
    --------
    >>> d, n = np.array([0.03, 0.05, 0.2, 0.001]), np.array([600.0, 500.0, 400.0, 50.0])
    >>> bool(np.array_equal(kstwo_sf(d, n), stats.kstwo.sf(d, n)))
    True
    """
    x = np.asarray(statistics, dtype=float)
    size = np.asarray(n, dtype=float)
    result = np.empty(len(x))
    with np.errstate(all="ignore"):
        t = size * x
        nxsquared = t * x
        middle = (size > 140) & (t > 1.0) & (t < size - 1) & (x < 0.5) & (np.floor(size) == size)
    smirnov = middle & (nxsquared >= 2.2) & (nxsquared < 370.0)
    result[middle & (nxsquared >= 370.0)] = 0.0
    result[smirnov] = np.clip(2 * special.smirnov(size[smirnov].astype(int), x[smirnov]), 0.0, 1.0)
    series = np.flatnonzero(middle & (nxsquared < 2.2))
    # scipy's cutoff, with its scalar power, for the pairs the series is for
    series = series[[size[i] > 100000 or size[i] * x[i].item() ** 1.5 > 1.4 for i in series.tolist()]]
    handled = smirnov | (middle & (nxsquared >= 370.0))
    handled[series] = True
    if len(series):
        with np.errstate(all="ignore"):  # pairs with q underflowing to 0 get scipy's 0 after the series
            result[series] = _pelz_good_sf(x[series], size[series])
    rest = np.flatnonzero(~handled)
    if len(rest):
        result[rest] = stats.kstwo.sf(x[rest], size[rest])
    return result


def _pelz_good_sf(x: np.ndarray, n: np.ndarray) -> np.ndarray:
    """``1 - _kolmogn_PelzGood(n, x)`` clipped to [0, 1], as scipy's ``_kolmogn(n, x, cdf=False)`` returns it.

    scipy sums ``maxk = ceil(16 z / pi)`` terms per pair; here all pairs share one loop over
    the largest ``maxk``, a pair's terms start at its own ``maxk`` (rows not started yet keep
    their zeros), and the sums over ``k`` run over rows padded with ``k = 0`` terms, which
    are exact zeros added after the pair's own terms. With ``n d^2 < 2.2`` (so ``maxk <= 8``)
    numpy adds a row of up to 8 values one by one, as it adds scipy's 1-D arrays.
    """
    z = np.sqrt(n) * x
    powers = np.array([[value ** p for p in (2, 3, 4, 6, 7, 8, 10)] for value in z.tolist()]).T
    zsquared, zthree, zfour, zsix, zseven, zeight, zten = powers
    qlog = -_PI_SQUARED / 8 / zsquared
    maxk = np.ceil(16 * z / np.pi).astype(int)
    q = np.exp(qlog)
    k1a = -zsquared
    k1b = _PI_SQUARED / 4
    k2a = 6 * zsix + 2 * zfour
    k2b = (2 * zfour - 5 * zsquared) * _PI_SQUARED / 4
    k2c = _PI_FOUR * (1 - 2 * zsquared) / 16
    k3d = _PI_SIX * (5 - 30 * zsquared) / 64
    k3c = _PI_FOUR * (-60 * zsquared + 212 * zfour) / 16
    k3b = _PI_SQUARED * (135 * zfour - 96 * zsix) / 4
    k3a = -30 * zsix - 90 * zeight
    longest = int(maxk.max())
    k = np.arange(longest, 0, -1)  # column j: k = longest - j, as scipy's loop runs
    m = 2 * k - 1
    msquared, mfour, msix = m**2, m**4, m**6
    coeffs = np.empty((len(z), longest, 4))
    coeffs[:, :, 0] = 1.0
    coeffs[:, :, 1] = k1a[:, None] + k1b * msquared
    coeffs[:, :, 2] = k2a[:, None] + k2b[:, None] * msquared + k2c[:, None] * mfour
    coeffs[:, :, 3] = k3a[:, None] + k3b[:, None] * msquared + k3c[:, None] * mfour + k3d[:, None] * msix
    coeffs[k > maxk[:, None]] = 0.0  # a pair's sum starts at its own maxk: before, its terms stay exactly 0
    qpower = np.power(q[:, None], 8 * k)
    terms = np.zeros((len(z), 4))
    for column in range(longest):
        terms *= qpower[:, column, None]
        terms += coeffs[:, column]
    terms *= q[:, None]
    terms *= _SQRT2PI
    terms /= np.column_stack([z, 6 * zfour, 72 * zseven, 6480 * zten])
    q = np.exp(-_PI_SQUARED / 2 / zsquared)
    ks = np.maximum(maxk[:, None] - np.arange(longest), 0)  # row i: maxk_i, ..., 1, then zeros
    ksquared = ks ** 2
    sqrt3z = (_SQRT3 * z)[:, None]
    kspi = np.pi * ks
    qpowers = q[:, None] ** ksquared
    k2extra = np.sum(ksquared * qpowers, axis=1)
    k2extra *= _PI_SQUARED * _SQRT2PI / (-36 * zthree)
    terms[:, 2] += k2extra
    k3extra = np.sum((sqrt3z + kspi) * (sqrt3z - kspi) * ksquared * qpowers, axis=1)
    k3extra *= _PI_SQUARED * _SQRT2PI / (216 * zsix)
    terms[:, 3] += k3extra
    terms /= np.array([_powers_of_n(size) for size in n.tolist()])
    cdf = ((terms[:, 0] + terms[:, 1]) + terms[:, 2]) + terms[:, 3]
    cdf[qlog < _MIN_LOG] = 0.0  # scipy returns a cdf of 0 there
    return np.clip(1.0 - cdf, 0.0, 1.0)


@lru_cache(maxsize=1024)
def _powers_of_n(n: float) -> np.ndarray:
    """``n ** (0, 1/2, 1, 3/2)`` as scipy computes them."""
    return np.power(n * 1.0, np.arange(4) / 2.0)
