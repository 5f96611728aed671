r"""The forest's active-set rounds (:mod:`pricing.market.forest`) compiled, one component
at a time: for markets of small and mid-sized components.

**Why.** The vectorized rounds of :func:`pricing.market.forest.finish` pay a few hundred
numpy calls a round whatever the size of the work: 10^5 segments in components of 2–50,
which settle one after another over 33 rounds, took 0.34–0.43 s (500–700× the closed
form), nearly all of it numpy's per-call cost on small arrays. The same rounds on one
component at a time, in loops numba compiles, cost what the component's nodes and rows
cost: the rounds of a cold solve of that market take 0.165 s of CPU here, and the whole
solve in two threads (the loops release the GIL) 0.10 s.

**Which components.** A round here checks every row of the component and passes over
all its nodes, so its cost grows with the component's size times its rounds; the
vectorized rounds re-solve only what a round touched. Measured on
:func:`connected_market` (one component; compiled against vectorized): 10^4 segments
0.027 s against 0.077 s, 2·10^4 segments 0.060 s against 0.135 s, 5·10^4 segments
0.289 s against 0.333 s, 10^5 segments 0.691 s against 0.673 s (before the kept layouts
and the narrow first rounds, the crossover lay between 10^4 and 2·10^4 segments). So
components of at most :data:`COMPILED_NODES` nodes (pools and segments, about 65,000
segments) take this path and larger ones the vectorized rounds.

**The same method.** Network, rows and rule are the forest module's: a tree's level t_T
by a safeguarded iteration on log D_T − log S_T in log t (here Halley's step, below);
each row's flow the net demand of the subtree below it; one change per group (a tree,
or a branch of the ground's tree) a round, its worst wrong row after a random factor,
narrow in the first rounds (here a hash of the round and the row, so an answer does not
depend on the order components are solved in); the cycle's row that empties first
leaving with an entering row that closes one; a node stranded by a leaving bound row
taking its row of least reduced cost; the same rounding
(:data:`pricing.market.forest.ROUNDING`). A component left unsettled goes back to the
caller, as from the vectorized rounds, but only at the round limit: the vectorized
rounds also stop once the whole network's wrong rows have not fallen for
:data:`pricing.market.forest._STALL` rounds, which lets a wandering component go on
while others settle; the same rule per component stopped components that would have
settled (45 of 12,320 in 32 markets of 10^4 segments in components of 2–50 — zero
friction, bounds, four extra edges a segment — against 0 vectorized; with the limit
alone 2 then, none since the narrow factor of the first rounds).

Two savings are the compiled loop's own. A tree no row of the last round touched keeps
its root, level and flows (same nodes, same rows: same answer), so only changed trees
are rooted and solved again (on that market 39 % of the nodes a round; re-rooting every
tree took 10 % more time). And every node keeps its hours and their slope at its price:
a changed tree's iteration starts where its balance, linear in each node's hours about
its last price, is 0 (the step the last round paid for), and the flows evaluate no
curve twice.

The iteration takes Halley's step instead of Newton's: the curves' second derivatives
come with no further evaluation of a curve, and the error falls with its cube instead
of its square. On that market the changed trees' solves evaluate 2.19 million node
curves instead of 2.56 million (tree solves that took three evaluations mostly take
two), and the rounds take 3–5 % less time. The vectorized rounds keep Newton's step:
there the extra sums cost more than the saved iterations (10^5 connected segments,
0.84 s against 0.80 s).

**Compiling.** numba compiles the loops at their first call and caches the machine code
beside this module (``__pycache__``); ``make``'s set-up calls
:func:`pricing.market.equilibrium.warm` so that no run pays it. Without the cache a
process's first coupled solve compiles them, with the verification's checks (16.5 s in
``pricing bench``'s ``connected.compile``); with it, a process loads them in 0.3 s.
"""

from __future__ import annotations

from typing import Any

import numba
import numpy as np
import numpy.typing as npt

from pricing.market.forest import (
    _NEWTON_ITERATIONS,
    EARLY_ROUNDS,
    EARLY_SPREAD,
    ROUNDING,
    SPREAD,
    BoolArray,
    Finish,
    FloatArray,
    IntArray,
    Network,
    finish,
    spanning_forest,
)

#: components of at most this many nodes (pools and segments) take the compiled rounds
#: (module docstring: the measured crossover lies near 2·10^5 nodes)
COMPILED_NODES = 2**17

#: one component's scratch arrays (:func:`_work`)
Work = tuple[npt.NDArray[Any], ...]


def settle(net: Network, rows: IntArray, guess: FloatArray, rounds: int) -> Finish:
    """:func:`pricing.market.forest.finish` on ``net`` from the forest ``rows`` (every
    node but the ground on a row) and the prices ``guess`` (per node): the components of
    at most :data:`COMPILED_NODES` nodes by the compiled rounds, the others by the
    vectorized ones."""
    node_comp = net.node_component()[:-1]  # every node but the ground is on a row
    size = np.bincount(node_comp, minlength=net.n_comp)
    small = (size > 0) & (size <= COMPILED_NODES)
    compiled = np.where(small, np.cumsum(small) - 1, -1)  # the small ones numbered 0, 1, …
    price = guess.astype(np.float64, copy=True)
    active = np.zeros(net.tail.size, bool)
    active[rows] = True
    flow = np.zeros(net.tail.size)
    settled = np.ones(net.n_comp, bool)
    used = 0
    if small.any():
        ok = np.zeros(int(small.sum()), bool)
        node_part = np.append(compiled[node_comp], -1)  # the ground: in no part
        used = int(_settle_all(
            net.tail, net.head, net.const, net.hours, net.rate,
            net.p_star, net.h_star, net.elasticity, net.sign,
            compiled[net.comp], node_part, active, price, flow, ok, rounds,
        ))  # fmt: skip
        settled[small] = ok
    large = size > COMPILED_NODES
    if large.any():
        keep = np.zeros(net.nodes, bool)
        keep[:-1] = large[node_comp]
        sub, node, row = net.subnet(keep)
        at = np.full(net.tail.size, -1, np.int64)
        at[row] = np.arange(row.size)
        mine = at[rows[at[rows] >= 0]]
        part = finish(sub, spanning_forest(sub, mine, np.ones(mine.size)), price[node], rounds)
        price[node[:-1]] = part.price[:-1]
        flow[row] = part.flow
        active[row] = False
        active[row[part.rows]] = True
        settled[large] = part.settled[large]
        used = max(used, part.rounds)
    return Finish(price, flow, np.flatnonzero(active), settled, used)


@numba.njit(cache=True)
def _by_part(part: IntArray, parts: int) -> tuple[IntArray, IntArray]:
    """The positions of ``part`` (−1: none) grouped by part, and where each part starts."""
    ptr = np.zeros(parts + 1, np.int64)
    for x in part:
        if x >= 0:
            ptr[x + 1] += 1
    for k in range(parts):
        ptr[k + 1] += ptr[k]
    at = ptr[:-1].copy()
    out = np.empty(ptr[-1], np.int64)
    for i in range(part.size):
        if part[i] >= 0:
            out[at[part[i]]] = i
            at[part[i]] += 1
    return out, ptr


@numba.njit(cache=True)
def _jitter(round_: int, row: int) -> float:
    """The pivot rule's random factor, 1 ± its spread (:data:`pricing.market.forest.SPREAD`;
    narrower in the first rounds), from the round and the row (splitmix64's mix)."""
    z = np.uint64(round_) * np.uint64(0x9E3779B97F4A7C15) + np.uint64(row)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    z = z ^ (z >> np.uint64(31))
    spread = EARLY_SPREAD if round_ < EARLY_ROUNDS else SPREAD
    return 1.0 + spread * (2.0 * float(z >> np.uint64(11)) / 2.0**53 - 1.0)


@numba.njit(cache=True, error_model="numpy", nogil=True)
def _settle_all(
    tail: IntArray, head: IntArray, const: FloatArray, hours: FloatArray, rate: FloatArray,
    p_star: FloatArray, h_star: FloatArray, elasticity: FloatArray, sign: FloatArray,
    row_part: IntArray, node_part: IntArray,
    active: BoolArray, price: FloatArray, flow: FloatArray, settled: BoolArray, rounds: int,
) -> int:  # fmt: skip
    """Every component (``row_part``, ``node_part``: each row's and node's, numbered
    0, 1, …; −1 elsewhere) in turn, copied into arrays the size of the largest; its
    rows, prices, flows and whether it settled written back. The most rounds one took."""
    rows, row_ptr = _by_part(row_part, settled.size)
    nodes, node_ptr = _by_part(node_part, settled.size)
    ground = p_star.size - 1
    local = np.full(p_star.size, -1, np.int64)
    nn_max = int(np.max(node_ptr[1:] - node_ptr[:-1])) + 1
    r_max = int(np.max(row_ptr[1:] - row_ptr[:-1]))
    lt, lh, gid = np.empty(r_max, np.int64), np.empty(r_max, np.int64), np.empty(r_max, np.int64)
    cst, hrs, rt, fl = np.empty(r_max), np.empty(r_max), np.empty(r_max), np.empty(r_max)
    act = np.empty(r_max, np.bool_)
    ps, hs, el = np.empty(nn_max), np.empty(nn_max), np.empty(nn_max)
    sg, pr = np.empty(nn_max), np.empty(nn_max)
    work = _work(nn_max, r_max)
    most = 0
    for c in range(settled.size):
        n_lo, m = node_ptr[c], node_ptr[c + 1] - node_ptr[c]
        r_lo, r = row_ptr[c], row_ptr[c + 1] - row_ptr[c]
        for i in range(m):
            v = nodes[n_lo + i]
            local[v] = i
            ps[i], hs[i], el[i], sg[i], pr[i] = (
                p_star[v],
                h_star[v],
                elasticity[v],
                sign[v],
                price[v],
            )
        local[ground] = m  # the ground is the component's last node
        ps[m], hs[m], el[m], sg[m], pr[m] = 1.0, 0.0, 0.0, 0.0, 0.0
        for i in range(r):
            g = rows[r_lo + i]
            lt[i], lh[i], gid[i] = local[tail[g]], local[head[g]], g
            cst[i], hrs[i], rt[i], act[i] = const[g], hours[g], rate[g], active[g]
        ok, used = _settle_one(
            lt[:r], lh[:r], cst[:r], hrs[:r], rt[:r], gid[:r],
            ps[: m + 1], hs[: m + 1], el[: m + 1], sg[: m + 1],
            act[:r], pr[: m + 1], fl[:r], rounds, work,
        )  # fmt: skip
        most = max(most, used)
        settled[c] = ok
        for i in range(m):
            price[nodes[n_lo + i]] = pr[i]
        for i in range(r):
            active[rows[r_lo + i]] = act[i]
            flow[rows[r_lo + i]] = fl[i]
    return most


@numba.njit(cache=True)
def _work(nn: int, r: int) -> Work:
    """Scratch arrays for a component of up to ``nn`` nodes and ``r`` rows, in the order
    :func:`_settle_one` unpacks them."""
    node_i, node_b, node_f = np.empty(nn, np.int64), np.empty(nn, np.bool_), np.empty(nn)
    return (
        np.empty(nn + 1, np.int64), np.empty(2 * r, np.int64),  # rows by node (CSR)
        node_b.copy(), node_i.copy(), node_i.copy(), node_i.copy(), node_i.copy(),
        node_i.copy(), node_i.copy(), np.empty(nn + 1, np.int64), node_b.copy(),
        node_f.copy(), node_f.copy(), node_f.copy(), node_f.copy(), node_f.copy(),
        node_b.copy(), np.empty(r), np.empty(r, np.int64), np.empty(r, np.int64),
        np.empty(r, np.int64), np.empty(2 * nn), np.empty(2 * nn, np.int64),
        np.empty(2 * r, np.int64), node_b.copy(), node_i.copy(), np.empty(nn + 1, np.int64),
        np.empty(nn + 1, np.bool_), node_i.copy(), np.empty(r, np.int64), np.empty(r, np.int64),
    )  # fmt: skip


@numba.njit(cache=True, error_model="numpy")
def _settle_one(
    lt: IntArray, lh: IntArray, cst: FloatArray, hrs: FloatArray, rt: FloatArray,
    gid: IntArray, ps: FloatArray, hs: FloatArray, el: FloatArray, sg: FloatArray,
    act: BoolArray, pr: FloatArray, fl: FloatArray, rounds: int, work: Work,
) -> tuple[bool, int]:  # fmt: skip
    """The rounds on one component: nodes 0..m−1 and the ground m, rows from ``lt`` to
    ``lh`` (``gid``: their rows in the whole network); the used rows ``act``, prices
    ``pr`` and flows ``fl`` updated in place. Whether it settled, and its rounds."""
    (ptr, adj, visited, parent, prow, depth, tree, group, order, start, changed,
     off, req, hours, slope, hours_at, dirty, bad, wrong, wrong_a, wrong_b, worst, first,
     toggled, uncleared, last_order, last_start, clean, n_act, at_t, at_h) = work  # fmt: skip
    m = ps.size - 1
    nodes = (ptr, adj, n_act, at_t, at_h)
    _rows_by_node(lt, lh, act, m + 1, nodes)
    # the nodes of trees the last round changed (all, at first): only their trees are
    # rooted and solved again; a node's hours are evaluated again only where its price
    # moved
    dirty[: m + 1] = True
    hours_at[: m + 1] = np.nan
    uncleared[: m + 1] = False
    tree[: m + 1] = 0
    fl[:] = 0.0
    ok, rnd, n_trees = False, 0, 1
    for rnd in range(rounds + 1):
        # this round's layout is built from the last one's (the two swap)
        order, last_order = last_order, order
        start, last_start = last_start, start
        n_trees = _root(
            lt, lh, cst, act, fl, nodes, dirty, m, last_order, last_start, n_trees,
            clean, visited, parent, prow, depth, tree, group, order, start, changed, off,
        )  # fmt: skip
        cleared = _solve(
            lh, ps, hs, el, sg, pr, fl, order, start, changed, off, parent, prow, n_trees,
            req, hours, slope, hours_at, uncleared,
        )  # fmt: skip
        n_wrong = _wrong_rows(lt, lh, cst, hrs, rt, act, pr, fl, group, m, bad, wrong,
                              wrong_a, wrong_b)  # fmt: skip
        if n_wrong == 0 and cleared:
            ok = True
            break
        if n_wrong == 0 or rnd == rounds:  # not cleared, or out of rounds: for the caller
            break
        _change(
            rnd, n_wrong, lt, lh, cst, rt, gid, act, pr, fl, m, nodes, parent, prow,
            depth, tree, bad, wrong, wrong_a, wrong_b, worst, first, toggled, dirty,
        )  # fmt: skip
    # flows within rounding of 0 are 0
    for i in range(lt.size):
        if act[i] and fl[i] < 0 and not fl[i] < -ROUNDING * hrs[i]:
            fl[i] = 0.0
    return ok, rnd


#: a component's rows by node (:func:`_rows_by_node`)
Nodes = tuple[IntArray, IntArray, IntArray, IntArray, IntArray]


@numba.njit(cache=True)
def _rows_by_node(lt: IntArray, lh: IntArray, act: BoolArray, nn: int, nodes: Nodes) -> None:
    """Every row at both its ends, by node: ``adj[ptr[v]:ptr[v + 1]]``, the used rows
    first (``n_act[v]`` of them), so that rooting the forest reads only those; ``at_t``
    and ``at_h``: where each row sits among its tail's and its head's (:func:`_flip`
    keeps the order as rows change)."""
    ptr, adj, n_act, at_t, at_h = nodes
    ptr[: nn + 1] = 0
    for i in range(lt.size):
        ptr[lt[i] + 1] += 1
        ptr[lh[i] + 1] += 1
    for v in range(nn):
        ptr[v + 1] += ptr[v]
    cursor = ptr[:nn].copy()
    for used in (True, False):
        for i in range(lt.size):
            if act[i] == used:
                at_t[i], at_h[i] = cursor[lt[i]], cursor[lh[i]]
                adj[cursor[lt[i]]] = adj[cursor[lh[i]]] = i
                cursor[lt[i]] += 1
                cursor[lh[i]] += 1
        if used:
            n_act[:nn] = cursor - ptr[:nn]


@numba.njit(cache=True)
def _flip(i: int, act: BoolArray, lt: IntArray, lh: IntArray, nodes: Nodes) -> None:
    """Row ``i`` used if it was not and not if it was, moved across the boundary of the
    used rows at both its ends."""
    ptr, adj, n_act, at_t, at_h = nodes
    act[i] = not act[i]
    for v, here in ((lt[i], at_t[i]), (lh[i], at_h[i])):
        if act[i]:
            edge = ptr[v] + n_act[v]
            n_act[v] += 1
        else:
            n_act[v] -= 1
            edge = ptr[v] + n_act[v]
        other = adj[edge]
        adj[edge], adj[here] = i, other
        if lt[other] == v:
            at_t[other] = here
        else:
            at_h[other] = here
        if lt[i] == v:
            at_t[i] = edge
        else:
            at_h[i] = edge


@numba.njit(cache=True)
def _root(
    lt: IntArray, lh: IntArray, cst: FloatArray, act: BoolArray, fl: FloatArray,
    nodes: Nodes, dirty: BoolArray, m: int, last_order: IntArray,
    last_start: IntArray, last_trees: int, clean: BoolArray, visited: BoolArray,
    parent: IntArray, prow: IntArray, depth: IntArray, tree: IntArray, group: IntArray,
    order: IntArray, start: IntArray, changed: BoolArray, off: FloatArray,
) -> int:  # fmt: skip
    """Root the forest ``act``, breadth first: the ground's tree first, then the others
    from their lowest node. Each node's parent, row to it, depth, tree, group (the tree,
    or the ground's branch) and price relative to its root (π_b = π_a + c along a row);
    where each tree starts in ``order`` (``start``, one past the last tree: every node)
    and whether it holds a ``dirty`` node. How many trees.

    A tree of the last round's layout (``last_order``, ``last_start``, ``tree``) with no
    ``dirty`` node is a tree of this one, with the same root, parents and offsets: its
    nodes are copied in, not visited again."""
    ptr, adj, n_act = nodes[0], nodes[1], nodes[2]
    nn = m + 1
    clean[:last_trees] = True
    for v in range(nn):
        if dirty[v]:
            clean[tree[v]] = False
    visited[:nn] = False
    n_order, n_trees = 0, 0
    for k in range(nn):
        root = m if k == 0 else k - 1
        if visited[root]:
            continue
        start[n_trees] = n_order
        was = tree[root]
        if clean[was] and last_order[last_start[was]] == root:
            for q in range(last_start[was], last_start[was + 1]):
                v = last_order[q]
                visited[v] = True
                tree[v] = n_trees
                if group[v] >= nn:  # a tree's own group, not a branch of the ground's
                    group[v] = nn + n_trees
                order[n_order] = v
                n_order += 1
            changed[n_trees] = False
            n_trees += 1
            continue
        visited[root] = True
        parent[root], prow[root], depth[root], off[root] = -1, -1, 0, 0.0
        tree[root] = n_trees
        group[root] = -1 if root == m else nn + n_trees
        touched = dirty[root]
        order[n_order] = root
        n_order += 1
        q = n_order - 1
        while q < n_order:
            u = order[q]
            q += 1
            e = ptr[u]
            while e < ptr[u] + n_act[u]:  # the node's used rows
                i = adj[e]
                e += 1
                if i == prow[u]:
                    continue
                w = lh[i] if lt[i] == u else lt[i]
                if visited[w]:  # a row closing a cycle (a guard: the rounds make none)
                    _flip(i, act, lt, lh, nodes)
                    fl[i] = 0.0
                    touched = True
                    e -= 1  # another used row has taken its place
                    continue
                visited[w] = True
                parent[w], prow[w], depth[w], tree[w] = u, i, depth[u] + 1, n_trees
                off[w] = off[u] + cst[i] if lt[i] == u else off[u] - cst[i]
                group[w] = w if u == m else group[u]
                touched = touched or dirty[w]
                order[n_order] = w
                n_order += 1
        changed[n_trees] = touched
        n_trees += 1
    start[n_trees] = n_order
    return n_trees


@numba.njit(cache=True, error_model="numpy")
def _solve(
    lh: IntArray, ps: FloatArray, hs: FloatArray, el: FloatArray, sg: FloatArray,
    pr: FloatArray, fl: FloatArray, order: IntArray, start: IntArray, changed: BoolArray,
    off: FloatArray, parent: IntArray, prow: IntArray, n_trees: int, req: FloatArray,
    hours: FloatArray, slope: FloatArray, hours_at: FloatArray, uncleared: BoolArray,
) -> bool:  # fmt: skip
    """Prices of the changed trees (the ground's at its offsets) and their rows' flows:
    the row to a node's parent carries its subtree's net demand (a tree no row of the
    last round touched keeps its flows, and a row that left has none). Whether every
    tree has cleared (``uncleared``: per node, whether its tree's iteration failed when
    last solved; a tree no round changes again keeps its failure)."""
    m = ps.size - 1
    for t_i in range(n_trees):
        if not changed[t_i]:  # the same nodes and rows as last round: the same answer
            continue
        a, b = start[t_i], start[t_i + 1]
        if t_i == 0:  # the ground's tree
            for q in range(a, b):
                pr[order[q]] = off[order[q]]
        else:
            t, done = _level(order, a, b, off, pr, ps, hs, el, sg, hours, slope, hours_at)
            for q in range(a, b):
                pr[order[q]] = t + off[order[q]]
                uncleared[order[q]] = not done
        for q in range(a, b):
            v = order[q]
            x = pr[v]
            if x != hours_at[v]:
                hours[v], slope[v], _ = _curve(x, ps[v], hs[v], el[v], sg[v])
                hours_at[v] = x
            req[v] = sg[v] * hours[v]
        for q in range(b - 1, a, -1):  # leaves first; the root (at a) has no row up
            v = order[q]
            i = prow[v]
            fl[i] = req[v] if lh[i] == v else -req[v]
            req[parent[v]] += req[v]
    return not uncleared[: m + 1].any()


@numba.njit(cache=True, error_model="numpy")
def _wrong_rows(
    lt: IntArray, lh: IntArray, cst: FloatArray, hrs: FloatArray, rt: FloatArray,
    act: BoolArray, pr: FloatArray, fl: FloatArray, group: IntArray, m: int,
    bad: FloatArray, wrong: IntArray, wrong_a: IntArray, wrong_b: IntArray,
) -> int:  # fmt: skip
    """The wrong rows — a used row with negative flow, an unused row that pays — how far
    each is from right in the units of its rounding, and the two groups it joins (a
    bound row's: its segment's, twice). How many."""
    n_wrong = 0
    for i in range(lt.size):
        # −flow / hours (used rows) or −reduced cost / rate (unused), only where past
        # rounding: most rows are right, and a division costs more than the compare
        gap = -fl[i] if act[i] else -(pr[lt[i]] - pr[lh[i]] + cst[i])
        scale = hrs[i] if act[i] else rt[i]
        if gap > ROUNDING * scale:
            wrong[n_wrong], bad[n_wrong] = i, gap / scale
            wrong_a[n_wrong] = group[lh[i]] if lt[i] == m else group[lt[i]]
            wrong_b[n_wrong] = group[lt[i]] if lh[i] == m else group[lh[i]]
            n_wrong += 1
    return n_wrong


@numba.njit(cache=True)
def _change(
    rnd: int, n_wrong: int, lt: IntArray, lh: IntArray, cst: FloatArray, rt: FloatArray,
    gid: IntArray, act: BoolArray, pr: FloatArray, fl: FloatArray, m: int, nodes: Nodes,
    parent: IntArray, prow: IntArray, depth: IntArray, tree: IntArray,
    bad: FloatArray, wrong: IntArray, wrong_a: IntArray, wrong_b: IntArray,
    worst: FloatArray, first: IntArray, toggled: IntArray, dirty: BoolArray,
) -> None:  # fmt: skip
    """One change per group: its worst wrong row after the random factor; a row between
    two groups changes only if it is the worst of both (ties: the first). An entering
    row that closes a cycle takes out the row the ratio test picks; a node a leaving
    bound row strands takes its best row. The nodes at the changed rows' ends become
    ``dirty``."""
    for k in range(n_wrong):
        bad[k] *= _jitter(rnd, gid[wrong[k]])
        worst[wrong_a[k]] = worst[wrong_b[k]] = -np.inf
        first[wrong_a[k]] = first[wrong_b[k]] = lt.size
    for k in range(n_wrong):
        ga, gb = wrong_a[k], wrong_b[k]
        worst[ga], worst[gb] = max(worst[ga], bad[k]), max(worst[gb], bad[k])
    for k in range(n_wrong):
        ga, gb = wrong_a[k], wrong_b[k]
        if bad[k] >= worst[ga] and bad[k] >= worst[gb]:
            first[ga], first[gb] = min(first[ga], wrong[k]), min(first[gb], wrong[k])
    n_tog = 0
    strands = False
    for k in range(n_wrong):
        i = wrong[k]
        if first[wrong_a[k]] != i or first[wrong_b[k]] != i:
            continue
        toggled[n_tog] = i
        n_tog += 1
        strands = strands or (act[i] and (lt[i] == m or lh[i] == m))
        if not act[i] and tree[lt[i]] == tree[lh[i]]:
            out = _leaving(i, lt, lh, fl, parent, prow, depth)
            if out >= 0:
                toggled[n_tog] = out
                n_tog += 1
    dirty[: m + 1] = False
    for k in range(n_tog):
        i = toggled[k]
        _flip(i, act, lt, lh, nodes)
        if not act[i]:
            fl[i] = 0.0
        dirty[lt[i]] = dirty[lh[i]] = True
    if strands:
        _rejoin(toggled[:n_tog], lt, lh, cst, rt, pr, act, nodes, m, dirty)


@numba.njit(cache=True, error_model="numpy")
def _level(
    order: IntArray, a: int, b: int, off: FloatArray, pr: FloatArray, ps: FloatArray,
    hs: FloatArray, el: FloatArray, sg: FloatArray, hours: FloatArray, slope: FloatArray,
    hours_at: FloatArray,
) -> tuple[float, bool]:  # fmt: skip
    """The level t of the tree ``order[a:b]`` that balances it (module docstring of
    :mod:`pricing.market.forest`), and whether it got there. Each node's hours and their
    slope at its price t + off are left in ``hours``, ``slope`` and ``hours_at``.

    The iteration starts where the tree's balance, linear in each node's hours about
    its last price (``hours_at``: their last evaluation), is 0 — one Newton step paid
    for by the last round — or, the first time, at the prices' weighted mean. Then
    Halley's step on f(u) = log D − log S, u = log t,

        Δu = −2 f f′ / (2 f′² − f f″),   f′ = t (D′/D − S′/S),
        f″ = f′ + t² (D″/D − (D′/D)² − S″/S + (S′/S)²),   h″ = (ε − 1) h′ / x,

    Newton's (−f/f′) where Halley's correction would more than double it; outside the
    bracket of the root, bisection. After the last step, of at most 1e-9 of t, each
    node's hours move along their slope: the error is of the order of the step squared
    (1e-18), below rounding."""
    lo, hi, wsum, tsum = -np.inf, np.inf, 0.0, 0.0
    known, level, rise = True, 0.0, 0.0
    for q in range(a, b):
        v = order[q]
        if sg[v] > 0:
            lo = max(lo, -off[v])
        wsum += hs[v]
        tsum += hs[v] * (pr[v] - off[v])
        known = known and hours_at[v] == pr[v]
        level += sg[v] * (hours[v] + slope[v] * (off[v] - pr[v]))
        rise += sg[v] * slope[v]
    if lo == -np.inf:
        lo = 0.0
    t = -level / rise if known else tsum / max(wsum, 1e-300)
    if not (np.isfinite(t) and t > lo):
        t = tsum / max(wsum, 1e-300)
    if not (np.isfinite(t) and t > lo):
        t = lo + max(1e-3 * abs(lo), 1e-9)
    for _ in range(_NEWTON_ITERATIONS):
        d, s, ds, ss, dd, sd = _sums(order, a, b, t, off, ps, hs, el, sg, hours, slope)
        g = d - s
        if g > 0:
            lo = max(lo, t)
        if g < 0:
            hi = min(hi, t)
        # Halley's step (docstring), Newton's where its correction would double it
        f0 = np.log(d / s)
        f1 = t * (ds / d - ss / s)
        f2 = f1 + t * t * (dd / d - (ds / d) ** 2 - sd / s + (ss / s) ** 2)
        den = 2.0 * f1 * f1 - f0 * f2
        newton = t * np.exp(-2.0 * f0 * f1 / den if den > f1 * f1 else -f0 / f1)
        if not (t > 0 and s > 0 and np.isfinite(newton)):
            newton = t - g / (ds - ss)
        wide = 0.5 * (lo + hi) if np.isfinite(hi) else t + 2.0 * (t - lo)
        step = newton if (newton > lo and newton <= hi) else wide
        if abs(g) <= 1e-15 * (d + s):
            for q in range(a, b):
                v = order[q]
                hours_at[v] = t + off[v]
            return t, True
        if abs(step - t) <= 1e-9 * abs(t):
            for q in range(a, b):
                v = order[q]
                hours[v] += slope[v] * (step - t)
                hours_at[v] = step + off[v]
            return step, True
        t = step
    for q in range(a, b):
        v = order[q]
        hours_at[v] = np.nan
    return t, False


@numba.njit(cache=True, error_model="numpy", inline="always")
def _curve(x: float, ps: float, hs: float, el: float, sg: float) -> tuple[float, float, float]:
    """A node's hours h = H* (x/p*)^ε at price x, h′ = ε h / x and h″ = (ε − 1) h′ / x (at
    x ≤ 0: a segment's demand infinite, a pool's supply 0, both flat); at the uncoupled
    rate, H* itself (a segment and its own pool at the start), with no exp or log."""
    if not x > 0:
        return (np.inf if sg > 0 else 0.0), 0.0, 0.0
    inv = 1.0 / x
    h = hs if x == ps else hs * np.exp(el * np.log(x / ps))
    dh = el * h * inv
    return h, dh, (el - 1.0) * dh * inv


@numba.njit(cache=True, error_model="numpy", inline="always")
def _sums(
    order: IntArray, a: int, b: int, t: float, off: FloatArray, ps: FloatArray,
    hs: FloatArray, el: FloatArray, sg: FloatArray, hours: FloatArray, slope: FloatArray,
) -> tuple[float, float, float, float, float, float]:  # fmt: skip
    """The tree ``order[a:b]`` at level ``t``: its demand D, supply S and their first
    and second derivatives in t (D, S, D′, S′, D″, S″); each node's hours and slope left
    in ``hours`` and ``slope``."""
    d, s, ds, ss, dd, sd = 0.0, 0.0, 0.0, 0.0, 0.0, 0.0
    for q in range(a, b):
        v = order[q]
        x = t + off[v]
        h, dh, d2h = _curve(x, ps[v], hs[v], el[v], sg[v])
        hours[v], slope[v] = h, dh
        if sg[v] > 0:
            d += h
            ds += dh
            dd += d2h
        else:
            s += h
            ss += dh
            sd += d2h
    return d, s, ds, ss, dd, sd


@numba.njit(cache=True)
def _leaving(
    i: int, lt: IntArray, lh: IntArray, fl: FloatArray, parent: IntArray, prow: IntArray,
    depth: IntArray,
) -> int:  # fmt: skip
    """The row that leaves when row ``i`` enters and closes a cycle: of the cycle's rows
    that the flow pushed along i runs against, the one of least flow; if none, the
    cycle's row of least flow (the ratio test)."""
    a, b = lt[i], lh[i]
    against, against_flow, least, least_flow = -1, np.inf, -1, np.inf
    while a != b and a >= 0 and b >= 0:
        if depth[b] >= depth[a]:  # the b side: pushed from b up to where the ends meet
            x = b
            row = prow[x]
            down = lh[row] == x
            b = parent[x]
        else:  # the a side: pushed down to a
            x = a
            row = prow[x]
            down = lt[row] == x
            a = parent[x]
        if row < 0:
            break
        if down and fl[row] < against_flow:
            against, against_flow = row, fl[row]
        if fl[row] < least_flow:
            least, least_flow = row, fl[row]
    return against if against >= 0 else least


@numba.njit(cache=True)
def _rejoin(
    toggled: IntArray, lt: IntArray, lh: IntArray, cst: FloatArray, rt: FloatArray,
    pr: FloatArray, act: BoolArray, nodes: Nodes, m: int, dirty: BoolArray,
) -> None:  # fmt: skip
    """A node the toggled rows left without a row takes its row of least reduced cost
    (relative to its rate) to another node that is not the ground."""
    ptr, adj, n_act = nodes[0], nodes[1], nodes[2]
    for k in range(toggled.size):
        for v in (lt[toggled[k]], lh[toggled[k]]):
            if v == m or n_act[v] > 0:
                continue
            best, best_cost = -1, np.inf
            for e in range(ptr[v], ptr[v + 1]):
                i = adj[e]
                if lt[i] != m and lh[i] != m:
                    cost = (pr[lt[i]] - pr[lh[i]] + cst[i]) / rt[i]
                    if cost < best_cost:
                        best, best_cost = i, cost
            if best >= 0:
                _flip(best, act, lt, lh, nodes)
                dirty[lt[best]] = dirty[lh[best]] = True
