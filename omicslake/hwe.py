"""Hardy-Weinberg exact test (Wigginton, Cutler & Abecasis 2005, AJHG 76:887), vectorised.

Given N genotypes with n_rare copies of the rarer allele, the heterozygote count k has

    P(k) = N! n_rare! n_common! 2^k / ((2N)! k! ((n_rare-k)/2)! ((n_common-k)/2)!)

over k of the same parity as n_rare. The p-value sums P(k) over every k no more likely than
the observed one. Instead of the paper's per-site recurrence, every (site, k) term of a batch
is laid out in one flat array and computed in log space (log-factorials from one ``gammaln``
table), so a million sites are a few NumPy passes, not a Python loop; identical count triples,
common among rare variants, are computed once.
"""

from __future__ import annotations

import numpy as np
from scipy.special import gammaln

MAX_TERMS = 4_000_000  # (site, k) terms per pass; bounds memory on large cohorts
TIE = 1e-9  # log-space tolerance when comparing a term with the observed one (rounding)


def hwe_exact_p(hom_ref, het, hom_alt) -> np.ndarray:
    """Two-sided exact HWE p-value per site; NaN where no genotype was counted."""
    counts = np.stack([np.asarray(x, dtype=np.int64) for x in (hom_ref, het, hom_alt)], axis=1)
    if not len(counts):
        return np.zeros(0)
    uniq, back = np.unique(counts, axis=0, return_inverse=True)
    return _unique_p(uniq[:, 0], uniq[:, 1], uniq[:, 2])[back.ravel()]


def _unique_p(aa: np.ndarray, ab: np.ndarray, bb: np.ndarray) -> np.ndarray:
    out = np.full(len(ab), np.nan)
    n = aa + ab + bb
    rare = np.minimum(2 * aa + ab, 2 * bb + ab)
    terms = rare // 2 + 1
    log_fact = gammaln(np.arange(2 * int(n.max()) + 2, dtype=np.float64) + 1)
    todo = np.nonzero(n > 0)[0]
    start = 0
    while start < len(todo):
        csum = np.cumsum(terms[todo[start:]])
        stop = start + max(1, int(np.searchsorted(csum, MAX_TERMS, side="right")))
        idx = todo[start:stop]
        out[idx] = _batch(n[idx], rare[idx], ab[idx], terms[idx], log_fact)
        start = stop
    return out


def _log_p(k: np.ndarray, rare: np.ndarray, common: np.ndarray, log_fact: np.ndarray) -> np.ndarray:
    """log P(k hets) up to the per-site constant."""
    return k * np.log(2.0) - log_fact[k] - log_fact[(rare - k) // 2] - log_fact[(common - k) // 2]


def _batch(n: np.ndarray, rare: np.ndarray, het: np.ndarray, terms: np.ndarray,
           log_fact: np.ndarray) -> np.ndarray:
    common = 2 * n - rare
    site = np.repeat(np.arange(len(n)), terms)
    first = np.cumsum(terms) - terms
    k = rare[site] % 2 + 2 * (np.arange(terms.sum()) - first[site])
    log_p = _log_p(k, rare[site], common[site], log_fact)
    observed = _log_p(het, rare, common, log_fact)
    top = np.maximum.reduceat(log_p, first)
    w = np.exp(log_p - top[site])
    total = np.add.reduceat(w, first)
    as_likely = log_p <= observed[site] + TIE
    return np.minimum(1.0, np.add.reduceat(w * as_likely, first) / total)
