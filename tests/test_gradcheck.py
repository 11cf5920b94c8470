"""gradcheck and gradgradcheck must catch wrong derivatives, or they prove nothing."""
import numpy as np
import pytest

import tinygen as tg
from tinygen.autograd import Function, Tensor


class WrongSquare(Function):
    """x^2 with the gradient forgotten by a factor 2."""

    def forward(self, a):
        return a * a

    def backward(self, g):
        return g * self.inputs[0]


class FrozenSquare(Function):
    """x^2 with a correct first derivative built from raw arrays: 2x is a constant of
    the graph, so the second derivative comes out 0 instead of 2, and nothing flags it."""

    def forward(self, a):
        return a * a

    def backward(self, g):
        return g * Tensor(2 * self.inputs[0].data)


def x64(*shape, seed=0):
    rng = np.random.default_rng(seed)
    return tg.tensor(rng.standard_normal(shape), requires_grad=True)


def test_correct_gradients_pass():
    x = x64(3, 2)
    assert tg.gradcheck(lambda x: (x * x).sum(axis=0), [x])
    assert tg.gradgradcheck(lambda x: (x * x).sum(axis=0), [x])


def test_a_wrong_gradient_is_caught_elementwise():
    with pytest.raises(tg.GradcheckError, match="input 0"):
        tg.gradcheck(WrongSquare.apply, [x64(2, 3)])


def test_a_wrong_gradient_is_caught_along_random_directions():
    x = x64(20, 20)  # 400 elements: checked along random directions
    with pytest.raises(tg.GradcheckError, match="random direction"):
        tg.gradcheck(WrongSquare.apply, [x])
    assert tg.gradcheck(lambda x: x * x, [x])


def test_a_wrong_second_derivative_is_caught():
    x = x64(4)
    assert tg.gradcheck(FrozenSquare.apply, [x])  # first order is right
    with pytest.raises(tg.GradcheckError):
        tg.gradgradcheck(FrozenSquare.apply, [x])
    assert not tg.gradgradcheck(FrozenSquare.apply, [x], raise_exception=False)


def test_float32_inputs_are_refused():
    with pytest.raises(TypeError, match="float64"):
        tg.gradcheck(lambda x: x * 2, [tg.randn(3, requires_grad=True)])


def test_several_outputs_and_inputs():
    a, b = x64(3, seed=1), x64(3, seed=2)
    assert tg.gradcheck(lambda a, b: (a * b, a.exp() + b), [a, b])
    assert tg.gradgradcheck(lambda a, b: (a * b, a.exp() + b), [a, b])
