r"""The equilibrium on a forest of used rows: exact and O(n), from a nearly right guess.

**Nodes and rows.** The coupled problem of :mod:`pricing.market.interior` as a network:
pools are nodes 0..n−1 (price w_j), segments n..2n−1 (price p_k), and one ground node
2n at price 0, the phantom side of the rate bounds. Every constraint of the dual is a row
i from a tail a_i to a head b_i with a constant c_i, a reduced cost and a flow

    r_i = π_a − π_b + c_i ≥ 0,     x_i ≥ 0,     x_i r_i = 0,

    edge j → k (home edges k → k):  a = pool j,   b = segment k,  c = τ_jk      x: hours
    cap of segment k:               a = ground,   b = segment k,  c = cap_k     x: shortage
    floor of segment k:             a = segment k, b = ground,    c = −floor_k  x: surplus

and every node but the ground balances:

    segment k:  Σ_{i into k} x_i − Σ_{i out of k} x_i = D_k(p_k) = H*_k (p_k/p*_k)^ε_k
    pool j:     Σ_{i out of j} x_i − Σ_{i into j} x_i = S_j(w_j) = H*_j (w_j/p*_j)^η_j

(S_j = 0 at w_j ≤ 0, the limit of the curve).

**The solve on a forest.** Let A be the rows that carry flow (r = 0 there). When A is a
forest, each tree T has one degree of freedom: along its rows π_b = π_a + c, so every
node's price is π_v = t_T + o_v with offsets o_v from the tree's root, and the tree's
balance is one equation in t_T,

    g_T(t) = Σ_{segments k ∈ T} D_k(t + o_k) − Σ_{pools j ∈ T} S_j(t + o_j) = 0,

decreasing in t, +∞ as the cheapest segment's rate falls to 0 and −∞ as t grows: one root,
found by a safeguarded Newton iteration on all trees at once, on log D_T − log S_T in
log t (D_T, S_T the tree's demand and supply: power curves make it linear for a segment
and its own pool, nearly so where the offsets are small against t; 4–6 iterations where
Newton on g_T took 6–20). The tree holding the
ground has its prices fixed (π_ground = 0) and the ground takes up its imbalance. The
flows are then unique: the row joining a node to its parent carries the net demand of
the node's subtree. Everything is a pass over the nodes or the rows, level by level of
the trees: no linear algebra.

**The active set.** That solution is the equilibrium when every flow is ≥ 0 and every
row outside A has r ≥ 0 (rounding aside). Otherwise A changes (a primal–dual active set
step), one row per group (a tree, or a branch of the ground's tree) a round, like a
network simplex pivot per tree: a row with negative flow leaves; a row that pays
enters, and when it closes a cycle in its tree the cycle's row that empties first
leaves (the ratio test); a node a leaving bound row strands takes its cheapest row.
The row a group changes is its worst after a random factor, 1 ± 1/8 for the first 15
rounds and 1 ± 1/2 after: the worst alone cycles for ever on a few components (a state
repeating every few rounds), and the narrow factor first keeps the rule near the worst
row where that is the right one (fewer rounds).

Measured on issue 18's markets, this settles from the uncoupled solution (every segment
on its home edge) in 30–45 rounds of local work (10^4–10^5 segments, connected or in
components of 2–50, bounded or not), from the rows the interior point has decided by
μ ≈ 1e-6 or from a what-if's baseline in 1–3. A round's work is the touched groups'
solve and the checks of the components still unsettled (:func:`finish`): on 10^5
segments in components of 2–50 the components settle one after another (half of them
by round 10, all by round 33), so the 33 rounds cost about ten rounds of the whole
market. Several changes per tree a round do not converge (measured: 2 a round left 2 %
of those components unsettled after 125 rounds), nor does a tree changing every row
that is the worst of either group it joins. It is an active-set method without a
proof of convergence, so the rounds stop at their limit or when the wrong rows have not
fallen for :data:`_STALL` rounds, and a component left unsettled goes back to the
caller (the interior point) unconverged.

**Where the rounds run.** :func:`finish` is the rounds vectorized over a whole network,
re-solving only what a round touched; :mod:`pricing.market.pivots` runs the same rounds
compiled, one component at a time, and sends here only components above its size limit
(its docstring has the measured crossover). The tree solves and flows above are the
ones both follow.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Protocol

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp
from scipy.sparse.csgraph import breadth_first_order, connected_components, minimum_spanning_tree

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

#: rounding level of the forest's answer, relative to a row's hours (flows) or rate
#: (reduced costs): a flow or reduced cost beyond it on the wrong side changes the row
ROUNDING = 1e-12
#: rounds without fewer wrong rows than ever before after which the rounds stop: the
#: wrong rows fall by a quarter or more a round until a few are left (issue 18's markets)
_STALL = 15
#: the pivot rule's random factor is 1 ± its spread: narrow for the first rounds, where
#: the worst row is mostly the one to change, then wide, which breaks the cycles the
#: worst row alone can fall into (:func:`finish`)
EARLY_ROUNDS, EARLY_SPREAD, SPREAD = 15, 0.125, 0.5
#: Newton iterations at most per tree (bisection steps included: 60 halve any bracket
#: below the rounding of a rate)
_NEWTON_ITERATIONS = 60


class Coupled(Protocol):
    """The coupled problem (:class:`pricing.market.interior.CoupledProblem`): its arrays,
    read only."""

    @property
    def component(self) -> IntArray: ...

    @property
    def eps(self) -> FloatArray: ...

    @property
    def eta(self) -> FloatArray: ...

    @property
    def p_star(self) -> FloatArray: ...

    @property
    def h_star(self) -> FloatArray: ...

    @property
    def floor(self) -> FloatArray: ...

    @property
    def cap(self) -> FloatArray: ...

    @property
    def pool(self) -> IntArray: ...

    @property
    def segment(self) -> IntArray: ...

    @property
    def friction(self) -> FloatArray: ...


@dataclass(frozen=True)
class Network:
    """The nodes and rows of a coupled problem (module docstring): rows in the interior
    point's order (edges, then caps, then floors)."""

    n: int  # segments of the whole problem (pools 0..n−1, segments n..2n−1, ground 2n)
    tail: IntArray
    head: IntArray
    const: FloatArray
    p_star: FloatArray  # per node (ground: 1)
    h_star: FloatArray  # per node (ground: 0)
    elasticity: FloatArray  # per node: η of a pool, ε of a segment
    sign: FloatArray  # per node: +1 segment (demand), −1 pool (supply), 0 ground
    comp: IntArray  # per row: its segment's component
    n_comp: int
    hours: FloatArray  # per row: the hours its flow is rounded against (larger end)
    rate: FloatArray  # per row: its segment's p*, the scale of its reduced cost

    @classmethod
    def build(cls, pb: Coupled) -> Network:
        n = pb.p_star.size
        ground = 2 * n
        ic, jf = np.flatnonzero(np.isfinite(pb.cap)), np.flatnonzero(np.isfinite(pb.floor))
        tail = np.concatenate([pb.pool, np.full(ic.size, ground), n + jf]).astype(np.int64)
        head = np.concatenate([n + pb.segment, n + ic, np.full(jf.size, ground)]).astype(np.int64)
        row_seg = np.concatenate([pb.segment, ic, jf])
        hs = pb.h_star
        return cls(
            n=n,
            tail=tail,
            head=head,
            const=np.concatenate([pb.friction, pb.cap[ic], -pb.floor[jf]]),
            p_star=np.concatenate([pb.p_star, pb.p_star, [1.0]]),
            h_star=np.concatenate([hs, hs, [0.0]]),
            elasticity=np.concatenate([pb.eta, pb.eps, [0.0]]),
            sign=np.concatenate([-np.ones(n), np.ones(n), [0.0]]),
            comp=pb.component[row_seg].astype(np.int64),
            n_comp=int(pb.component.max()) + 1 if n else 0,
            hours=np.concatenate([np.maximum(hs[pb.pool], hs[pb.segment]), hs[ic], hs[jf]]),
            rate=pb.p_star[row_seg],
        )

    @property
    def nodes(self) -> int:
        return self.p_star.size

    @cached_property
    def key(self) -> IntArray:
        """Per row: its two nodes as one number (lower · nodes + higher)."""
        low, high = np.minimum(self.tail, self.head), np.maximum(self.tail, self.head)
        key: IntArray = low * self.nodes + high
        return key

    def node_component(self) -> IntArray:
        """Every node's component, from its rows (the ground, in every component: −1)."""
        out = np.full(self.nodes, -1, np.int64)
        out[self.tail], out[self.head] = self.comp, self.comp
        out[-1] = -1
        return out

    def subnet(self, keep: BoolArray) -> tuple[Network, IntArray, IntArray]:
        """The nodes ``keep`` (the ground always) and the rows between them as a network of
        their own, with where its nodes and rows are in this one."""
        keep = keep.copy()
        keep[-1] = True
        node = np.flatnonzero(keep)  # the ground stays last
        local = np.full(self.nodes, -1, np.int64)
        local[node] = np.arange(node.size)
        row = np.flatnonzero(keep[self.tail] & keep[self.head])
        tail, head = local[self.tail[row]], local[self.head[row]]
        sub = Network(
            n=self.n,
            tail=tail,
            head=head,
            const=self.const[row],
            p_star=self.p_star[node],
            h_star=self.h_star[node],
            elasticity=self.elasticity[node],
            sign=self.sign[node],
            comp=self.comp[row],
            n_comp=self.n_comp,
            hours=self.hours[row],
            rate=self.rate[row],
        )
        return sub, node, row

    def requirement(self, price: FloatArray, at: IntArray) -> tuple[FloatArray, FloatArray]:
        """Each node's net demand D (segments) or −S (pools) at ``price`` and its
        derivative in the price, for the nodes ``at``."""
        ps, hs, el, sign = self.p_star[at], self.h_star[at], self.elasticity[at], self.sign[at]
        positive = price > 0
        ratio = np.where(positive, price, 1.0) / ps
        hours = np.where(positive, hs * np.exp(el * np.log(ratio)), np.where(sign > 0, np.inf, 0))
        slope = np.where(positive, el * hours / np.where(positive, price, 1.0), 0.0)
        return sign * hours, sign * slope


@dataclass(frozen=True)
class Forest:
    """The trees of a forest of rows, rooted (the ground roots its tree): its rows, the
    nodes in breadth-first order from a virtual root above all trees, each node's parent
    and the row to it, where each level starts in that order, and each node's tree."""

    rows: IntArray
    order: IntArray  # nodes, level by level (the virtual root left out)
    parent: IntArray  # per node (a root's is −1)
    parent_row: IntArray  # per node (a root's is −1)
    levels: IntArray  # positions in ``order`` where each level starts, and its end
    tree: IntArray  # per node
    n_trees: int
    ground_tree: int

    @property
    def depth(self) -> IntArray:
        """Every node's level (a root's is 0)."""
        out = np.empty(self.order.size, np.int64)
        out[self.order] = np.repeat(np.arange(self.levels.size - 1), np.diff(self.levels))
        return out


@dataclass
class Layout:
    """Where every node sits in the forest: its group (:func:`_offsets`), tree, parent,
    the row to its parent, and its depth. :func:`finish` keeps one for the whole network
    and rewrites the touched groups' nodes after each local solve."""

    group: IntArray
    tree: IntArray
    parent: IntArray
    parent_row: IntArray
    depth: IntArray

    def update(self, node: IntArray, row: IntArray, sub: Layout) -> None:
        """Take over a subnetwork's layout (``node``, ``row``: where its nodes and rows
        are here; the ground, its last node, keeps its own)."""
        at, mine = node[:-1], slice(0, node.size - 1)
        fresh = int(max(self.group.max(), self.tree.max())) + 1
        self.group[at] = fresh + sub.group[mine]
        # the ground's tree stays one tree: its branches solved here join the others
        anchored = sub.tree[mine] == sub.tree[-1]
        self.tree[at] = np.where(anchored, self.tree[-1], fresh + sub.tree[mine])
        self.parent[at] = np.where(sub.parent[mine] >= 0, node[sub.parent[mine]], -1)
        self.parent_row[at] = np.where(sub.parent_row[mine] >= 0, row[sub.parent_row[mine]], -1)
        self.depth[at] = sub.depth[mine]

    def restrict(self, node: IntArray, row: IntArray, n_rows: int) -> Layout:
        """The layout of the nodes ``node`` and rows ``row`` (each node's parent and the
        row to it among them, as in :meth:`Network.subnet`), out of ``n_rows`` rows."""
        node_at = np.full(self.group.size, -1, np.int64)
        node_at[node] = np.arange(node.size)
        row_at = np.full(n_rows, -1, np.int64)
        row_at[row] = np.arange(row.size)
        parent, parent_row = self.parent[node], self.parent_row[node]
        # groups and trees numbered anew: each round's labels start above the largest
        return Layout(
            _renumbered(self.group[node]),
            _renumbered(self.tree[node]),
            np.where(parent >= 0, node_at[parent], -1),
            np.where(parent_row >= 0, row_at[parent_row], -1),
            self.depth[node],
        )


def _renumbered(labels: IntArray) -> IntArray:
    """``labels`` as 0, 1, … in their order (without a sort: they are small integers)."""
    present = np.zeros(int(labels.max(initial=-1)) + 1, bool)
    present[labels] = True
    out: IntArray = (np.cumsum(present) - 1)[labels]
    return out


def _trees(net: Network, rows: IntArray) -> Forest:
    """Root every tree of the forest ``rows`` and order its nodes breadth first (rows
    with a cycle: a spanning forest of them, ``n_trees`` counting its trees)."""
    nodes = net.nodes
    ground = nodes - 1
    # the forest's adjacency, both directions, each entry with its row: CSR by node
    ends = np.concatenate([net.tail[rows], net.head[rows]])
    by_node = np.argsort(ends, kind="stable")
    node_of = ends[by_node]
    neighbour = np.concatenate([net.head[rows], net.tail[rows]])[by_node]
    entry_row = np.concatenate([rows, rows])[by_node]
    indptr = np.concatenate([[0], np.cumsum(np.bincount(node_of, minlength=nodes))])
    graph = sp.csr_matrix((np.ones(neighbour.size), neighbour, indptr), (nodes, nodes))
    n_trees, tree = connected_components(graph, directed=True, connection="strong")
    tree = tree.astype(np.int64)
    root = np.full(n_trees, nodes, np.int64)
    np.minimum.at(root, tree, np.arange(nodes))
    root[tree[ground]] = ground
    # a virtual root above every tree's root (one more row of the CSR, edges out only):
    # one breadth-first pass orders every tree
    top = sp.csr_matrix(
        (np.ones(neighbour.size + n_trees), np.concatenate([neighbour, root]),
         np.append(indptr, indptr[-1] + n_trees)),
        (nodes + 1, nodes + 1),
    )  # fmt: skip
    order, pred = breadth_first_order(top, nodes, directed=True, return_predecessors=True)
    order = order[1:].astype(np.int64)
    parent = pred[:nodes].astype(np.int64)
    parent[root] = -1
    # each node's row to its parent: the entry of its adjacency that points there
    up = neighbour == parent[node_of]
    parent_row = np.full(nodes, -1, np.int64)
    parent_row[node_of[up]] = entry_row[up]
    return Forest(rows, order, parent, parent_row, _levels(order, parent, n_trees), tree,
                  n_trees, int(tree[ground]))  # fmt: skip


def _levels(order: IntArray, parent: IntArray, n_trees: int) -> IntArray:
    """Where each level starts in the breadth-first ``order`` (and where the last ends):
    a breadth-first order visits parents in order, so level k + 1 starts at the first
    node whose parent lies at or beyond the start of level k."""
    position = np.empty(order.size, np.int64)
    position[order] = np.arange(order.size)
    parent_position = position[parent[order[n_trees:]]]  # nondecreasing
    starts = [0, n_trees]
    while starts[-1] < order.size:
        starts.append(n_trees + int(np.searchsorted(parent_position, starts[-1], side="left")))
        if starts[-1] == starts[-2]:  # a broken forest: stop rather than loop
            break
    return np.asarray(starts, np.int64)


def _offsets(net: Network, tr: Forest) -> tuple[FloatArray, IntArray]:
    """Every node's price relative to its tree's root (π_b = π_a + c along a row), and
    its group: its tree, or in the ground's tree its branch (the ground's child above
    it), since the ground's branches do not interact (their prices are fixed)."""
    offset = np.zeros(net.nodes)
    group = tr.tree.copy()
    first = tr.levels[1:-1].tolist()
    for lo, hi in zip(first, tr.levels[2:].tolist(), strict=True):
        v = tr.order[lo:hi]
        u, row = tr.parent[v], tr.parent_row[v]
        offset[v] = offset[u] + np.where(net.tail[row] == u, net.const[row], -net.const[row])
        group[v] = np.where(u == net.nodes - 1, tr.n_trees + v, group[u])
    return offset, group


def _clear_trees(
    net: Network, tr: Forest, offset: FloatArray, guess: FloatArray
) -> tuple[FloatArray, BoolArray]:
    """The root price t_T of every tree that clears it (module docstring), by Newton's
    method kept inside a bracket [lo, hi] of the root (bisection when it leaves it), and
    whether it got there within its iterations; ``guess``: prices to start from. The
    ground's tree is fixed at t = 0."""
    tree, n_trees = tr.tree, tr.n_trees
    segment = net.sign > 0
    lo = np.full(n_trees, -np.inf)  # g > 0 at lo: the cheapest segment's rate at 0
    np.maximum.at(lo, tree[segment], -offset[segment])
    # a tree without a segment is the lone ground's (a forest leaves no pool alone)
    lo[~np.isfinite(lo)] = 0.0
    hi = np.full(n_trees, np.inf)
    weight = net.h_star
    t = np.bincount(tree, weight * (guess - offset), n_trees) / np.maximum(
        np.bincount(tree, weight, n_trees), 1e-300
    )
    inside = lo + np.maximum(1e-3 * np.abs(lo), 1e-9)
    t = np.where(np.isfinite(t) & (t > lo), t, inside)
    todo = np.ones(n_trees, bool)
    todo[tr.ground_tree] = False
    t[tr.ground_tree] = 0.0
    # the iterations run on the trees still moving only: the trees still moving, their
    # nodes, and each node's tree among them (most trees finish in 4–6 iterations, a few
    # take 20 and more)
    trees = np.flatnonzero(todo)
    at = np.flatnonzero(todo[tree])
    local = (np.cumsum(todo) - 1)[tree[at]]
    lo, hi, root = lo[trees], hi[trees], t[trees]
    for _ in range(_NEWTON_ITERATIONS):
        if not trees.size:
            break
        value, slope = net.requirement(root[local] + offset[at], at)
        demand = net.sign[at] > 0
        d = np.bincount(local, np.where(demand, value, 0.0), trees.size)
        s = -np.bincount(local, np.where(demand, 0.0, value), trees.size)
        d_slope = np.bincount(local, np.where(demand, slope, 0.0), trees.size)
        s_slope = -np.bincount(local, np.where(demand, 0.0, slope), trees.size)
        g, size = d - s, d + s
        lo = np.where(g > 0, np.maximum(lo, root), lo)
        hi = np.where(g < 0, np.minimum(hi, root), hi)
        # Newton's step on log D − log S in log t: exact in one step for a lone segment
        # and its pool (power curves), nearly so where the offsets are small against t
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            phi = np.log(d / s)
            newton = root * np.exp(-phi / (root * (d_slope / d - s_slope / s)))
            plain = root - g / (d_slope - s_slope)
        newton = np.where((root > 0) & (s > 0) & np.isfinite(newton), newton, plain)
        # outside the bracket: bisect it (or, with no upper end yet, double the distance)
        wide = np.where(np.isfinite(hi), 0.5 * (lo + hi), root + 2.0 * (root - lo))
        step = np.where((newton > lo) & (newton <= hi), newton, wide)
        # a tree is done at rounding: its balance below the last digit, or its last step
        moving = ~(np.abs(g) <= 1e-15 * size)
        # quadratic convergence: the error after a step of 1e-9 is ~1e-18 (times the
        # curvature of the curves' powers, a few units), so no step follows it
        going = moving & (np.abs(step - root) > 1e-9 * np.abs(root))
        root = np.where(moving, step, root)
        if not going.all():
            t[trees] = root
            trees, lo, hi, root = trees[going], lo[going], hi[going], root[going]
            kept = going[local]
            at, local = at[kept], (np.cumsum(going) - 1)[local[kept]]
    t[trees] = root
    todo[:] = False
    todo[trees] = True
    # a tree still moving (curves so flat that its rate sits orders of magnitude away)
    # is not cleared: its root's imbalance goes to no row, so its flows look right
    return t, ~todo


def _flows(net: Network, tr: Forest, price: FloatArray) -> FloatArray:
    """Every row's flow: the row from a node to its parent carries the net demand of the
    node's subtree (summed leaves first, level by level)."""
    everyone = np.arange(net.nodes)
    subtree, _ = net.requirement(price, everyone)
    subtree[-1] = 0.0  # the ground balances nothing
    flow = np.zeros(net.tail.size)
    position = np.empty(net.nodes, np.int64)
    position[tr.order] = np.arange(tr.order.size)
    levels = tr.levels.tolist()
    # level k is order[levels[k]:levels[k + 1]]; its parents are level k − 1
    for k in range(len(levels) - 2, 0, -1):
        above, lo, hi = levels[k - 1], levels[k], levels[k + 1]
        v = tr.order[lo:hi]
        row = tr.parent_row[v]
        flow[row] = np.where(net.head[row] == v, subtree[v], -subtree[v])
        subtree[tr.order[above:lo]] += np.bincount(
            position[tr.parent[v]] - above, subtree[v], minlength=lo - above
        )
    return flow


def solve_forest(
    net: Network, tr: Forest, guess: FloatArray
) -> tuple[FloatArray, FloatArray, Layout, BoolArray]:
    """Prices (per node) and flows (per row) of the forest ``tr`` (module docstring),
    where every node sits in it, and whether its tree cleared (per node);  ``guess``:
    prices per node to start the trees' Newton iterations from."""
    offset, group = _offsets(net, tr)
    root, cleared = _clear_trees(net, tr, offset, guess)
    price = root[tr.tree] + offset
    price[-1] = 0.0
    layout = Layout(group, tr.tree, tr.parent, tr.parent_row, tr.depth)
    return price, _flows(net, tr, price), layout, cleared[tr.tree]


@dataclass(frozen=True)
class Finish:
    """The active-set rounds' answer: prices per node, flows per row (clipped at 0 within
    :data:`ROUNDING`), the last forest, and per component whether it settled: every flow
    ≥ 0 and every reduced cost ≥ 0, to rounding (then it is the exact equilibrium)."""

    price: FloatArray
    flow: FloatArray
    rows: IntArray
    settled: BoolArray
    rounds: int


def finish(net: Network, forest: Forest, guess: FloatArray, rounds: int) -> Finish:
    """Solve on the ``forest`` (:func:`spanning_forest`) and change its rows
    (:func:`_changes`) until every component settles, at most ``rounds`` times;
    ``guess``: prices per node to start from.

    After the first solve a round is local: a change touches one or two groups (trees,
    or branches of the ground's tree), and the rest of the forest, its prices and flows
    stay as they are, so only the touched groups' nodes are solved again (a what-if on
    10^5 connected segments: a few hundred nodes a round instead of 2·10^5). The checks
    of a round (reduced costs and flows of every row) run on the unsettled components
    only: each time half of them have settled, the rounds go on with a network of the
    others (:class:`_Live`). A settled component has no wrong row, so no round touches
    it again. (10^5 segments in components of 2–50 settle in about 33 rounds from the
    uncoupled rows, but on average only a third of the components are still unsettled.)"""
    price, flow, at, cleared = solve_forest(net, forest, guess)
    active = np.zeros(net.tail.size, bool)
    active[forest.rows] = True
    live = _Live.of(net, price, flow, active)
    fewest, since = np.inf, 0  # the fewest wrong rows so far, and rounds since then
    for used in range(rounds + 1):
        reduced = price[net.tail] - price[net.head] + net.const
        negative = active & (flow < -ROUNDING * net.hours)
        paying = ~active & (reduced < -ROUNDING * net.rate)
        unsettled = np.zeros(net.n_comp, bool)
        unsettled[net.comp[negative | paying]] = True
        unsettled[net.comp[~cleared[net.tail] | ~cleared[net.head]]] = True
        count = int((negative | paying).sum())
        fewest, since = (count, 0) if count < fewest else (fewest, since + 1)
        # stalled: a few rows left that keep changing one another (a cycle of pivots
        # the random rule has not broken), for the caller's other method
        if not count or used == rounds or since > _STALL:
            break
        if 2 * int(unsettled.sum()) <= live.components:
            sub, node, row = live.narrow(net, unsettled, price, flow, active)
            at = at.restrict(node, row, flow.size)
            net, price, cleared = sub, price[node], cleared[node]
            flow, active, negative, paying = flow[row], active[row], negative[row], paying[row]
            reduced = reduced[row]
        ground = net.nodes - 1
        # how far each wrong row is from right, in the units of its rounding
        wrong = np.flatnonzero(negative | paying)
        badness = np.where(
            active[wrong], -flow[wrong] / net.hours[wrong], -reduced[wrong] / net.rate[wrong]
        )
        # a random pivot rule: each row's badness scaled by a factor in 1 ± spread,
        # seeded by the round (a solve is reproducible). With the worst row alone a few
        # components cycle for ever (one of 3,850 in 10^5 segments in components of
        # 2–50; 10^5 connected segments with 2–7 rows left after 30 rounds); randomness
        # breaks it. Narrow at first, where the worst row is mostly right: 10^5
        # connected segments settle in 45 rounds instead of 55 (0.69 s against 0.79 s)
        spread = EARLY_SPREAD if used < EARLY_ROUNDS else SPREAD
        jitter = np.random.default_rng(used).uniform(1 - spread, 1 + spread, wrong.size)
        chosen = _changes(net, at.group, wrong, badness * jitter)
        closing = chosen[~active[chosen] & (at.tree[net.tail[chosen]] == at.tree[net.head[chosen]])]
        toggled = np.concatenate([chosen, _leaving(net, closing, at, flow)])
        toggled = np.concatenate([toggled, _rejoin(net, active, toggled, reduced)])
        touched = np.zeros(int(at.group.max()) + 1, bool)
        touched[at.group[net.tail[toggled]]] = touched[at.group[net.head[toggled]]] = True
        touched[at.group[ground]] = False  # the ground's own group: its branches decide
        sub, node, row = net.subnet(touched[at.group])
        sub_active = active[row]
        sub_active[np.searchsorted(row, toggled)] ^= True
        candidates = np.flatnonzero(sub_active)
        # a forest by construction (one change per group); the spanning forest only
        # guards it, keeping the entering rows first
        priority = np.where(
            active[row[candidates]], np.clip(flow[row[candidates]] / sub.hours[candidates],
                                             0.0, 0.99), 2.0,
        )  # fmt: skip
        forest = spanning_forest(sub, candidates, priority)
        sub_price, sub_flow, sub_layout, sub_cleared = solve_forest(sub, forest, price[node])
        price[node[:-1]] = sub_price[:-1]
        cleared[node[:-1]] = sub_cleared[:-1]
        in_forest = np.zeros(row.size, bool)
        in_forest[forest.rows] = True
        flow[row] = np.where(in_forest, sub_flow, 0.0)
        active[row] = False
        active[row[forest.rows]] = True
        at.update(node, row, sub_layout)
    return live.answer(price, flow, active, negative, unsettled, used)


@dataclass
class _Live:
    """The whole network's prices, flows and used rows while :func:`finish` works on a
    part of it (the unsettled components and the ground), where the part's nodes and
    rows are in the whole, and how many components it holds."""

    price: FloatArray
    flow: FloatArray
    active: BoolArray
    node: IntArray  # per node of the part: its node in the whole
    row: IntArray  # per row of the part: its row in the whole
    node_comp: IntArray  # per node of the whole: its component (the ground: −1)
    components: int

    @classmethod
    def of(cls, net: Network, price: FloatArray, flow: FloatArray, active: BoolArray) -> _Live:
        node_comp = net.node_component()
        n_comp = int(np.unique(net.comp).size)
        return cls(price, flow, active, np.arange(net.nodes), np.arange(net.tail.size),
                   node_comp, n_comp)  # fmt: skip

    def store(self, price: FloatArray, flow: FloatArray, active: BoolArray) -> None:
        """Write the part's state into the whole (the same arrays while they are one)."""
        self.price[self.node], self.flow[self.row], self.active[self.row] = price, flow, active

    def narrow(
        self,
        net: Network,
        unsettled: BoolArray,
        price: FloatArray,
        flow: FloatArray,
        active: BoolArray,
    ) -> tuple[Network, IntArray, IntArray]:
        """The part ``net`` cut to its ``unsettled`` components, with where the new
        part's nodes and rows are in ``net``; the old part's state goes to the whole."""
        self.store(price, flow, active)
        sub, node, row = net.subnet(unsettled[self.node_comp[self.node]])
        self.node, self.row = self.node[node], self.row[row]
        self.components = int(unsettled.sum())
        return sub, node, row

    def answer(
        self,
        price: FloatArray,
        flow: FloatArray,
        active: BoolArray,
        negative: BoolArray,
        unsettled: BoolArray,
        rounds: int,
    ) -> Finish:
        """The whole network's answer, the part's flows clipped at 0 within rounding."""
        clipped = np.where(active & (flow < 0) & ~negative, 0.0, flow)
        self.store(price, clipped, active)
        return Finish(self.price, self.flow, np.flatnonzero(self.active), ~unsettled, rounds)


def _rejoin(net: Network, active: BoolArray, toggled: IntArray, reduced: FloatArray) -> IntArray:
    """Rows that keep every node in the forest after the ``toggled`` rows change: a node
    left without a row (a segment whose floor was its only row — the ground's leaf, whose
    surplus comes out negative and leaves) takes its best row, the one of least reduced
    cost, which joins it to another group."""
    ground = net.nodes - 1
    bound = (net.tail[toggled] == ground) | (net.head[toggled] == ground)
    if not (active[toggled] & bound).any():  # only a bound row leaving strands a node
        return np.zeros(0, np.int64)
    after = active.copy()
    after[toggled] ^= True
    ends = np.unique(np.concatenate([net.tail[toggled], net.head[toggled]]))
    degree = np.bincount(net.tail[after], minlength=net.nodes) + np.bincount(
        net.head[after], minlength=net.nodes
    )
    lonely = ends[(degree[ends] == 0) & (ends != ground)]
    if not lonely.size:
        return np.zeros(0, np.int64)
    # the node's rows to another node (not the ground: that is the row that left)
    rows = np.flatnonzero(
        (np.isin(net.tail, lonely) | np.isin(net.head, lonely))
        & (net.tail != ground)
        & (net.head != ground)
    )
    node = np.where(np.isin(net.tail[rows], lonely), net.tail[rows], net.head[rows])
    order = np.lexsort((reduced[rows] / net.rate[rows], node))
    first = np.r_[True, node[order][1:] != node[order][:-1]]
    out: IntArray = rows[order][first]
    return out


def _leaving(net: Network, closing: IntArray, at: Layout, flow: FloatArray) -> IntArray:
    """For each entering row that closes a cycle in its tree, the row that leaves: a
    network simplex pivot's ratio test. Flow pushed along the entering row a → b comes
    back from b to a along the tree path; of the path's rows it runs against, the one of
    least flow empties first (if it runs against none, the path's row of least flow).
    The path is found by climbing from both ends, the deeper one first, to where they
    meet: every cycle at once, as many steps as the longest path."""
    a, b = net.tail[closing].copy(), net.head[closing].copy()
    against = np.full(closing.size, -1, np.int64)
    against_flow = np.full(closing.size, np.inf)
    least = np.full(closing.size, -1, np.int64)
    least_flow = np.full(closing.size, np.inf)
    live = a != b
    while live.any():
        # the b side is walked towards the meeting point, the a side away from it
        up_b = live & (at.depth[b] >= at.depth[a])
        up_a = live & ~up_b
        for side, ends, runs_against in ((up_b, b, False), (up_a, a, True)):
            i = np.flatnonzero(side)
            x = ends[i]
            r = at.parent_row[x]
            x_is_tail = net.tail[r] == x
            down = x_is_tail if runs_against else ~x_is_tail
            better = down & (flow[r] < against_flow[i])
            against[i[better]], against_flow[i[better]] = r[better], flow[r[better]]
            smaller = flow[r] < least_flow[i]
            least[i[smaller]], least_flow[i[smaller]] = r[smaller], flow[r[smaller]]
            ends[i] = at.parent[x]
        live = (a != b) & (a >= 0) & (b >= 0)
    out: IntArray = np.where(against >= 0, against, least)
    return out[out >= 0]


def _changes(net: Network, group: IntArray, wrong: IntArray, badness: FloatArray) -> IntArray:
    """The rows to change: every group (a tree, or a branch of the ground's) changes at
    most its worst wrong row — a used row with negative flow leaves, an unused row that
    pays enters (when it closes a cycle, the cycle's row of least flow leaves, in
    :func:`finish`) — and a row between two groups changes only if it is the worst of
    both. All wrong rows at once oscillate: each change moves its tree's whole price
    level, and the changes of one tree make each other wrong (measured: violations grow
    round by round); one per tree converges from a nearly right forest, like a network
    simplex pivot per tree."""
    # a cap or floor joins the ground to its segment: the segment's group decides
    ground = net.nodes - 1
    a = np.where(net.tail[wrong] == ground, net.head[wrong], net.tail[wrong])
    b = np.where(net.head[wrong] == ground, net.tail[wrong], net.head[wrong])
    ga, gb = group[a], group[b]
    worst = np.full(int(group.max()) + 1, -np.inf)
    np.maximum.at(worst, ga, badness)
    np.maximum.at(worst, gb, badness)
    best = np.flatnonzero((badness >= worst[ga]) & (badness >= worst[gb]))
    # ties within a group: its first row only
    first = np.full(worst.size, wrong.size)
    np.minimum.at(first, ga[best], best)
    np.minimum.at(first, gb[best], best)
    chosen: IntArray = wrong[best[(first[ga[best]] == best) & (first[gb[best]] == best)]]
    return chosen


def spanning_forest(net: Network, candidates: IntArray, priority: FloatArray) -> Forest:
    """A maximum spanning forest of the rows ``candidates`` by ``priority`` (ties in
    order), rooted, that leaves no node but the ground without a row (a node no
    candidate reaches gets all its rows as candidates, last: alone it would have no
    price). Candidates without a cycle are the forest itself (the rounds of
    :func:`finish` make them so: one change per group)."""
    nodes = net.nodes
    reached = np.zeros(nodes, bool)
    reached[net.tail[candidates]] = reached[net.head[candidates]] = True
    reached[-1] = True
    lonely = ~reached[net.tail] | ~reached[net.head]
    if lonely.any():
        extra = np.setdiff1d(np.flatnonzero(lonely), candidates)
        candidates = np.concatenate([candidates, extra])
        priority = np.concatenate([priority, np.full(extra.size, -1.0)])
    tr = _trees(net, candidates)
    if candidates.size == nodes - tr.n_trees:  # a forest: as many rows as nodes − trees
        return tr
    # only the trees holding a cycle (more rows than nodes − 1) choose among their rows
    of_tree = tr.tree[net.tail[candidates]]
    cyclic = np.bincount(of_tree, minlength=tr.n_trees) > np.bincount(tr.tree) - 1
    settled, candidates, priority = (
        candidates[~cyclic[of_tree]],
        candidates[cyclic[of_tree]],
        priority[cyclic[of_tree]],
    )
    by_priority = np.argsort(-priority, kind="stable")
    candidates = candidates[by_priority]
    # one row per pair of nodes: only a segment's cap and floor join the same two nodes
    # (it and the ground), and the first by priority stays
    ground = net.nodes - 1
    bound = np.flatnonzero((net.tail[candidates] == ground) | (net.head[candidates] == ground))
    _, first = np.unique(net.key[candidates[bound]], return_index=True)
    repeated = np.ones(bound.size, bool)
    repeated[first] = False
    candidates = np.delete(candidates, bound[repeated])
    # minimum spanning tree of the ranks: rank 1 is the highest priority
    rank = np.arange(1, candidates.size + 1, dtype=np.float64)
    graph = sp.coo_matrix(
        (rank, (net.tail[candidates], net.head[candidates])), (nodes, nodes)
    ).tocsr()
    chosen = np.rint(minimum_spanning_tree(graph).data).astype(np.int64) - 1
    return _trees(net, np.concatenate([settled, candidates[chosen]]))
