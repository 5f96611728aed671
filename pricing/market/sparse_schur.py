r"""The interior point's Newton system for components above the dense size limit, on
sparse linear algebra.

After the pools' wages are eliminated, the Newton system of :mod:`pricing.market.interior`
is one SPD matrix per component (segments × segments),

    K = G + L,   G = diag(c_p + Σ_{e into k} h_e c_w,j/d_w,j + h of k's bounds) > 0,
    L = the graph Laplacian with weight  ω_ab = Σ_{pools j serving a and b} h_ja h_jb / d_w,j

(c_p = −D′, c_w = S′, h = λ/s per constraint row, d_w,j = c_w,j + Σ_{e out of j} h_e), so
K is a symmetric diagonally dominant M-matrix: a weighted graph Laplacian plus a positive
diagonal. It is nonzero where one pool serves both segments. The components of one
problem form one block-diagonal scipy sparse matrix per path:

**Direct** (:class:`DirectSchur`): LDLᵀ with an approximate-minimum-degree ordering
(QDLDL; the symbolic analysis once, a numeric refactorization every iteration). It is
taken where the graph allows it. The symbolic test is the cycle rank r = |edges| − |nodes|
+ 1 of the pool–segment graph whose Schur complement K is (segments and pools as nodes,
the adjacency and home edges as edges): eliminating its degree-1 and degree-2 vertices
first creates at most one fill entry each and leaves a kernel of at most 2(r − 1)
vertices, so the factor holds at most nnz + 2n + 2r² entries whatever the graph. A
component is factored directly when 2r² ≤ nnz(K) (a factor at most ~3× K). A tree
(r = 0) has no fill: K's graph is then a tree of cliques, one per pool, which AMD
eliminates clique by clique.

**Preconditioned CG** (:class:`ForestCG`) everywhere else: the fill of random expander-like
graphs grows like n² (10^4 segments of issue 18's market: QDLDL 2.4 s and 2.4 million
factor entries per factorization). The preconditioner is the maximum-weight spanning
forest of L plus G, M = G + L_F (Vaidya's support-tree preconditioner), factored exactly
with no fill (a forest is eliminated leaf first). Why it stays good to the end of the
interior point: there the active edges' weights h = λ/s grow like 1/μ while the others
vanish like μ, and in general position the active edges form a forest (a cycle of used
edges would need its frictions to cancel), so the maximum-weight forest holds every
heavy weight and M⁻¹K = I + M⁻¹(L − L_F) with L − L_F light: the condition number stays
bounded instead of growing like 1/μ². Keeping G itself in M matters: adding the dropped
edges' weights to M's diagonal (the textbook way to keep M diagonally dominant) pins the
soft mode of a heavy cluster and the iterations grow like 1/μ again. Measured on the
Newton systems of a 1,000-segment connected market (38 iterations from μ = 0.1 to
1e-13; relative residual 1e-12): Jacobi CG 32 → 2,000+ iterations (diverging at the end),
pyamg smoothed aggregation 7 → 2,000+, this forest 14 → 21 throughout.

**Accuracy.** CG runs on the rows scaled by K's diagonal (Jacobi-scaled residuals, so a
thin segment counts as much as a thick one) until every component's scaled residual is
below :data:`CG_RTOL` of its right-hand side. K's condition number reaches ~1e11 near
the end; the test is on the residual, a backward error, and at 1e-13 the solution's
componentwise backward error max |K x − b| / (|K| |x| + |b|) is ~4e-16, the same as a
dense LU's (25 iterations measured), which is all the interior point's own convergence
test (clearing residuals of the iterate, not of the linear solve) needs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import qdldl  # type: ignore[import-not-found]  # ships no type information
import scipy.sparse as sp
from scipy.sparse.csgraph import minimum_spanning_tree

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

#: relative, Jacobi-scaled residual at which CG stops (module docstring: backward error)
CG_RTOL = 1e-13
#: CG iterations at most per solve; the forest keeps it near 25 (module docstring)
CG_MAX_ITERATIONS = 500
#: a forest is chosen anew once CG needs this many times the iterations per digit it
#: needed right after it was chosen, plus _CG_SLACK (:class:`ForestCG`): the count per
#: digit scatters by about ±50 % between solves with one forest, and tighter bars renewed
#: the forest in every second iteration (37 times in 71 on 10^4 segments)
FOREST_SLOWDOWN = 2.0
_CG_SLACK = 5


def factor_directly(n_segments: int, n_edges: int, n_pairs: int) -> bool:
    """The symbolic test of the module docstring for one connected component of
    ``n_segments`` segments (and as many pools), ``n_edges`` edges (home edges included)
    and ``n_pairs`` distinct segment pairs joined by a pool (K's off-diagonal pattern)."""
    cycle_rank = max(n_edges - 2 * n_segments + 1, 0)
    return 2 * cycle_rank**2 <= n_segments + 2 * n_pairs


@dataclass(frozen=True)
class SchurPattern:
    """K's pattern for some components: its rows are the segments ``segs`` (positions in
    the problem), ``comp`` their component (0..C-1 within the block). ``indptr`` and
    ``indices`` are the symmetric CSR pattern; the caller's pairs taken in ``order`` add
    up, run by run (``runs``), into the data slots ``slot``; the diagonal of row i sits at
    ``diag[i]``; ``upper`` lists the data slots of the upper triangle in CSC order (QDLDL
    takes the upper triangle)."""

    segs: IntArray
    comp: IntArray
    n_comp: int
    indptr: IntArray
    indices: IntArray
    order: IntArray
    runs: IntArray
    slot: IntArray
    diag: IntArray
    upper: IntArray
    upper_indptr: IntArray
    upper_indices: IntArray
    strict: IntArray  # the data slots of the strict lower triangle, in CSR order …
    strict_indptr: IntArray
    strict_key: IntArray  # … and their keys row · n + column (ascending)

    @classmethod
    def build(
        cls, segs: IntArray, comp: IntArray, seg1: IntArray, seg2: IntArray, n_total: int
    ) -> SchurPattern:
        """The pattern of the segments ``segs`` and the pairs (seg1, seg2) among them
        (problem positions; both orders of each pair listed)."""
        n = segs.size
        local = np.full(n_total, -1, np.int64)
        local[segs] = np.arange(n)
        row = np.concatenate([np.arange(n), local[seg1]])
        col = np.concatenate([np.arange(n), local[seg2]])
        key = row * n + col
        order = np.argsort(key, kind="stable")
        sorted_key = key[order]
        new_run = np.r_[True, sorted_key[1:] != sorted_key[:-1]]
        distinct = sorted_key[new_run]
        slot = np.empty(key.size, np.int64)
        slot[order] = np.cumsum(new_run) - 1
        # the pairs in key order, and where each run of one matrix entry starts: two
        # pools serving the same two segments add to one entry
        entries = order[order >= n]
        pair_slot = slot[entries]
        runs = np.flatnonzero(np.r_[True, pair_slot[1:] != pair_slot[:-1]])[: pair_slot.size]
        r, c = distinct // n, distinct % n
        # the pattern is symmetric: CSR of the lower triangle is CSC of the upper one
        up = np.flatnonzero(c <= r)
        below = np.flatnonzero(c < r)
        return cls(
            segs=segs,
            comp=comp,
            n_comp=int(comp.max()) + 1 if n else 0,
            indptr=np.searchsorted(r, np.arange(n + 1)).astype(np.int64),
            indices=c.astype(np.int64),
            order=entries - n,
            runs=runs,
            slot=pair_slot[runs],
            diag=slot[:n],
            upper=up,
            upper_indptr=np.searchsorted(r[up], np.arange(n + 1)).astype(np.int64),
            upper_indices=c[up].astype(np.int64),
            strict=below,
            strict_indptr=np.searchsorted(r[below], np.arange(n + 1)).astype(np.int64),
            strict_key=distinct[below],
        )

    def matrix(self, pair_values: FloatArray, diagonal: FloatArray) -> sp.csr_matrix:
        """K from each pair's value (the caller's pair order) and the diagonal."""
        data = np.zeros(self.indices.size)
        if self.order.size:
            data[self.slot] = np.add.reduceat(pair_values[self.order], self.runs)
        data[self.diag] = diagonal
        n = self.segs.size
        return sp.csr_matrix((data, self.indices, self.indptr), shape=(n, n))


class DirectSchur:
    """LDLᵀ of K (module docstring), the symbolic analysis kept between iterations."""

    def __init__(self, pattern: SchurPattern) -> None:
        self.pattern = pattern
        self._solver: qdldl.Solver | None = None

    def factor(
        self, pair_values: FloatArray, diagonal: FloatArray, ground: FloatArray
    ) -> DirectSchur:
        k = self.pattern.matrix(pair_values, diagonal)
        n = k.shape[0]
        pt = self.pattern
        upper = sp.csc_matrix((k.data[pt.upper], pt.upper_indices, pt.upper_indptr), (n, n))
        if self._solver is None:
            self._solver = qdldl.Solver(upper, upper=True)
        else:
            self._solver.update(upper, upper=True)
        return self

    def solve(self, b: FloatArray, rtol: float) -> FloatArray:
        """K⁻¹ b for every column of ``b`` (exact: ``rtol`` is for CG)."""
        assert self._solver is not None
        return np.stack([self._solver.solve(col) for col in b.T], axis=1)


class ForestCG:
    """K solved by CG, preconditioned by its maximum spanning forest (module docstring).

    The forest is kept from one factorization to the next (only M's values change, a
    numeric refactorization on the same pattern) while CG still converges at the rate it
    had right after the forest was chosen: iterations per digit of ``rtol`` at most
    :data:`FOREST_SLOWDOWN` times that rate. A solve that needs more stops there, chooses
    the forest anew and goes on from where it stopped (a spanning tree of 10^4 segments
    costs 11 ms and its first factorization 4.5 ms, a refactorization 0.2 ms; a stale
    forest after a what-if's first steps once took 211 iterations instead of 15)."""

    def __init__(self, pattern: SchurPattern) -> None:
        self.pattern = pattern
        none = pattern.segs[:0]
        self._k: sp.csr_matrix | None = None
        self._ground = none.astype(np.float64)
        self._m: qdldl.Solver | None = None
        self._forest: IntArray | None = None  # K's data slots of the forest's edges
        self._ends: tuple[IntArray, IntArray] = (none, none)
        self._m_order: IntArray = none  # M's CSC data from [−ω_F, diagonal]
        self._m_pattern: tuple[IntArray, IntArray] = (none, none)
        self._fresh = True  # the forest was chosen for the current K
        self._fresh_rate = np.inf  # CG iterations per digit with a freshly chosen forest
        self.iterations = 0  # CG iterations of the last solve

    def factor(self, pair_values: FloatArray, diagonal: FloatArray, ground: FloatArray) -> ForestCG:
        """Assemble K, and factor M = G + L_F: ``ground`` is G (computed apart, since
        diag(K) − Σ|ω| cancels catastrophically where the weights are large)."""
        self._k, self._ground = self.pattern.matrix(pair_values, diagonal), ground
        if self._forest is None:
            self._choose_forest()
        else:
            self._fresh = False
            self._factor_m()
        return self

    def _choose_forest(self) -> None:
        """The maximum-weight spanning forest of K's graph (as K's data slots), the CSC
        pattern of M = G + L_F, and M's first factorization."""
        assert self._k is not None
        pt, k = self.pattern, self._k
        n = k.shape[0]
        weight = -k.data[pt.strict]
        # the spanning tree of the reciprocal weights is the maximum-weight forest; the
        # polish's inactive rows carry no weight and are no edges
        inverse = np.divide(1.0, weight, out=np.zeros_like(weight), where=weight > 0)
        graph = sp.csr_matrix((inverse, pt.indices[pt.strict], pt.strict_indptr), (n, n))
        graph.eliminate_zeros()
        tree = minimum_spanning_tree(graph).tocoo()
        row, col = tree.row.astype(np.int64), tree.col.astype(np.int64)  # no int32 overflow
        hi, lo = np.maximum(row, col), np.minimum(row, col)
        self._forest = pt.strict[np.searchsorted(pt.strict_key, hi * n + lo)]
        self._ends = lo, hi
        rows = np.concatenate([lo, np.arange(n)])
        cols = np.concatenate([hi, np.arange(n)])
        at = sp.coo_matrix((np.arange(rows.size) + 1.0, (rows, cols)), shape=(n, n)).tocsc()
        self._m_order = (at.data - 1).astype(np.int64)
        self._m_pattern = (at.indices.astype(np.int64), at.indptr.astype(np.int64))
        self._m = None
        self._fresh = True
        self._factor_m()

    def _factor_m(self) -> None:
        """Factor M = G + L_F with the current K's weights on the forest's edges."""
        assert self._k is not None and self._forest is not None
        n = self._k.shape[0]
        w = -self._k.data[self._forest]
        lo, hi = self._ends
        diag = self._ground + np.bincount(lo, w, minlength=n) + np.bincount(hi, w, minlength=n)
        values = np.concatenate([-w, diag])[self._m_order]
        m = sp.csc_matrix((values, *self._m_pattern), shape=(n, n))
        if self._m is None:
            self._m = qdldl.Solver(m, upper=True)
        else:
            self._m.update(m, upper=True)

    def solve(self, b: FloatArray, rtol: float) -> FloatArray:
        """K⁻¹ b for every column of ``b``: CG on all columns and components at once,
        until every component's Jacobi-scaled residual is ``rtol`` of its right-hand
        side; a kept forest that has gone stale is replaced on the way (class
        docstring). The columns are held as rows (contiguous), so every reduction runs
        along memory."""
        assert self._k is not None
        digits = max(-np.log10(rtol), 1.0)
        x = np.zeros((b.shape[1], b.shape[0]))
        budget = CG_MAX_ITERATIONS
        if not self._fresh and np.isfinite(self._fresh_rate):
            budget = int(np.ceil(FOREST_SLOWDOWN * self._fresh_rate * digits)) + _CG_SLACK
        done, used = self._cg(np.ascontiguousarray(b.T), x, rtol, budget)
        if not done:
            self._choose_forest()
            done, more = self._cg(np.ascontiguousarray(b.T), x, rtol, CG_MAX_ITERATIONS)
            used += more
            self._fresh_rate = more / digits
        elif self._fresh:
            self._fresh_rate = used / digits
        self.iterations = used
        return np.ascontiguousarray(x.T)

    def _cg(self, b: FloatArray, x: FloatArray, rtol: float, budget: int) -> tuple[bool, int]:
        """Preconditioned CG on K x = b (columns as rows) from ``x``, updated in place, for
        at most ``budget`` iterations: whether it converged, and its iterations."""
        assert self._k is not None and self._m is not None
        k, m = self._k, self._m
        comp, n_comp = self.pattern.comp, self.pattern.n_comp
        scale = 1.0 / k.diagonal()

        def precondition(r: FloatArray) -> FloatArray:
            return np.stack([m.solve(row) for row in r])

        def norms(r: FloatArray) -> FloatArray:
            """Jacobi-scaled norm² of each column's part in each component."""
            sq = r * r * scale
            if n_comp == 1:
                total: FloatArray = sq.sum(axis=1, keepdims=True)
                return total
            return np.stack([np.bincount(comp, row, minlength=n_comp) for row in sq])

        goal = rtol**2 * norms(b)
        r = b - (k @ x.T).T if x.any() else b.copy()
        z = precondition(r)
        d = z.copy()
        rz = np.einsum("ij,ij->i", r, z)[:, None]
        for used in range(budget + 1):
            if (norms(r) <= goal).all():
                return True, used
            if used == budget:
                break
            q = (k @ d.T).T
            dq = np.einsum("ij,ij->i", d, q)[:, None]
            alpha = np.divide(rz, dq, out=np.zeros_like(rz), where=dq > 0)
            x += alpha * d
            r -= alpha * q
            z = precondition(r)
            rz_next = np.einsum("ij,ij->i", r, z)[:, None]
            beta = np.divide(rz_next, rz, out=np.zeros_like(rz), where=rz > 0)
            d = z + beta * d
            rz = rz_next
        return False, budget


Schur = DirectSchur | ForestCG
