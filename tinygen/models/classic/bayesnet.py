"""Bayesian networks over discrete variables: the joint as a product of conditional
probability tables, ancestral sampling, exact inference by enumeration and by variable
elimination, approximate inference by rejection sampling and likelihood weighting.

Sources: Pearl 1988, "Probabilistic Reasoning in Intelligent Systems"; Koller & Friedman
2009, "Probabilistic Graphical Models: Principles and Techniques" (K&F: chapter 3 the
representation, chapter 9 variable elimination, chapter 12 sampling); Russell & Norvig
2010, "Artificial Intelligence: A Modern Approach", 3rd edition, chapter 14 (AIMA: the
algorithms ENUMERATION-ASK, ELIMINATION-ASK, PRIOR-SAMPLE, REJECTION-SAMPLING and
LIKELIHOOD-WEIGHTING, figures 14.9, 14.11, 14.13, 14.14 and 14.15).

The network. A directed acyclic graph G over random variables X_1, ..., X_n, each
discrete with values {0, ..., K_i - 1} (named by its states, e.g. ("false", "true")),
and one conditional probability table (CPT) per variable, p(x_i | pa(x_i)), where pa(x_i)
are the values of X_i's parents in G. The joint distribution is the product of the
tables (the chain rule for Bayesian networks: K&F section 3.2; AIMA eq. 14.2):

    p(x_1, ..., x_n) = prod_i p(x_i | pa(x_i)).                                      (1)

A CPT is an array of shape (K_pa1, ..., K_pak, K_i): one axis per parent, in the order
the parents are listed, then the variable's own values; every row cpt[pa, :] is a
distribution and sums to 1. A root's CPT has shape (K_i,): its prior.

Ancestral sampling (K&F 12.1, "forward sampling"; AIMA's PRIOR-SAMPLE). Visit the
variables in a topological order (parents before children) and draw each from its row:

    x_i ~ p(x_i | pa(x_i)),    i in topological order.                              (2)

Every parent is drawn before its child, so the row is known; the sample is exact from (1).
Here all N samples advance together, one variable at a time.

Exact inference. Split the variables into the query Q, the evidence E = e and the hidden
rest H. The posterior is the joint summed over H, normalised (AIMA 13.3 and 14.4):

    P(Q | e) = p(Q, e) / p(e),    p(Q, e) = sum_h p(Q, e, h),    p(e) = sum_q p(q, e).  (3)

Enumeration computes (3) literally: it lists every assignment x, evaluates (1), keeps
those that agree with e and adds them up by their value of Q -- prod_i K_i terms,
exponential in n (AIMA 14.4.1; the brute-force reference of the other methods).

Variable elimination (Zhang & Poole 1994, "A simple approach to Bayesian network
computations"; K&F chapter 9; AIMA 14.4.2) works on factors: a factor phi(Y) is a table
with one axis per variable in its scope Y. Each CPT is a factor phi_i(X_i, Pa_i) =
p(x_i | pa_i), and three operations suffice:

    reduce      phi[E = e](y) = phi(y, e)                (keep the slice of the evidence)   (4)
    product     (phi_1 phi_2)(x, y, z) = phi_1(x, y) phi_2(y, z)                           (5)
    sum-out     (sum_Z phi)(y) = sum_z phi(y, z).                                          (6)

Because a sum distributes over the factors that do not mention its variable, the sums of
(3) move inside the product (1):

    p(Q, e) = sum_{h_m} ... sum_{h_1} prod_i phi_i[E = e],                                 (7)

and each hidden variable H_j in turn is eliminated: multiply only the factors that
mention H_j, sum H_j out of that product, put the result back. What is left is a factor
over Q, p(Q, e), normalised as in (3). The cost is set by the largest factor built, which
depends on the elimination order; finding the best order is NP-hard, and greedy
heuristics do well (K&F 9.4.3): the default here is min-degree ("min-neighbors"),
which eliminates next the variable with the fewest neighbours in the current interaction
graph (an edge between two variables when some factor holds both), ties broken by the
network's order; "min-fill" (fewest new edges) and "reverse-topological" (leaves first,
AIMA's ELIMINATION-ASK) are the alternatives, or any order given as a list. Before
eliminating, a variable that is neither queried, observed nor an ancestor of one is
dropped: its CPT sums to 1 over it and over every descendant it has (AIMA 14.4.2).

Factors here hold log p (the convention of tinygen, as p(e) of many observations
underflows): the product (5) is a sum of log tables, the sum-out (6) a logsumexp, and a
zero probability is log 0 = -inf, which both handle without NaN.

Approximate inference, by N samples. Rejection sampling (AIMA's REJECTION-SAMPLING; K&F
12.1) draws by (2) and keeps the samples that agree with the evidence:

    P(q | e) ~ N(q, e) / N(e),                                                            (8)

unbiased but wasteful: only about N p(e) samples survive. Likelihood weighting (Fung &
Chang 1989; Shachter & Peot 1989; AIMA's LIKELIHOOD-WEIGHTING; K&F 12.2) clamps the
evidence instead, draws the other variables by (2), and weighs each sample by how likely
its evidence was given its sampled parents:

    w_s = prod_{j : X_j in E} p(e_j | pa(x_j)_s),
    P(q | e) ~ sum_s w_s 1[q_s = q] / sum_s w_s.                                          (9)

Its effective number of samples (Kish 1965, "Survey Sampling"; K&F 12.2) says how many
independent exact samples the weighted ones are worth:

    N_eff = (sum_s w_s)^2 / sum_s w_s^2,    1 <= N_eff <= N.                              (10)

Two ready-made networks, every variable with the states ("false", "true"): the sprinkler
(cloudy, sprinkler, rain, wet_grass; AIMA figure 14.12 and Murphy's Bayes Net Toolbox
tutorial) and Asia (Lauritzen & Spiegelhalter 1988, "Local computations with
probabilities on graphical structures and their application to expert systems": asia,
smoke, tub, lung, bronc, either, xray, dysp).

Symbols and code:

    symbol                 code                                          shape
    X_i, pa(x_i)           Node(name, parents, cpt, states)              cpt (K_pa..., K_i)
    p(x), eq. (1)          BayesianNetwork.log_prob(x)                   (N, n) ints -> (N,) nats
    eq. (2)                BayesianNetwork.sample(N, rng)                (N, n) ints
    P(Q | e), eq. (3)      enumerate_query(net, query, evidence)         (K_q1, ..., K_qm)
    eqs. (4)-(7)           Factor, variable_elimination(net, query, evidence, order)
    eq. (8)                rejection_sampling(net, query, evidence, N)   Estimate
    eqs. (9), (10)         likelihood_weighting(net, query, evidence, N) Estimate
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from ... import random as _random

__all__ = ["Node", "BayesianNetwork", "Factor", "Estimate", "bernoulli_cpt",
           "enumerate_query", "variable_elimination", "elimination_order",
           "rejection_sampling", "likelihood_weighting", "marginals",
           "sprinkler_network", "asia_network", "MAX_ENUMERATION", "ROW_SUM_TOLERANCE"]

MAX_ENUMERATION = 2 ** 20       # assignments enumerate_query lists at most (n ints each)
ROW_SUM_TOLERANCE = 1e-6        # |sum of a CPT row - 1| allowed (tables typed in by hand)
BINARY = ("false", "true")


# --------------------------------------------------------------------------- helpers

def _logsumexp(a: np.ndarray, axis) -> np.ndarray:
    """log sum exp over ``axis`` (an int or a tuple), stable, and -inf (not NaN) where
    every term is -inf (a sum of zero probabilities)."""
    top = np.max(a, axis=axis, keepdims=True)
    top = np.where(np.isfinite(top), top, 0.0)
    with np.errstate(divide="ignore"):
        out = np.log(np.sum(np.exp(a - top), axis=axis, keepdims=True)) + top
    return np.squeeze(out, axis=axis)


def _log(p: np.ndarray) -> np.ndarray:
    """log p with log 0 = -inf and no warning (a zero in a CPT is legitimate)."""
    with np.errstate(divide="ignore"):
        return np.log(p)


def _rng(rng, name: str) -> np.random.Generator:
    """A NumPy generator from None (seeded from tinygen's global generator, which
    tinygen.manual_seed controls), an int seed, or a Generator."""
    if rng is None or isinstance(rng, (int, np.integer)) and not isinstance(rng, bool):
        return _random.generator(rng)
    if isinstance(rng, np.random.Generator):
        return rng
    raise TypeError(f"{name}: rng must be None, an int seed or a numpy.random.Generator; "
                    f"got {type(rng).__name__}")


def bernoulli_cpt(p_true) -> np.ndarray:
    """The CPT of a binary variable from its table of P(x = true | pa): an array of any
    shape (K_pa1, ..., K_pak) (a float for a root) -> (K_pa1, ..., K_pak, 2), the last axis
    (false, true) = (1 - p, p). The textbooks print binary CPTs this way (AIMA fig. 14.2)."""
    p = np.asarray(p_true, dtype=np.float64)
    return np.stack([1.0 - p, p], axis=-1)


# ------------------------------------------------------------------ the network, eq. (1)

@dataclass(frozen=True, eq=False)     # eq=False: comparing CPT arrays has no single truth
class Node:
    """One variable X_i of a network: its name, its parents' names, its CPT p(x_i | pa(x_i))
    and the names of its states.

    Args:
        name: the variable's name (a non-empty string).
        parents: the parents' names, in the order of the CPT's leading axes (may be empty).
        cpt: array-like of shape (K_pa1, ..., K_pak, K_i): cpt[pa..., x] = p(x | pa); every
            row sums to 1. For binary variables ``bernoulli_cpt(P(true | pa))`` builds it.
        states: the names of the K_i values, in the order of the CPT's last axis; default
            ("false", "true") when K_i = 2, else ("0", "1", ..., str(K_i - 1)).

    The checks that need the other nodes (parents exist, shapes match their cardinalities,
    the graph is acyclic) are made by BayesianNetwork; a Node only holds its fields.
    """
    name: str
    parents: tuple = ()
    cpt: object = None
    states: tuple = None

    @property
    def cardinality(self) -> int:
        """K_i, the number of values of the variable (from the states, else the CPT)."""
        return len(self.states) if self.states is not None else int(np.shape(self.cpt)[-1])


class BayesianNetwork:
    """A Bayesian network over discrete variables: a DAG of Nodes with their CPTs,
    p(x) = prod_i p(x_i | pa(x_i)), eq. (1) (K&F section 3.2; AIMA eq. 14.2).

    Args:
        nodes: a sequence of Node, in any order (parents may come after their children);
            this order is the network's order: the columns of samples and of log_prob's
            input, and ``names``.

    Raises:
        TypeError: a node that is not a Node, a name that is not a string, a CPT that is
            not numeric.
        ValueError, naming the variable and what is wrong: no nodes; a duplicate name; an
            unknown, repeated or self parent; a cycle (the message lists it, a -> b -> a);
            a CPT whose shape is not (K_pa1, ..., K_pak, K_i); an entry that is negative,
            above 1 or not finite; a row that does not sum to 1 (within ROW_SUM_TOLERANCE:
            the message gives the row's parent values and its sum); states that do not
            match the CPT's last axis, or repeat.

    Attributes:
        nodes: the validated Nodes (parents as tuples, CPTs as read-only float64 arrays,
            states as tuples of strings), in the network's order.
        names: tuple of the variables' names, in the network's order.
        topological_order: tuple of names, parents before children (Kahn's algorithm,
            ties broken by the network's order).
    """

    def __init__(self, nodes):
        nodes = list(nodes)
        if not nodes:
            raise ValueError("BayesianNetwork: nodes is empty; give at least one Node")
        for k, node in enumerate(nodes):
            if not isinstance(node, Node):
                raise TypeError(f"BayesianNetwork: nodes[{k}] must be a Node, got "
                                f"{type(node).__name__}")
            if not isinstance(node.name, str) or not node.name:
                raise TypeError(f"BayesianNetwork: nodes[{k}].name must be a non-empty "
                                f"string, got {node.name!r}")
        names = [node.name for node in nodes]
        seen = set()
        for name in names:
            if name in seen:
                raise ValueError(f"BayesianNetwork: two nodes are named {name!r}; names "
                                 f"must be unique")
            seen.add(name)
        self.names = tuple(names)
        self._index = {name: i for i, name in enumerate(names)}

        # The parents first: the CPT checks need their cardinalities.
        parents = []
        for node in nodes:
            ps = (node.parents,) if isinstance(node.parents, str) else tuple(node.parents)
            for p in ps:
                if p == node.name:
                    raise ValueError(f"BayesianNetwork: variable {node.name!r} lists itself "
                                     f"as a parent")
                if p not in self._index:
                    raise ValueError(f"BayesianNetwork: variable {node.name!r} has the "
                                     f"parent {p!r}, which is not a variable of the "
                                     f"network (variables: {', '.join(names)})")
            if len(set(ps)) != len(ps):
                raise ValueError(f"BayesianNetwork: variable {node.name!r} lists a parent "
                                 f"twice: {ps}")
            parents.append(ps)
        self.parent_indices = tuple(tuple(self._index[p] for p in ps) for ps in parents)
        self.topological_order = tuple(names[i] for i in self._topological_sort())

        # Cardinalities come from the CPTs' last axes; a parent's is needed before its
        # child's CPT can be checked, hence the topological order.
        cards = [None] * len(nodes)
        checked = [None] * len(nodes)
        for name in self.topological_order:
            i = self._index[name]
            node = nodes[i]
            cpt = self._check_cpt(node, parents[i], [cards[j] for j in self.parent_indices[i]])
            cards[i] = cpt.shape[-1]
            checked[i] = Node(node.name, parents[i], cpt, self._check_states(node, cards[i]))
        self.nodes = tuple(checked)
        self.cardinalities = tuple(cards)
        self.log_cpts = tuple(_log(node.cpt) for node in self.nodes)
        for table in self.log_cpts:
            table.setflags(write=False)
        self._order_indices = tuple(self._index[name] for name in self.topological_order)

    # ---- construction checks
    def _topological_sort(self):
        """Kahn's algorithm over the parent lists; on a cycle, a ValueError showing one."""
        n = len(self.names)
        children = [[] for _ in range(n)]
        missing = [len(ps) for ps in self.parent_indices]
        for i, ps in enumerate(self.parent_indices):
            for p in ps:
                children[p].append(i)
        ready = [i for i in range(n) if missing[i] == 0]
        order = []
        while ready:
            i = min(ready)   # the network's order among the ready ones: deterministic
            ready.remove(i)
            order.append(i)
            for c in children[i]:
                missing[c] -= 1
                if missing[c] == 0:
                    ready.append(c)
        if len(order) < n:
            # Every variable left has a parent left, so walking up parents from any of
            # them must revisit one: that walk holds a cycle.
            left = set(range(n)) - set(order)
            walk, at = [], min(left)
            while at not in walk:
                walk.append(at)
                at = next(p for p in self.parent_indices[at] if p in left)
            cycle = walk[walk.index(at):][::-1]          # parents first: edges point down
            path = " -> ".join(self.names[i] for i in cycle + [cycle[0]])
            raise ValueError(f"BayesianNetwork: the graph has a cycle, {path}; a Bayesian "
                             f"network must be a directed acyclic graph")
        return order

    @staticmethod
    def _check_cpt(node, parents, parent_cards):
        name = node.name
        if node.cpt is None:
            raise ValueError(f"BayesianNetwork: variable {name!r} has no CPT")
        try:
            cpt = np.array(node.cpt, dtype=np.float64)
        except (TypeError, ValueError) as e:
            raise TypeError(f"BayesianNetwork: the CPT of {name!r} must be a numeric array; "
                            f"converting it failed: {e}") from None
        expected = tuple(parent_cards)
        if cpt.ndim != len(parents) + 1 or cpt.shape[:-1] != expected or cpt.shape[-1] < 1:
            want = "(" + ", ".join([f"{c} ({p})" for c, p in zip(expected, parents)]
                                   + ["K"]) + ")"
            raise ValueError(f"BayesianNetwork: the CPT of {name!r} has shape {cpt.shape}; "
                             f"expected {want}: one axis per parent, of the parent's "
                             f"cardinality, then the variable's own K >= 1 values")
        bad = ~np.isfinite(cpt) | (cpt < 0) | (cpt > 1)
        if bad.any():
            where = tuple(int(k) for k in np.argwhere(bad)[0])
            raise ValueError(f"BayesianNetwork: the CPT of {name!r} has the entry "
                             f"{float(cpt[where])} at {where}; probabilities must be in [0, 1]")
        sums = cpt.sum(axis=-1)
        off = np.abs(sums - 1.0) > ROW_SUM_TOLERANCE
        if off.any():
            row = tuple(int(k) for k in np.argwhere(off)[0])
            given = ", ".join(f"{p}={v}" for p, v in zip(parents, row)) or "no parents"
            raise ValueError(f"BayesianNetwork: the CPT row of {name!r} given {given} sums "
                             f"to {float(sums[row]):.8g}; every row p(x | pa) must sum to 1")
        cpt.setflags(write=False)
        return cpt

    @staticmethod
    def _check_states(node, K):
        if node.states is None:
            return BINARY if K == 2 else tuple(str(k) for k in range(K))
        states = tuple(node.states)
        if len(states) != K:
            raise ValueError(f"BayesianNetwork: variable {node.name!r} has {len(states)} "
                             f"states {states} but its CPT's last axis has {K} values")
        if len(set(states)) != K:
            raise ValueError(f"BayesianNetwork: variable {node.name!r} repeats a state: "
                             f"{states}")
        return tuple(str(s) for s in states)

    # ---- looking things up
    def __len__(self):
        return len(self.names)

    def __getitem__(self, name) -> Node:
        return self.nodes[self.index(name)]

    def __repr__(self):
        edges = sum(len(ps) for ps in self.parent_indices)
        return f"BayesianNetwork({len(self)} variables, {edges} edges: {', '.join(self.names)})"

    def index(self, name, what: str = "variable") -> int:
        """The position of the variable ``name`` in the network's order; ValueError naming
        the known variables when there is none."""
        try:
            return self._index[name]
        except (KeyError, TypeError):
            raise ValueError(f"{what}: unknown variable {name!r}; the network's variables "
                             f"are {', '.join(self.names)}") from None

    def value_index(self, name, value, what: str = "evidence") -> int:
        """The index in 0..K-1 of ``value`` of variable ``name``: an int (a bool counts as
        0/1) or the name of a state. ValueError when out of range or not a state."""
        node = self[name]
        if isinstance(value, (bool, np.bool_)):
            value = int(value)
        if isinstance(value, (int, np.integer)):
            if 0 <= value < node.cardinality:
                return int(value)
            raise ValueError(f"{what}: {name!r} = {value} is out of range; {name!r} takes "
                             f"the values 0..{node.cardinality - 1} {node.states}")
        if isinstance(value, str) and value in node.states:
            return node.states.index(value)
        raise ValueError(f"{what}: {name!r} = {value!r} is not a value of {name!r}; give an "
                         f"index 0..{node.cardinality - 1} or one of the states {node.states}")

    def ancestors(self, names) -> set:
        """The names of ``names`` and of all their ancestors in the graph."""
        todo = [self.index(n, "ancestors") for n in names]
        seen = set(todo)
        while todo:
            for p in self.parent_indices[todo.pop()]:
                if p not in seen:
                    seen.add(p)
                    todo.append(p)
        return {self.names[i] for i in seen}

    # ---- the joint, eq. (1)
    def log_prob(self, x) -> np.ndarray:
        """log p(x) = sum_i log p(x_i | pa(x_i)), eq. (1): (N, n) or (n,) integer values in
        the network's order -> (N,) or () nats (-inf where p(x) = 0).

        Raises ValueError for a wrong shape or a value outside 0..K_i - 1 (naming the
        variable), TypeError for values that are not integers."""
        x = np.asarray(x)
        single = x.ndim == 1
        x = np.atleast_2d(x)
        if x.ndim != 2 or x.shape[1] != len(self):
            raise ValueError(f"log_prob: x must have shape (N, {len(self)}) (one column per "
                             f"variable: {', '.join(self.names)}); got {np.shape(x)}")
        if x.size and x.dtype.kind not in "iub":
            raise TypeError(f"log_prob: x must hold integer values, got dtype {x.dtype}")
        for i, name in enumerate(self.names):
            col = x[:, i]
            if col.size and (col.min() < 0 or col.max() >= self.cardinalities[i]):
                raise ValueError(f"log_prob: column {i} ({name!r}) has a value outside "
                                 f"0..{self.cardinalities[i] - 1}")
        x = x.astype(np.intp)
        logp = np.zeros(len(x))
        for i, ps in enumerate(self.parent_indices):
            logp = logp + self.log_cpts[i][tuple(x[:, p] for p in ps) + (x[:, i],)]
        return logp[0] if single else logp

    # ---- ancestral sampling, eq. (2)
    def sample(self, num_samples: int, rng=None, evidence=None):
        """N samples of the joint by ancestral sampling, eq. (2) (AIMA's PRIOR-SAMPLE):
        -> (N, n) integer values (np.intp) in the network's order.

        Args:
            num_samples: N >= 0.
            rng: None (seeded from tinygen's global generator), an int seed or a
                numpy.random.Generator.
            evidence: optional {name: value}; those variables are clamped to their value
                instead of drawn, the other variables drawn given them by (2) -- the
                proposal of likelihood weighting, not p(x | e).

        Raises ValueError for a negative N or bad evidence, TypeError for a bad rng."""
        x, _ = self._forward_sample(num_samples, rng, evidence, "sample")
        return x

    def _forward_sample(self, num_samples, rng, evidence, what, minimum=0):
        """Ancestral samples with the evidence clamped, and log w of eq. (9) (zeros when
        there is no evidence)."""
        if not isinstance(num_samples, (int, np.integer)) or isinstance(num_samples, bool) \
                or num_samples < minimum:
            raise ValueError(f"{what}: num_samples must be an integer >= {minimum}, got "
                             f"{num_samples!r}")
        rng = _rng(rng, what)
        clamp = self._evidence(evidence, what)
        N = int(num_samples)
        x = np.zeros((N, len(self)), dtype=np.intp)
        log_w = np.zeros(N)
        for i in self._order_indices:
            rows = tuple(x[:, p] for p in self.parent_indices[i])
            if i in clamp:
                x[:, i] = clamp[i]
                log_w += self.log_cpts[i][rows + (x[:, i],)]
                continue
            probs = np.broadcast_to(self.nodes[i].cpt[rows], (N, self.cardinalities[i]))
            cdf = np.cumsum(probs, axis=1)
            # Inverse CDF with u scaled by the row's own total: the draw stays below the
            # last edge even where rounding leaves the sum a hair under 1, and a value of
            # probability 0 (an empty interval) is never chosen.
            u = rng.random((N, 1)) * cdf[:, -1:]
            x[:, i] = (cdf <= u).sum(axis=1)
        return x, log_w

    def _evidence(self, evidence, what) -> dict:
        """{index: value index} from {name: value}, checked."""
        if evidence is None:
            return {}
        if not hasattr(evidence, "items"):
            raise TypeError(f"{what}: evidence must be a mapping {{name: value}}, got "
                            f"{type(evidence).__name__}")
        return {self.index(name, what): self.value_index(name, value, what)
                for name, value in evidence.items()}


def _query_and_evidence(net, query, evidence, what):
    """(query indices, single?, {evidence index: value}) checked: known, distinct,
    disjoint, at least one query variable."""
    if not isinstance(net, BayesianNetwork):
        raise TypeError(f"{what}: net must be a BayesianNetwork, got {type(net).__name__}")
    single = isinstance(query, str)
    names = [query] if single else list(query)
    if not names:
        raise ValueError(f"{what}: query is empty; name at least one variable")
    q = [net.index(name, what) for name in names]
    if len(set(q)) != len(q):
        raise ValueError(f"{what}: query {names} names a variable twice")
    e = net._evidence(evidence, what)
    both = [net.names[i] for i in q if i in e]
    if both:
        raise ValueError(f"{what}: {both} appear both in the query and in the evidence; "
                         f"an observed variable's posterior is its observed value")
    return q, single, e


def _zero_evidence(what, net, e):
    shown = ", ".join(f"{net.names[i]}={net.nodes[i].states[v]}" for i, v in e.items())
    return ValueError(f"{what}: the evidence ({shown}) has probability zero under the "
                      f"network, so P(query | evidence) is undefined (0 / 0)")


# ------------------------------------------------------------------ enumeration, eq. (3)

def enumerate_query(net: BayesianNetwork, query, evidence=None) -> np.ndarray:
    """P(Q | e) by enumeration, eq. (3): every assignment x of all n variables, its
    log p(x) by eq. (1) (``net.log_prob``), those agreeing with e summed by their value of
    Q, normalised (AIMA 14.4.1; here vectorised over the assignments rather than the
    book's recursion). Exponential in n: the reference the other methods are tested on.

    Args:
        net: the BayesianNetwork.
        query: a variable name -> the result has shape (K_q,); or a sequence of names ->
            shape (K_q1, ..., K_qm), axes in the order given.
        evidence: {name: value} (value an index or a state name), or None.

    Returns the posterior, float64, summing to 1.

    Raises ValueError for an unknown variable, a value out of range, a variable both
    queried and observed, a network of more than MAX_ENUMERATION assignments, and
    evidence of probability zero; TypeError for a net that is not a BayesianNetwork."""
    what = "enumerate_query"
    q, single, e = _query_and_evidence(net, query, evidence, what)
    size = int(np.prod(net.cardinalities, dtype=np.float64))
    if size > MAX_ENUMERATION:
        raise ValueError(f"{what}: the network has {size} joint assignments, more than "
                         f"MAX_ENUMERATION = {MAX_ENUMERATION}; use variable_elimination")
    x = np.indices(net.cardinalities, dtype=np.int32).reshape(len(net), -1).T   # (size, n)
    agree = np.ones(len(x), dtype=bool)
    for i, v in e.items():
        agree &= x[:, i] == v
    x = x[agree]
    logp = net.log_prob(x)                                             # log p(q, e, h)
    top = logp.max(initial=-np.inf)
    if not np.isfinite(top):
        raise _zero_evidence(what, net, e)
    q_cards = tuple(net.cardinalities[i] for i in q)
    cell = np.ravel_multi_index(tuple(x[:, i] for i in q), q_cards)
    # p(q, e) up to the common factor e^top, which the normalisation cancels
    p_qe = np.bincount(cell, weights=np.exp(logp - top), minlength=int(np.prod(q_cards)))
    posterior = (p_qe / p_qe.sum()).reshape(q_cards)
    return posterior


# ------------------------------------------------------------------ factors, eqs. (4)-(6)

class Factor:
    """A factor phi(Y) over a scope of variables Y, stored as log phi (K&F chapters 4 and
    9; AIMA 14.4.2).

    Args:
        scope: tuple of variable indices (of a network), one per axis of the table.
        log_table: array of shape (K_y1, ..., K_yk): log phi(y); -inf for phi(y) = 0.

    The three operations of variable elimination return new factors, eqs. (4)-(6): in log
    space the product is a sum of aligned log tables and the sum-out a logsumexp.
    """

    def __init__(self, scope, log_table):
        self.scope = tuple(int(v) for v in scope)
        self.log_table = np.asarray(log_table, dtype=np.float64)
        if self.log_table.ndim != len(self.scope):
            raise ValueError(f"Factor: scope {self.scope} names {len(self.scope)} variables "
                             f"but the table has shape {self.log_table.shape}")

    def __repr__(self):
        return f"Factor(scope={self.scope}, shape={self.log_table.shape})"

    def reduce(self, evidence: dict) -> "Factor":
        """phi[E = e], eq. (4): the slice at the observed values; the evidence variables
        leave the scope. ``evidence`` maps variable indices to value indices (those not in
        the scope are ignored)."""
        index = tuple(evidence.get(v, slice(None)) for v in self.scope)
        return Factor([v for v in self.scope if v not in evidence], self.log_table[index])

    def product(self, other: "Factor") -> "Factor":
        """phi_1 phi_2 over the union of the scopes, eq. (5): each table's axes are put in
        the union's order, with length-1 axes for the variables it lacks, and the log
        tables added by broadcasting."""
        scope = self.scope + tuple(v for v in other.scope if v not in self.scope)
        return Factor(scope, self._aligned(scope) + other._aligned(scope))

    def _aligned(self, scope) -> np.ndarray:
        """The log table with its axes in the order of ``scope`` (a superset of its own),
        length 1 for the variables it does not hold."""
        mine = sorted(self.scope, key=scope.index)
        table = np.transpose(self.log_table, [self.scope.index(v) for v in mine])
        shape = [table.shape[mine.index(v)] if v in self.scope else 1 for v in scope]
        return table.reshape(shape)

    def sum_out(self, variable: int) -> "Factor":
        """sum_Z phi, eq. (6): the variable ``variable`` leaves the scope; in log space a
        logsumexp over its axis."""
        axis = self.scope.index(variable)
        return Factor(self.scope[:axis] + self.scope[axis + 1:],
                      _logsumexp(self.log_table, axis=axis))


# ------------------------------------------------------------------ variable elimination, eq. (7)

ORDERS = ("min-degree", "min-fill", "reverse-topological")


def elimination_order(net: BayesianNetwork, hidden, scopes, order="min-degree") -> list:
    """The order in which to eliminate the variables ``hidden`` (indices), given the
    factors' ``scopes`` (tuples of indices): the order of eq. (7).

    order:
        "min-degree"          greedy: next the variable with the fewest neighbours in the
                              current interaction graph (K&F 9.4.3, "min-neighbors"),
                              ties broken by the network's order; eliminating it joins
                              its neighbours into one clique, and the search goes on.
        "min-fill"            greedy: next the variable whose elimination adds the fewest
                              edges between its neighbours not joined yet (K&F 9.4.3).
        "reverse-topological" leaves first (AIMA's ELIMINATION-ASK).
        a sequence of names   exactly that order; it must name every hidden variable once
                              (any other variable in it is skipped: variable_elimination
                              refuses query and evidence variables before, so these are
                              the pruned ones).

    Returns a list of variable indices. Raises ValueError for an unknown heuristic, or a
    given order that misses a hidden variable or repeats one."""
    hidden = list(hidden)
    if isinstance(order, str):
        if order == "reverse-topological":
            rank = {v: k for k, v in enumerate(net._order_indices)}
            return sorted(hidden, key=lambda v: -rank[v])
        if order not in ORDERS:
            raise ValueError(f"variable_elimination: order must be one of {ORDERS} or a "
                             f"list of variable names; got {order!r}")
        neighbours = {v: set() for v in range(len(net))}
        for scope in scopes:
            for v in scope:
                neighbours[v].update(u for u in scope if u != v)
        result, left = [], sorted(hidden)
        while left:
            if order == "min-degree":
                cost = [len(neighbours[v]) for v in left]
            else:
                cost = [sum(1 for a in neighbours[v] for b in neighbours[v]
                            if a < b and b not in neighbours[a]) for v in left]
            v = left.pop(int(np.argmin(cost)))
            result.append(v)
            clique = neighbours.pop(v)
            for a in clique:
                neighbours[a].discard(v)
                neighbours[a].update(clique - {a})
        return result
    names = list(order)
    given = [net.index(name, "variable_elimination order") for name in names]
    if len(set(given)) != len(given):
        raise ValueError(f"variable_elimination: the order {names} names a variable twice")
    missing = [net.names[v] for v in hidden if v not in given]
    if missing:
        raise ValueError(f"variable_elimination: the order {names} misses the hidden "
                         f"variables {missing}")
    return [v for v in given if v in set(hidden)]


def variable_elimination(net: BayesianNetwork, query, evidence=None, order="min-degree",
                         prune: bool = True, return_log_evidence: bool = False):
    """P(Q | e) by variable elimination, eqs. (4)-(7) (Zhang & Poole 1994; K&F algorithm
    9.1, Sum-Product-VE; AIMA's ELIMINATION-ASK).

    The factors are the CPTs in log space, each reduced by the evidence (4); then each
    hidden variable, in the elimination ``order``, is summed out (6) of the product (5) of
    the factors that mention it; the product of what is left is p(Q, e), normalised by
    p(e), eq. (3).

    Args:
        net: the BayesianNetwork.
        query: a variable name -> result of shape (K_q,); or a sequence of names -> shape
            (K_q1, ..., K_qm), axes in the order given.
        evidence: {name: value} (value an index or a state name), or None.
        order: "min-degree" (the default), "min-fill", "reverse-topological", or a list of
            names; see ``elimination_order``.
        prune: drop first the variables that are neither queried, observed nor an
            ancestor of one (their CPTs sum to 1; AIMA 14.4.2). The answer is the same.
        return_log_evidence: also return log p(e) in nats (0 without evidence).

    Returns the posterior (float64, sums to 1), or (posterior, log p(e)).

    Raises ValueError for an unknown variable, a value out of range, a variable both
    queried and observed, a bad order, and evidence of probability zero; TypeError for a
    net that is not a BayesianNetwork."""
    what = "variable_elimination"
    q, single, e = _query_and_evidence(net, query, evidence, what)
    keep = range(len(net))
    if prune:
        relevant = net.ancestors([net.names[i] for i in (*q, *e)])
        keep = [i for i in keep if net.names[i] in relevant]
    factors = [Factor(net.parent_indices[i] + (i,), net.log_cpts[i]).reduce(e) for i in keep]
    hidden = [i for i in keep if i not in e and i not in q]
    if not isinstance(order, str):
        named = [net.index(name, what) for name in order]
        wrong = [net.names[i] for i in named if i in e or i in q]
        if wrong:
            raise ValueError(f"{what}: the order names {wrong}, which are queried or "
                             f"observed; it must list the hidden variables only")
    for h in elimination_order(net, hidden, [f.scope for f in factors], order):
        mention = [f for f in factors if h in f.scope]
        factors = [f for f in factors if h not in f.scope]
        product = mention[0]
        for f in mention[1:]:
            product = product.product(f)
        factors.append(product.sum_out(h))
    joint = Factor((), np.zeros(()))                 # log 1: the empty product
    for f in factors:
        joint = joint.product(f)
    # Scopes are now subsets of Q (evidence reduced away, hidden summed out); a query
    # variable that no factor mentions any more cannot happen (its own CPT holds it).
    log_qe = np.transpose(joint.log_table, [joint.scope.index(v) for v in q])   # log p(Q, e)
    log_e = float(_logsumexp(log_qe, axis=tuple(range(log_qe.ndim))))
    if not np.isfinite(log_e):
        raise _zero_evidence(what, net, e)
    posterior = np.exp(log_qe - log_e)
    return (posterior, log_e) if return_log_evidence else posterior


def marginals(net: BayesianNetwork, evidence=None, order="min-degree") -> dict:
    """Every variable's marginal P(X_i | e), by variable elimination, one query per
    variable: {name: (K_i,) array}; an observed variable gets its observed value with
    probability 1. Raises as ``variable_elimination``."""
    e = net._evidence(evidence, "marginals")
    result = {}
    for i, name in enumerate(net.names):
        if i in e:
            result[name] = np.eye(net.cardinalities[i])[e[i]]
        else:
            result[name] = variable_elimination(net, name, evidence, order=order)
    return result


# ------------------------------------------------------------------ sampling, eqs. (8)-(10)

class Estimate(NamedTuple):
    """An approximate posterior.

    probs: the estimate of P(Q | e), of the query's shape (K_q,) or (K_q1, ..., K_qm).
    num_samples: N, the samples drawn.
    effective_samples: what they are worth: for rejection sampling the number accepted,
        N(e) of eq. (8); for likelihood weighting N_eff of eq. (10) (a float).
    """
    probs: np.ndarray
    num_samples: int
    effective_samples: float


def _tally(net, x, q, weights):
    """sum_s w_s 1[q_s = q] for every value q of the query, normalised: (K_q1, ..., K_qm)."""
    q_cards = tuple(net.cardinalities[i] for i in q)
    cell = np.ravel_multi_index(tuple(x[:, i] for i in q), q_cards)
    counts = np.bincount(cell, weights=weights, minlength=int(np.prod(q_cards)))
    return (counts / counts.sum()).reshape(q_cards)


def rejection_sampling(net: BayesianNetwork, query, evidence=None, num_samples: int = 10000,
                       rng=None) -> Estimate:
    """P(Q | e) by rejection sampling, eq. (8) (AIMA's REJECTION-SAMPLING; K&F 12.1):
    N ancestral samples (2), those agreeing with e counted by their value of Q.

    Args as ``enumerate_query``, plus num_samples (N) and rng (None, an int seed or a
    numpy.random.Generator).

    Returns an Estimate whose effective_samples is the number accepted, N(e) (about
    N p(e): the method's cost grows as 1 / p(e)).

    Raises ValueError as ``enumerate_query``, and when no sample agrees with the evidence
    (either p(e) = 0 or N is too small for p(e): the message gives N)."""
    what = "rejection_sampling"
    q, single, e = _query_and_evidence(net, query, evidence, what)
    x, _ = net._forward_sample(num_samples, rng, None, what, minimum=1)
    agree = np.ones(len(x), dtype=bool)
    for i, v in e.items():
        agree &= x[:, i] == v
    accepted = int(agree.sum())
    if accepted == 0:
        shown = ", ".join(f"{net.names[i]}={net.nodes[i].states[v]}" for i, v in e.items())
        raise ValueError(f"{what}: none of the {len(x)} samples agrees with the evidence "
                         f"({shown}): its probability is zero or too small for this many "
                         f"samples; draw more, or use likelihood_weighting")
    probs = _tally(net, x[agree], q, None)
    return Estimate(probs, len(x), accepted)


def likelihood_weighting(net: BayesianNetwork, query, evidence=None,
                         num_samples: int = 10000, rng=None) -> Estimate:
    """P(Q | e) by likelihood weighting, eqs. (9) and (10) (Fung & Chang 1989; Shachter &
    Peot 1989; AIMA's LIKELIHOOD-WEIGHTING; K&F 12.2): N ancestral samples with the
    evidence clamped, each weighted by w = prod_j p(e_j | pa(x_j)), the weights kept in
    log space and scaled by their largest before summing.

    Args as ``rejection_sampling``.

    Returns an Estimate whose effective_samples is N_eff = (sum w)^2 / sum w^2, eq. (10):
    N when no evidence has parents (every w is the same), fewer the more the weights
    vary.

    Raises ValueError as ``enumerate_query``, and when every weight is zero (the evidence
    has probability zero, or none of the N samples could produce it)."""
    what = "likelihood_weighting"
    q, single, e = _query_and_evidence(net, query, evidence, what)
    x, log_w = net._forward_sample(num_samples, rng, evidence, what, minimum=1)
    top = log_w.max(initial=-np.inf)
    if not np.isfinite(top):
        shown = ", ".join(f"{net.names[i]}={net.nodes[i].states[v]}" for i, v in e.items())
        raise ValueError(f"{what}: every one of the {len(x)} samples has weight zero: the "
                         f"evidence ({shown}) has probability zero (or none of the samples "
                         f"reached a parent configuration that allows it)")
    w = np.exp(log_w - top)          # scaled weights: (10) and (9) do not see the scale
    n_eff = float(w.sum() ** 2 / (w ** 2).sum())
    return Estimate(_tally(net, x, q, w), len(x), n_eff)


# --------------------------------------------------------------------------- two textbook networks

def sprinkler_network() -> BayesianNetwork:
    """The sprinkler network: cloudy -> sprinkler, cloudy -> rain, (sprinkler, rain) ->
    wet_grass, every variable ("false", "true"), with the textbook tables (AIMA figure
    14.12(a); Murphy's Bayes Net Toolbox tutorial):

        P(C) = 0.5;  P(S | C) = 0.1, P(S | ~C) = 0.5;  P(R | C) = 0.8, P(R | ~C) = 0.2;
        P(W | S, R) = 0.99, P(W | S, ~R) = 0.9, P(W | ~S, R) = 0.9, P(W | ~S, ~R) = 0.

    Then P(W) = 0.6471, P(S | W) = 0.2781 / 0.6471 = 0.4298, P(R | W) = 0.4581 / 0.6471 =
    0.7079 (Murphy's tutorial)."""
    return BayesianNetwork([
        Node("cloudy", (), bernoulli_cpt(0.5)),
        Node("sprinkler", ("cloudy",), bernoulli_cpt([0.5, 0.1])),        # [~C, C]
        Node("rain", ("cloudy",), bernoulli_cpt([0.2, 0.8])),
        Node("wet_grass", ("sprinkler", "rain"),
             bernoulli_cpt([[0.0, 0.9],                                    # ~S: [~R, R]
                            [0.9, 0.99]])),                                # S:  [~R, R]
    ])


def asia_network() -> BayesianNetwork:
    """The Asia ("chest clinic") network of Lauritzen & Spiegelhalter 1988, every variable
    ("false", "true"), with its standard tables:

        asia   visit to Asia             P = 0.01
        smoke  smoker                    P = 0.5
        tub    tuberculosis              P(tub | asia) = 0.05, P(tub | ~asia) = 0.01
        lung   lung cancer               P(lung | smoke) = 0.1, P(lung | ~smoke) = 0.01
        bronc  bronchitis                P(bronc | smoke) = 0.6, P(bronc | ~smoke) = 0.3
        either tub or lung               deterministic: either = tub OR lung
        xray   positive X-ray            P(xray | either) = 0.98, P(xray | ~either) = 0.05
        dysp   dyspnoea                  P(dysp | either, bronc) = 0.9,
                                         P(dysp | either, ~bronc) = 0.7,
                                         P(dysp | ~either, bronc) = 0.8,
                                         P(dysp | ~either, ~bronc) = 0.1

    Then, for example, P(dysp) = 0.43597 and P(lung | dysp) = 0.10276."""
    return BayesianNetwork([
        Node("asia", (), bernoulli_cpt(0.01)),
        Node("smoke", (), bernoulli_cpt(0.5)),
        Node("tub", ("asia",), bernoulli_cpt([0.01, 0.05])),
        Node("lung", ("smoke",), bernoulli_cpt([0.01, 0.1])),
        Node("bronc", ("smoke",), bernoulli_cpt([0.3, 0.6])),
        Node("either", ("tub", "lung"), bernoulli_cpt([[0.0, 1.0],          # ~tub: [~lung, lung]
                                                       [1.0, 1.0]])),       # tub
        Node("xray", ("either",), bernoulli_cpt([0.05, 0.98])),
        Node("dysp", ("either", "bronc"), bernoulli_cpt([[0.1, 0.8],   # ~either: [~b, b]
                                                         [0.7, 0.9]])),  # either:  [~b, b]
    ])
