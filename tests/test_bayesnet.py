"""Bayesian networks (tinygen/models/classic/bayesnet.py): the joint against its
definition, variable elimination against enumeration on random networks, the samplers'
frequencies against the exact posteriors, the textbook numbers of the sprinkler and Asia
networks, and clear errors for bad networks, queries and evidence. Nothing is trained.

The sampling tests are seeded and allow 5 standard errors, sqrt(p (1 - p) / n) with n the
samples that count (all of them, the accepted ones, or N_eff), so a correct sampler fails
with probability below 1e-6 per cell while a wrong table or weight moves an estimate by
far more."""
import itertools

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

import tinygen as tg
from tinygen.models.classic.bayesnet import (MAX_ENUMERATION, BayesianNetwork, Factor, Node,
                                             asia_network, bernoulli_cpt, elimination_order,
                                             enumerate_query, likelihood_weighting, marginals,
                                             rejection_sampling, sprinkler_network,
                                             variable_elimination)

ORDERS = ["min-degree", "min-fill", "reverse-topological"]


# --------------------------------------------------------------------------- random networks

@st.composite
def networks(draw, max_vars=6):
    """A random DAG of 1..max_vars variables of 1..3 values, up to 3 parents each, random
    CPTs (sometimes with zeros, so that some evidence is impossible), listed in a random
    order so that the listing is not a topological order."""
    n = draw(st.integers(1, max_vars))
    cards = draw(st.lists(st.integers(1, 3), min_size=n, max_size=n))
    parents = [sorted(draw(st.sets(st.integers(0, j - 1), max_size=min(j, 3)))) if j else []
               for j in range(n)]
    with_zeros = draw(st.booleans())
    rng = np.random.default_rng(draw(st.integers(0, 2 ** 32 - 1)))
    nodes = []
    for j in range(n):
        rows = int(np.prod([cards[p] for p in parents[j]], dtype=int))
        cpt = rng.dirichlet(np.ones(cards[j]), size=rows)
        if with_zeros:
            cpt[rng.random(cpt.shape) < 0.3] = 0.0
            empty = cpt.sum(axis=1) == 0
            cpt[empty, rng.integers(0, cards[j], size=int(empty.sum()))] = 1.0
            cpt /= cpt.sum(axis=1, keepdims=True)
        shape = tuple(cards[p] for p in parents[j]) + (cards[j],)
        nodes.append(Node(f"x{j}", tuple(f"x{p}" for p in parents[j]), cpt.reshape(shape)))
    listing = draw(st.permutations(range(n)))
    return BayesianNetwork([nodes[k] for k in listing])


@st.composite
def networks_with_queries(draw):
    """(net, query names, evidence {name: value index}): 1 or 2 query variables, any of
    the others observed."""
    net = draw(networks())
    names = list(draw(st.permutations(net.names)))
    m = draw(st.integers(1, min(2, len(names))))
    query, rest = names[:m], names[m:]
    evidence = {}
    for name in rest:
        if draw(st.booleans()):
            evidence[name] = draw(st.integers(0, net[name].cardinality - 1))
    return net, query, evidence


def all_assignments(net):
    """Every joint assignment, (prod K_i, n), by itertools (not the library's np.indices)."""
    return np.array(list(itertools.product(*[range(k) for k in net.cardinalities])))


def brute_log_prob(net, x):
    """log p(x) of eq. (1), one assignment at a time, by Python loops over the nodes."""
    total = 0.0
    for node in net.nodes:
        row = tuple(x[net.names.index(p)] for p in node.parents)
        with np.errstate(divide="ignore"):
            total += np.log(node.cpt[row + (x[net.names.index(node.name)],)])
    return total


def assert_within_standard_errors(estimate, exact, n, sigmas=5.0):
    """|estimate - exact| <= sigmas sqrt(p (1 - p) / n) for every cell (exactly equal where
    p is 0 or 1: such cells cannot vary)."""
    estimate, exact = np.asarray(estimate), np.asarray(exact)
    assert estimate.shape == exact.shape
    tol = sigmas * np.sqrt(exact * (1 - exact) / n) + 1e-12
    bad = np.abs(estimate - exact) > tol
    assert not bad.any(), (f"estimate {estimate[bad]} against exact {exact[bad]}, allowed "
                           f"{tol[bad]} (n = {n})")


# --------------------------------------------------------------------------- the joint, eq. (1)

def test_log_prob_is_the_product_of_the_cpt_entries():
    s = sprinkler_network()
    # cloudy, not sprinkler, rain, wet: P(C) P(~S | C) P(R | C) P(W | ~S, R)
    assert s.log_prob([1, 0, 1, 1]) == pytest.approx(np.log(0.5 * 0.9 * 0.8 * 0.9), abs=1e-14)
    # not cloudy, sprinkler, not rain, wet: P(~C) P(S | ~C) P(~R | ~C) P(W | S, ~R)
    assert s.log_prob([0, 1, 0, 1]) == pytest.approx(np.log(0.5 * 0.5 * 0.8 * 0.9), abs=1e-14)
    # a zero of the table (wet with neither cause) is log 0 = -inf, not NaN
    assert s.log_prob([0, 0, 0, 1]) == -np.inf
    a = asia_network()
    x = all_assignments(a)
    np.testing.assert_allclose(a.log_prob(x), [brute_log_prob(a, xi) for xi in x],
                               rtol=1e-12)


@given(networks())
def test_the_joint_sums_to_one_and_matches_its_definition(net):
    x = all_assignments(net)
    logp = net.log_prob(x)
    assert logp.shape == (len(x),)
    assert np.exp(logp).sum() == pytest.approx(1.0, abs=1e-12)
    np.testing.assert_allclose(logp, [brute_log_prob(net, xi) for xi in x], rtol=1e-12)


def test_bernoulli_cpt_puts_false_then_true_on_the_last_axis():
    np.testing.assert_array_equal(bernoulli_cpt(0.25), [0.75, 0.25])
    np.testing.assert_array_equal(bernoulli_cpt([[0.0, 1.0]]), [[[1.0, 0.0], [0.0, 1.0]]])


def test_the_listing_order_does_not_matter():
    s = sprinkler_network()
    backwards = BayesianNetwork(list(s.nodes)[::-1])
    assert backwards.topological_order[0] == "cloudy"
    assert backwards.topological_order[-1] == "wet_grass"
    for net in (s, backwards):
        assert variable_elimination(net, "rain", {"wet_grass": 1})[1] == pytest.approx(0.7079,
                                                                                     abs=5e-5)


# --------------------------------------------------------------------------- the textbook numbers

@pytest.mark.parametrize("infer", [enumerate_query, variable_elimination])
def test_sprinkler_reproduces_the_textbook_posteriors(infer):
    # Murphy, "A Brief Introduction to Graphical Models and Bayesian Networks" / the Bayes
    # Net Toolbox tutorial (the tables of Russell & Norvig, figure 14.12):
    # P(W) = 0.6471, P(S | W) = 0.2781 / 0.6471 = 0.4298, P(R | W) = 0.4581 / 0.6471 = 0.7079
    s = sprinkler_network()
    assert infer(s, "wet_grass")[1] == pytest.approx(0.6471, abs=1e-10)
    assert infer(s, "sprinkler", {"wet_grass": "true"})[1] == pytest.approx(0.4298, abs=5e-5)
    assert infer(s, "rain", {"wet_grass": True})[1] == pytest.approx(0.7079, abs=5e-5)
    # explaining away: the sprinkler being on makes rain less likely than wet grass alone,
    # P(R | W, S) = P(C,S,R,W summed over C) / P(S,W) = 0.0891 / 0.2781
    assert infer(s, "rain", {"wet_grass": 1, "sprinkler": 1})[1] == pytest.approx(
        (0.5 * 0.1 * 0.8 + 0.5 * 0.5 * 0.2) * 0.99 / 0.2781, abs=5e-5)
    p_sw = infer(s, ["sprinkler", "wet_grass"])
    assert p_sw[1, 1] == pytest.approx(0.2781, abs=5e-5)
    assert p_sw.sum() == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize("infer", [enumerate_query, variable_elimination])
def test_asia_reproduces_the_standard_marginals(infer):
    a = asia_network()
    # closed forms of the first layers: P(tub) = 0.01 * 0.05 + 0.99 * 0.01, P(lung) =
    # 0.5 * 0.1 + 0.5 * 0.01, P(bronc) = 0.5 * 0.6 + 0.5 * 0.3, and tub, lung independent
    p_tub, p_lung = 0.01 * 0.05 + 0.99 * 0.01, 0.5 * 0.1 + 0.5 * 0.01
    assert infer(a, "tub")[1] == pytest.approx(p_tub, abs=1e-14)
    assert infer(a, "lung")[1] == pytest.approx(p_lung, abs=1e-14)
    assert infer(a, "bronc")[1] == pytest.approx(0.45, abs=1e-14)
    assert infer(a, "either")[1] == pytest.approx(1 - (1 - p_tub) * (1 - p_lung), abs=1e-14)
    # the standard values (Lauritzen & Spiegelhalter 1988's tables): 0.4359706 and
    # 0.1027592, computed by hand over the 256 assignments
    assert infer(a, "dysp")[1] == pytest.approx(0.43597, abs=5e-6)
    assert infer(a, "lung", {"dysp": 1})[1] == pytest.approx(0.10276, abs=5e-6)
    assert infer(a, "bronc", {"dysp": 1})[1] == pytest.approx(0.83397, abs=5e-6)


def test_asia_either_is_the_or_of_tub_and_lung():
    a = asia_network()
    p = variable_elimination(a, ["tub", "lung", "either"])
    for t, l, e in itertools.product([0, 1], repeat=3):
        if e != (t or l):
            assert p[t, l, e] == 0.0
    x = a.sample(20000, rng=3)   # the sampler never picks a value of probability 0
    i = a.names.index
    np.testing.assert_array_equal(x[:, i("either")], x[:, i("tub")] | x[:, i("lung")])


# ------------------------------------------------------------------ factors and elimination

def test_factor_operations_match_their_definitions():
    rng = np.random.default_rng(0)
    f1 = Factor((0, 1), np.log(rng.random((2, 3))))          # phi_1(A, B)
    f2 = Factor((2, 1), np.log(rng.random((4, 3))))          # phi_2(C, B)
    prod = f1.product(f2)
    assert prod.scope == (0, 1, 2)
    for a, b, c in itertools.product(range(2), range(3), range(4)):
        assert prod.log_table[a, b, c] == pytest.approx(f1.log_table[a, b] + f2.log_table[c, b])
    summed = prod.sum_out(1)
    assert summed.scope == (0, 2)
    for a, c in itertools.product(range(2), range(4)):
        want = np.log(sum(np.exp(prod.log_table[a, b, c]) for b in range(3)))
        assert summed.log_table[a, c] == pytest.approx(want, rel=1e-12)
    reduced = prod.reduce({1: 2, 7: 0})                       # 7 is not in the scope
    assert reduced.scope == (0, 2)
    np.testing.assert_array_equal(reduced.log_table, prod.log_table[:, 2, :])
    # a sum over zero probabilities is log 0 = -inf, not NaN
    zeros = Factor((0, 1), np.full((2, 2), -np.inf)).sum_out(0)
    assert np.all(zeros.log_table == -np.inf)


@given(networks_with_queries())
def test_variable_elimination_equals_enumeration(case):
    net, query, evidence = case
    try:
        exact = enumerate_query(net, query, evidence)
    except ValueError as e:      # the evidence has probability zero: so must VE find
        assert "probability zero" in str(e)
        for order in ORDERS:
            with pytest.raises(ValueError, match="probability zero"):
                variable_elimination(net, query, evidence, order=order)
        return
    assert exact.shape == tuple(net[q].cardinality for q in query)
    assert exact.sum() == pytest.approx(1.0, abs=1e-12)
    for order in ORDERS + [list(net.names)[::-1]]:
        for prune in (True, False):
            if not isinstance(order, str):
                order = [n for n in order if n not in query and n not in evidence]
            got = variable_elimination(net, query, evidence, order=order, prune=prune)
            np.testing.assert_allclose(got, exact, rtol=1e-9, atol=1e-12,
                                       err_msg=f"order={order}, prune={prune}")


@given(networks_with_queries())
def test_log_evidence_is_the_log_of_the_summed_joint(case):
    net, query, evidence = case
    x = all_assignments(net)
    agree = np.all([x[:, net.names.index(k)] == v for k, v in evidence.items()], axis=0) \
        if evidence else np.ones(len(x), bool)
    p_e = np.exp(net.log_prob(x[agree])).sum()
    assume(p_e > 0)
    _, log_e = variable_elimination(net, query, evidence, return_log_evidence=True)
    assert log_e == pytest.approx(np.log(p_e), abs=1e-10)


def test_elimination_orders_on_a_chain_and_a_star():
    # chain a -> b -> c -> d: leaves first; min-degree starts at the end of the chain (a)
    chain = BayesianNetwork([Node("a", (), [0.5, 0.5]),
                             Node("b", ("a",), [[0.9, 0.1], [0.2, 0.8]]),
                             Node("c", ("b",), [[0.9, 0.1], [0.2, 0.8]]),
                             Node("d", ("c",), [[0.9, 0.1], [0.2, 0.8]])])
    scopes = [(0,), (0, 1), (1, 2), (2, 3)]
    assert elimination_order(chain, [0, 1, 2], scopes, "min-degree") == [0, 1, 2]
    assert elimination_order(chain, [0, 1, 2], scopes, "reverse-topological") == [2, 1, 0]
    # star: the hub h has every other variable as a child; eliminating it first would
    # join all the leaves into one factor, so both heuristics leave it to last
    star = BayesianNetwork([Node("h", (), [0.5, 0.5])]
                           + [Node(f"l{k}", ("h",), [[0.7, 0.3], [0.4, 0.6]])
                              for k in range(4)])
    scopes = [(0,)] + [(0, k) for k in range(1, 5)]
    for order in ("min-degree", "min-fill"):
        assert elimination_order(star, [0, 1, 2, 3], scopes, order)[-1] == 0
    assert elimination_order(star, [0, 3], scopes, ["l2", "h"]) == [3, 0]   # l2 is 3
    with pytest.raises(ValueError, match=r"misses the hidden variables \['h'\]"):
        elimination_order(star, [0, 3], scopes, ["l2"])
    with pytest.raises(ValueError, match="order must be one of"):
        elimination_order(star, [0], scopes, "max-degree")


def test_marginals_are_the_single_variable_posteriors():
    a = asia_network()
    m = marginals(a, {"dysp": 1})
    assert list(m) == list(a.names)
    np.testing.assert_array_equal(m["dysp"], [0.0, 1.0])
    for name in a.names[:-1]:
        np.testing.assert_allclose(m[name], enumerate_query(a, name, {"dysp": 1}), rtol=1e-12)


# --------------------------------------------------------------------------- sampling

@pytest.mark.parametrize("net", [sprinkler_network(),
                                 BayesianNetwork([
                                     Node("u", (), [0.2, 0.5, 0.3]),
                                     Node("v", ("u",), [[0.1, 0.9], [0.6, 0.4], [1.0, 0.0]]),
                                     Node("w", ("v", "u"), [[[0.5, 0.2, 0.3], [0.0, 0.0, 1.0],
                                                             [0.3, 0.3, 0.4]],
                                                            [[0.9, 0.1, 0.0], [0.2, 0.7, 0.1],
                                                             [0.25, 0.25, 0.5]]])])],
                         ids=["sprinkler", "ternary"])
def test_ancestral_samples_have_the_joint_frequencies(net):
    N = 100_000
    x = net.sample(N, rng=0)
    assert x.shape == (N, len(net)) and x.dtype.kind == "i"
    cells = all_assignments(net)
    index = np.ravel_multi_index(x.T, net.cardinalities)
    freq = np.bincount(index, minlength=len(cells)) / N
    exact = np.exp(net.log_prob(cells))   # cells are in ravel order (itertools.product)
    assert_within_standard_errors(freq, exact, N)


def test_a_row_a_hair_under_one_never_yields_an_impossible_value():
    # A row typed in by hand may sum to 1 - 1e-6 (accepted: ROW_SUM_TOLERANCE). An inverse
    # CDF against u in [0, 1) would then return K (no value at all) for u above the last
    # edge: with this seed 2 of the 2,000,000 draws are there.
    net = BayesianNetwork([Node("a", (), [0.0, 1.0 - 9.9e-7])])
    x = net.sample(2_000_000, rng=0)
    assert np.all(x == 1)


def test_sampling_is_reproducible_and_follows_tinygen_manual_seed():
    s = sprinkler_network()
    np.testing.assert_array_equal(s.sample(50, rng=7), s.sample(50, rng=7))
    tg.manual_seed(3)
    first = s.sample(50)
    tg.manual_seed(3)
    np.testing.assert_array_equal(s.sample(50), first)
    assert s.sample(0).shape == (0, 4)


@pytest.mark.parametrize("net, query, evidence", [
    (sprinkler_network(), ["sprinkler", "rain"], {"wet_grass": 1}),
    (sprinkler_network(), "cloudy", {"wet_grass": 1, "rain": 0}),
    (asia_network(), ["either", "bronc"], {"dysp": 1, "xray": 0}),
])
def test_rejection_sampling_converges_to_the_exact_posterior(net, query, evidence):
    N = 100_000
    exact = variable_elimination(net, query, evidence)
    est = rejection_sampling(net, query, evidence, N, rng=1)
    assert est.num_samples == N
    # the accepted count is binomial(N, p(e))
    _, log_e = variable_elimination(net, query, evidence, return_log_evidence=True)
    assert_within_standard_errors(est.effective_samples / N, np.exp(log_e), N)
    assert_within_standard_errors(est.probs, exact, est.effective_samples)


@pytest.mark.parametrize("net, query, evidence", [
    (sprinkler_network(), ["sprinkler", "rain"], {"wet_grass": 1}),
    (sprinkler_network(), "cloudy", {"wet_grass": 1, "rain": 0}),
    (asia_network(), ["either", "bronc"], {"dysp": 1, "xray": 0}),
    # rare evidence, p(e) = 0.00046: where rejection starves, the weights still count
    (asia_network(), "tub", {"asia": 1, "xray": 1, "dysp": 1}),
])
def test_likelihood_weighting_converges_to_the_exact_posterior(net, query, evidence):
    N = 100_000
    exact = variable_elimination(net, query, evidence)
    est = likelihood_weighting(net, query, evidence, N, rng=2)
    assert est.num_samples == N and 1 <= est.effective_samples <= N
    assert_within_standard_errors(est.probs, exact, est.effective_samples)


def test_likelihood_weighting_effective_sample_size():
    s = sprinkler_network()
    N = 100_000
    # evidence on a root only: every weight is P(C = c), all equal, N_eff = N exactly
    assert likelihood_weighting(s, "rain", {"cloudy": 1}, N, rng=0).effective_samples == \
        pytest.approx(N, rel=1e-12)
    # evidence W = w: w_s = P(W | s, r) with (s, r) from the prior, so N_eff / N tends to
    # E[w]^2 / E[w^2], eq. (10) in expectation
    p_sr = variable_elimination(s, ["sprinkler", "rain"])
    p_w = s["wet_grass"].cpt[..., 1]
    ratio = (p_sr * p_w).sum() ** 2 / (p_sr * p_w ** 2).sum()
    est = likelihood_weighting(s, "rain", {"wet_grass": 1}, N, rng=0)
    assert est.effective_samples / N == pytest.approx(ratio, abs=0.01)
    assert ratio < 0.9   # the test means something: the weights do vary


def test_sample_with_evidence_clamps_it():
    s = sprinkler_network()
    x = s.sample(1000, rng=0, evidence={"rain": 1})
    assert np.all(x[:, 2] == 1)
    # wet grass is drawn given the clamped rain: P(W | R) >= 0.9, never the ~S ~R zero
    assert x[:, 3].mean() > 0.85


# --------------------------------------------------------------------------- errors

def test_a_cycle_is_refused_with_the_cycle_named():
    with pytest.raises(ValueError, match=r"cycle, (a -> b -> c -> a|b -> c -> a -> b|"
                                         r"c -> a -> b -> c)"):
        BayesianNetwork([Node("a", ("c",), [[0.5, 0.5], [0.5, 0.5]]),
                         Node("b", ("a",), [[0.5, 0.5], [0.5, 0.5]]),
                         Node("c", ("b",), [[0.5, 0.5], [0.5, 0.5]]),
                         Node("d", (), [0.5, 0.5])])
    with pytest.raises(ValueError, match="lists itself"):
        BayesianNetwork([Node("a", ("a",), [[0.5, 0.5], [0.5, 0.5]])])


@pytest.mark.parametrize("nodes, message", [
    ([Node("a", (), [0.5, 0.5]), Node("b", ("a",), [0.5, 0.5])],
     r"CPT of 'b' has shape \(2,\); expected \(2 \(a\), K\)"),
    ([Node("a", (), [0.5, 0.5]), Node("b", ("a",), [[0.5, 0.5], [0.5, 0.5], [0.5, 0.5]])],
     r"CPT of 'b' has shape \(3, 2\)"),
    ([Node("a", (), [0.5, 0.5]), Node("b", ("a",), [[0.5, 0.5], [0.7, 0.4]])],
     r"CPT row of 'b' given a=1 sums to 1\.1"),
    ([Node("a", (), [1.2, -0.2])], r"CPT of 'a' has the entry"),
    ([Node("a", (), [np.nan, 1.0])], r"CPT of 'a' has the entry nan"),
    ([Node("a", (), [0.5, 0.5]), Node("b", ("z",), [[0.5, 0.5], [0.5, 0.5]])],
     r"'b' has the parent 'z', which is not a variable"),
    ([Node("a", (), [0.5, 0.5]), Node("a", (), [0.5, 0.5])], r"two nodes are named 'a'"),
    ([Node("a", (), [0.5, 0.5], states=("x", "y", "z"))], r"'a' has 3 states"),
    ([Node("a", (), None)], r"'a' has no CPT"),
])
def test_a_bad_network_is_refused_by_name(nodes, message):
    with pytest.raises(ValueError, match=message):
        BayesianNetwork(nodes)


def test_bad_types_are_refused():
    with pytest.raises(TypeError, match="must be a Node"):
        BayesianNetwork([("a", (), [0.5, 0.5])])
    with pytest.raises(TypeError, match="numeric array"):
        BayesianNetwork([Node("a", (), ["half", "half"])])
    with pytest.raises(ValueError, match="nodes is empty"):
        BayesianNetwork([])


INFERENCE = [enumerate_query, variable_elimination,
             lambda net, q, e: rejection_sampling(net, q, e, 100, rng=0),
             lambda net, q, e: likelihood_weighting(net, q, e, 100, rng=0)]
INFERENCE_IDS = ["enumeration", "elimination", "rejection", "weighting"]


@pytest.mark.parametrize("infer", INFERENCE, ids=INFERENCE_IDS)
@pytest.mark.parametrize("query, evidence, message", [
    ("fog", None, r"unknown variable 'fog'; the network's variables are cloudy"),
    ("rain", {"fog": 1}, r"unknown variable 'fog'"),
    ("rain", {"wet_grass": 2}, r"'wet_grass' = 2 is out of range; .* 0\.\.1"),
    ("rain", {"wet_grass": -1}, r"out of range"),
    ("rain", {"wet_grass": "soaked"}, r"'soaked' is not a value of 'wet_grass'"),
    ("rain", {"rain": 1}, r"both in the query and in the evidence"),
    ([], None, r"query is empty"),
    (["rain", "rain"], None, r"names a variable twice"),
])
def test_a_bad_query_is_refused_by_name(infer, query, evidence, message):
    with pytest.raises(ValueError, match=message):
        infer(sprinkler_network(), query, evidence)


@pytest.mark.parametrize("infer", INFERENCE, ids=INFERENCE_IDS)
def test_evidence_of_probability_zero_is_an_error_not_nan(infer):
    # wet grass with neither the sprinkler nor rain: P(W | ~S, ~R) = 0
    with pytest.raises(ValueError, match=r"probability zero|none of the 100 samples"):
        infer(sprinkler_network(), "cloudy", {"wet_grass": 1, "sprinkler": 0, "rain": 0})


def test_other_bad_arguments_are_refused():
    s = sprinkler_network()
    with pytest.raises(ValueError, match="num_samples must be an integer >= 1"):
        likelihood_weighting(s, "rain", None, 0)
    with pytest.raises(ValueError, match="num_samples must be an integer >= 0"):
        s.sample(-1)
    with pytest.raises(TypeError, match="rng must be None"):
        s.sample(5, rng="seed")
    with pytest.raises(ValueError, match=r"column 3 \('wet_grass'\) has a value outside"):
        s.log_prob([0, 0, 0, 2])
    with pytest.raises(ValueError, match=r"x must have shape \(N, 4\)"):
        s.log_prob([0, 0, 0])
    with pytest.raises(ValueError, match="queried or observed"):
        variable_elimination(s, "rain", {"wet_grass": 1}, order=["cloudy", "wet_grass"])
    big = BayesianNetwork([Node(f"x{k}", (), [0.5, 0.5]) for k in range(21)])
    assert 2 ** 21 > MAX_ENUMERATION
    with pytest.raises(ValueError, match="use variable_elimination"):
        enumerate_query(big, "x0")
    assert variable_elimination(big, "x0")[1] == pytest.approx(0.5)
