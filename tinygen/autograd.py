"""Reverse-mode automatic differentiation: Tensor, Function, backward() and grad().

The engine is define-by-run. Every op is a ``Function``: its ``forward`` computes on raw
arrays (NumPy or CuPy), and when any input requires a gradient the call records a node
that remembers its inputs. The recorded nodes form a directed acyclic graph from the
leaves (parameters, inputs) to the output.

``backward`` is the chain rule applied to that graph in reverse topological order. For
a scalar output L and a node y = f(x_1, ..., x_n) it turns dL/dy into

    dL/dx_i = (dL/dy) (dy/dx_i)        (a vector-Jacobian product),

summed over every path by which x_i reaches L. Each node's ``backward`` is written with
tensor ops, not raw arrays, so the gradient computation is itself an ordinary
computation: under ``create_graph=True`` it is recorded like any other, and its result
can be differentiated again (second derivatives, gradient penalties, Hessian-vector
products). Without ``create_graph`` the backward pass runs under ``no_grad`` and records
nothing.

Broadcasting is undone in exactly one place, the engine: when an op broadcast an input
of shape s to a larger shape, the gradient arriving for it has the larger shape and is
summed back to s (``sum_to``) before it is passed on.
"""
from __future__ import annotations

import numbers
import weakref

import numpy as np

from . import backend


# --------------------------------------------------------------------------- grad mode

class _GradMode:
    enabled = True


def is_grad_enabled() -> bool:
    """Whether ops currently record the graph."""
    return _GradMode.enabled


class _SetGradMode:
    """Context manager and decorator that sets grad mode and restores it on exit."""

    def __init__(self, mode: bool):
        self.mode = mode
        self._prev = []  # a stack, so one instance can be re-entered (e.g. recursion)

    def __enter__(self):
        self._prev.append(_GradMode.enabled)
        _GradMode.enabled = self.mode
        return self

    def __exit__(self, *exc):
        _GradMode.enabled = self._prev.pop()
        return False

    def __call__(self, func):
        import functools

        @functools.wraps(func)
        def wrapper(*args, **kwargs):
            with _SetGradMode(self.mode):
                return func(*args, **kwargs)
        return wrapper


def no_grad():
    """Context (or decorator) in which ops record no graph: for sampling and evaluation."""
    return _SetGradMode(False)


def enable_grad():
    """Context (or decorator) that turns recording back on inside ``no_grad``."""
    return _SetGradMode(True)


def set_grad_enabled(mode: bool):
    """Context that sets grad mode to ``mode``."""
    return _SetGradMode(bool(mode))


# --------------------------------------------------------------------------- Tensor

def _is_float(dtype) -> bool:
    return np.issubdtype(dtype, np.floating)


class Tensor:
    """An array with an optional gradient and a link to the op that produced it.

    Attributes:
        data: the raw array, ``numpy.ndarray`` on the CPU or ``cupy.ndarray`` on the GPU.
        grad: the accumulated gradient (a Tensor of the same shape) or None.
        requires_grad: whether ops on this tensor are recorded for differentiation.

    Build tensors with ``tinygen.tensor(...)``; the constructor takes an array as is.
    Gradients in ``.grad`` may share memory with other gradients: treat them as
    read-only (the engine never modifies them in place).
    """

    __slots__ = ("data", "grad", "requires_grad", "_ctx", "_version", "_base", "__weakref__")
    # Make NumPy defer to Tensor in mixed expressions such as ``ndarray * tensor``.
    __array_ufunc__ = None

    def __init__(self, data, requires_grad: bool = False, _ctx: "Function | None" = None):
        if requires_grad and not _is_float(data.dtype):
            raise TypeError(
                f"only floating-point tensors can require gradients; got dtype {data.dtype}")
        self.data = data
        self.grad = None
        self.requires_grad = bool(requires_grad)
        self._ctx = _ctx
        # In-place writes advance _version (see mark_modified); a view (an op's output
        # that shares this tensor's memory, or a detach()) keeps its base in _base and
        # reads the base's version, as a view in PyTorch shares its base's counter.
        self._version = 0
        self._base = None

    # ---- basic properties
    @property
    def shape(self) -> tuple:
        return self.data.shape

    @property
    def ndim(self) -> int:
        return self.data.ndim

    @property
    def size(self) -> int:
        return self.data.size

    @property
    def dtype(self):
        return self.data.dtype

    @property
    def device(self) -> str:
        return backend.device_of(self.data)

    @property
    def is_leaf(self) -> bool:
        """A leaf was made by the user, not by an op; only leaves get ``.grad`` from backward()."""
        return self._ctx is None

    @property
    def grad_fn(self):
        """The Function node that produced this tensor (None for leaves)."""
        return self._ctx

    def __len__(self):
        if self.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self.shape[0]

    def __iter__(self):
        # Without this Python would iterate by indexing until IndexError, which for a 0-d
        # tensor never comes from a valid index: list(tensor(3.0)) gave [].
        if self.ndim == 0:
            raise TypeError("iteration over a 0-d tensor")
        return (self[i] for i in range(self.shape[0]))

    def __repr__(self):
        body = np.array2string(self.numpy(), separator=", ", precision=4, threshold=20,
                               prefix="tensor(")
        extra = [f"dtype={self.dtype}"] if self.dtype != np.float32 else []
        if self.device != "cpu":
            extra.append(f"device='{self.device}'")
        if self._ctx is not None:
            extra.append(f"grad_fn={type(self._ctx).__name__}")
        elif self.requires_grad:
            extra.append("requires_grad=True")
        return "tensor(" + body + "".join(", " + e for e in extra) + ")"

    def __hash__(self):  # comparisons are element-wise, so hash by identity
        return id(self)

    def __bool__(self):
        if self.size != 1:
            raise ValueError(
                f"the truth value of a tensor of shape {self.shape} is ambiguous; "
                "use .any() or .all()")
        return bool(self.data)

    def __float__(self):
        return float(self.item())

    def __int__(self):
        return int(self.item())

    # ---- leaving the graph and the device
    def numpy(self) -> np.ndarray:
        """The values as a NumPy array (copied from the GPU when needed; shared on the CPU)."""
        return backend.to_numpy(self.data)

    def item(self):
        """The value of a one-element tensor as a Python number."""
        if self.size != 1:
            raise ValueError(f"item() needs a tensor with one element; got shape {self.shape}")
        return self.data.reshape(()).item()

    def tolist(self):
        return self.numpy().tolist()

    def detach(self) -> "Tensor":
        """A tensor sharing this one's data, cut from the graph (requires_grad=False).

        It shares this tensor's version counter too: an in-place write to either is
        seen by a graph that saved the other."""
        out = Tensor(self.data)
        out._base = self if self._base is None else self._base
        return out

    def requires_grad_(self, requires_grad: bool = True) -> "Tensor":
        """Set ``requires_grad`` in place (leaves only) and return self."""
        if not self.is_leaf and not requires_grad:
            raise RuntimeError("requires_grad_(False) on a non-leaf; use .detach() instead")
        if requires_grad and not _is_float(self.dtype):
            raise TypeError(
                f"only floating-point tensors can require gradients; got dtype {self.dtype}")
        self.requires_grad = requires_grad
        return self

    def to(self, device: str) -> "Tensor":
        """This tensor on ``device`` ("cpu" or "cuda"); copies only when the device changes.

        The copy is differentiable: gradients flow back to the original device.
        """
        device = backend.check_device(device)
        if device == self.device:
            return self
        from .ops.shape import ToDevice
        return ToDevice.apply(self, device=device)

    def cpu(self) -> "Tensor":
        return self.to("cpu")

    def cuda(self) -> "Tensor":
        return self.to("cuda")

    # ---- differentiation
    def backward(self, grad=None, retain_graph=None, create_graph: bool = False) -> None:
        """Accumulate d(self)/d(leaf) into ``leaf.grad`` for every leaf that requires grad.

        Args:
            grad: the gradient of some scalar with respect to this tensor (same shape);
                may be omitted only when this tensor has a single element.
            retain_graph: keep the graph so backward can run through it again; defaults
                to ``create_graph``.
            create_graph: record the backward pass so the gradients can be differentiated.
        """
        backward([self], None if grad is None else [grad], retain_graph=retain_graph,
                 create_graph=create_graph)

    # ---- operators and methods: thin wrappers over the ops in tinygen.ops
    def __add__(self, other): return ops.add(self, other)
    def __radd__(self, other): return ops.add(other, self)
    def __sub__(self, other): return ops.sub(self, other)
    def __rsub__(self, other): return ops.sub(other, self)
    def __mul__(self, other): return ops.mul(self, other)
    def __rmul__(self, other): return ops.mul(other, self)
    def __truediv__(self, other): return ops.div(self, other)
    def __rtruediv__(self, other): return ops.div(other, self)
    def __pow__(self, other): return ops.pow(self, other)
    def __rpow__(self, other): return ops.pow(other, self)
    def __matmul__(self, other): return ops.matmul(self, other)
    def __rmatmul__(self, other): return ops.matmul(other, self)
    def __neg__(self): return ops.neg(self)
    def __pos__(self): return self
    def __abs__(self): return ops.abs(self)
    def __getitem__(self, index): return ops.getitem(self, index)

    def __lt__(self, other): return ops.lt(self, other)
    def __le__(self, other): return ops.le(self, other)
    def __gt__(self, other): return ops.gt(self, other)
    def __ge__(self, other): return ops.ge(self, other)
    def __eq__(self, other): return ops.eq(self, other)
    def __ne__(self, other): return ops.ne(self, other)

    def exp(self): return ops.exp(self)
    def log(self): return ops.log(self)
    def log1p(self): return ops.log1p(self)
    def sqrt(self): return ops.sqrt(self)
    def sin(self): return ops.sin(self)
    def cos(self): return ops.cos(self)
    def tanh(self): return ops.tanh(self)
    def sigmoid(self): return ops.sigmoid(self)
    def abs(self): return ops.abs(self)
    def clip(self, min=None, max=None, straight_through=False):
        return ops.clip(self, min, max, straight_through)
    clamp = clip

    def sum(self, axis=None, keepdims=False): return ops.sum(self, axis, keepdims)
    def mean(self, axis=None, keepdims=False): return ops.mean(self, axis, keepdims)
    def var(self, axis=None, ddof=0, keepdims=False): return ops.var(self, axis, ddof, keepdims)
    def max(self, axis=None, keepdims=False): return ops.max(self, axis, keepdims)
    def min(self, axis=None, keepdims=False): return ops.min(self, axis, keepdims)
    def logsumexp(self, axis=None, keepdims=False): return ops.logsumexp(self, axis, keepdims)
    def cumsum(self, axis, reverse=False): return ops.cumsum(self, axis, reverse)
    def any(self, axis=None, keepdims=False): return ops.any(self, axis, keepdims)
    def all(self, axis=None, keepdims=False): return ops.all(self, axis, keepdims)

    def reshape(self, *shape): return ops.reshape(self, *shape)
    view = reshape
    def transpose(self, *axes): return ops.transpose(self, *axes)
    def swapaxes(self, axis1, axis2): return ops.swapaxes(self, axis1, axis2)
    def flatten(self, start_axis=0, end_axis=-1): return ops.flatten(self, start_axis, end_axis)
    def squeeze(self, axis=None): return ops.squeeze(self, axis)
    def unsqueeze(self, axis): return ops.unsqueeze(self, axis)
    def expand(self, *shape): return ops.expand(self, *shape)
    def broadcast_to(self, shape): return ops.broadcast_to(self, shape)
    def flip(self, axis=None): return ops.flip(self, axis)
    def split(self, split_size_or_sections, axis=0):
        return ops.split(self, split_size_or_sections, axis)
    def chunk(self, chunks, axis=0): return ops.chunk(self, chunks, axis)
    def astype(self, dtype): return ops.astype(self, dtype)
    def float(self): return ops.astype(self, np.float32)
    def double(self): return ops.astype(self, np.float64)

    @property
    def T(self):
        """All axes reversed (the matrix transpose for 2-D tensors)."""
        return ops.transpose(self)

    @property
    def mT(self):
        """The last two axes swapped: the transpose of each matrix in a batch."""
        return ops.swapaxes(self, -2, -1)


# --------------------------------------------------------------------------- Function

class Function:
    """One differentiable op, and, once called, one node of the graph.

    Subclasses implement

    - ``forward(self, *arrays, **params) -> array`` on raw arrays (NumPy or CuPy);
      anything backward needs can be stored on ``self``.
    - ``backward(self, grad) -> Tensor | tuple`` mapping dL/d(output) (a Tensor of the
      output's shape) to dL/d(input) for each tensor input, in order, using tensor ops
      only, so that it can itself be differentiated. It may return None for an input
      that gets no gradient, and a gradient of the broadcast shape for an input that was
      broadcast: the engine sums it back to the input's shape.

    In backward, ``self.inputs`` are the input Tensors, ``self.output`` is the output
    Tensor, and ``self.needs_input_grad[i]`` says whether input i wants a gradient.

    A subclass's docstring opens with its derivative in one line, g standing for dL/dy:
    ``y = log x;  dL/dx = g / x``. Read in order, tinygen/ops is the table of derivatives.

    A Function whose backward uses raw arrays (and so cannot be differentiated again)
    sets ``differentiable_backward = False``; asking for ``create_graph=True`` through
    it then raises an error instead of returning a wrong second derivative.

    ``saves`` says which inputs backward reads the values of: None (the default, every
    input), a tuple of indices (``()`` for ops that need only shapes or masks of their
    own, such as add or reshape), or "cross" for binary products (input i is read only
    when the other input wants a gradient: d(ab)/da = b). Backward refuses to run if a
    saved input was changed in place since the forward pass (an optimizer step between
    forward and backward), instead of returning wrong gradients (see mark_modified).
    """

    differentiable_backward = True
    saves = None
    is_view = False  # True for ops whose output may be a view of input 0's memory
    _clock = 0  # the version clock when the node was recorded (see mark_modified)

    inputs: tuple | None
    needs_input_grad: tuple

    @classmethod
    def apply(cls, *inputs: Tensor, **params) -> Tensor:
        """Run the op on ``inputs`` (Tensors) and record a graph node when needed."""
        node = cls()
        if backend._cupy is not None:  # devices can only differ once CuPy is in use
            _check_same_device(cls.__name__, inputs)
        data = node.forward(*[t.data for t in inputs], **params)
        if isinstance(data, np.generic):  # NumPy returns scalars from 0-d results
            data = np.asarray(data)
        out = Tensor(data)
        if cls.is_view and getattr(data, "base", None) is not None:
            # a view of the input (reshape, transpose, basic indexing) shares its version
            # counter, so a write to either is seen by a graph that saved the other
            t = inputs[0]
            out._base = t if t._base is None else t._base
        if _GradMode.enabled and _is_float(out.data.dtype):
            needs = tuple(t.requires_grad for t in inputs)
            if True in needs:
                node.inputs = inputs
                node.needs_input_grad = needs
                node._output = weakref.ref(out)  # weak: the output owns the node, not back
                out.requires_grad = True
                out._ctx = node
                node._clock = _VersionClock.value  # one int: see mark_modified
        return out

    def forward(self, *arrays, **params):
        raise NotImplementedError

    def backward(self, grad: Tensor):
        raise NotImplementedError

    @property
    def output(self) -> Tensor:
        """The tensor this node produced, for backward formulas that reuse it (exp, tanh)."""
        out = self._output()
        if out is None:  # cannot happen while the graph is alive: a consumer holds it
            raise RuntimeError(f"{type(self).__name__}: its output tensor no longer exists")
        return out

    def __repr__(self):
        return f"<{type(self).__name__} node>"


class _VersionClock:
    value = 0  # the number of in-place writes so far, all tensors together


def mark_modified(*tensors: Tensor) -> None:
    """Record that the tensors' values were just changed in place (an optimizer step, a
    running statistic, an EMA, a copy into a parameter). Every in-place write the library
    makes goes through this.

    The versions come from one clock: each write advances it and stamps the tensor (its
    base, for a view) with the new time in ``_version``, and each graph node remembers
    the time it was recorded. So a tensor saved by a node was changed since exactly when
    its version is later than the node's; and while nothing was written since a node was
    recorded (the usual forward, backward, step), backward compares one integer per node.
    """
    for t in tensors:
        if t._base is not None:  # a view or detach(): the counter is its base's
            t = t._base
        _VersionClock.value += 1
        t._version = _VersionClock.value


def _saved_inputs(node):
    """The inputs whose values ``node``'s backward reads (see ``Function.saves``)."""
    saves = node.saves
    if saves is None:
        return node.inputs
    if saves == "cross":  # a binary product: each input is read for the other's gradient
        return [t for t, n in zip(node.inputs, node.needs_input_grad[::-1]) if n]
    return [node.inputs[i] for i in saves]


def _check_versions(node) -> None:
    """Refuse to run ``node``'s backward if a tensor it saved was modified in place."""
    for t in _saved_inputs(node):
        b = t if t._base is None else t._base
        if b._version > node._clock:
            what = "it" if b is t else f"the tensor of shape {b.shape} whose view it is"
            raise RuntimeError(
                f"one of the tensors needed for gradient computation has been modified by "
                f"an in-place operation: the tensor of shape {t.shape} saved by "
                f"{type(node).__name__} for backward was changed after the forward pass "
                f"({what} is at version {b._version}, later than the graph's "
                f"{node._clock}; e.g. an optimizer step). Call backward before changing "
                "it, or compute the loss again after the change.")


def _check_same_device(name, tensors):
    devices = {t.device for t in tensors}
    if len(devices) > 1:
        first = tensors[0].device
        other = next(t.device for t in tensors if t.device != first)
        raise RuntimeError(
            f"{name}: inputs are on different devices, '{first}' and '{other}'; "
            "move them to one device with .to(device)")


# --------------------------------------------------------------------------- the graph walk

def _topological_order(roots):
    """All nodes reachable from ``roots``, each after every node it consumes.

    Iterative depth-first search (no recursion, so a chain of any length works).
    """
    order, visited = [], set()
    stack = [(node, False) for node in roots]
    while stack:
        node, expanded = stack.pop()
        if expanded:
            order.append(node)
            continue
        if id(node) in visited:
            continue
        visited.add(id(node))
        if node.inputs is None:
            raise RuntimeError(
                f"trying to backward through a {type(node).__name__} node whose graph was "
                "already freed by an earlier backward(); pass retain_graph=True to the first "
                "call if you need to go through the graph twice")
        stack.append((node, True))
        for t in node.inputs:
            if t._ctx is not None and id(t._ctx) not in visited:
                stack.append((t._ctx, False))
    return order


def _default_grads(outputs, grads):
    if grads is None:
        grads = [None] * len(outputs)
    if len(grads) != len(outputs):
        raise ValueError(f"got {len(grads)} gradients for {len(outputs)} outputs")
    result = []
    for y, g in zip(outputs, grads):
        if g is None:
            if y.size != 1:
                raise RuntimeError(
                    f"backward of a non-scalar tensor (shape {y.shape}) needs its gradient: "
                    "pass grad= a tensor of the same shape (the v of the vector-Jacobian "
                    "product v^T J), e.g. grad=tinygen.ones_like(y)")
            g = Tensor(backend.get_array_module(y).ones_like(y.data))
        elif not isinstance(g, Tensor):
            g = Tensor(backend.get_array_module(y).asarray(g, dtype=y.dtype))
        if g.shape != y.shape:
            raise ValueError(f"backward: gradient of shape {g.shape} for an output of shape "
                             f"{y.shape}; they must match")
        result.append(g)
    return result


def _run_backward(outputs, grads, create_graph, retain_graph, wanted=None):
    """The backward pass shared by ``backward`` and ``grad``.

    With ``wanted`` None, accumulates into ``.grad`` of every leaf. Otherwise ``wanted``
    is a list of tensors and their gradients are returned (None where unreached), and
    ``.grad`` is left alone.
    """
    from .ops.shape import sum_to

    pending = {}      # id(node) -> gradient of the node's output, summed over consumers
    leaf_grads = {}   # id(leaf) -> gradient (only when wanted is given)
    wanted_ids = None if wanted is None else {id(t) for t in wanted}
    wanted_nodes = {} if wanted is None else {id(t._ctx): t for t in wanted if t._ctx is not None}
    results = {}

    def deliver(t, g):
        if t._ctx is not None:
            key = id(t._ctx)
            pending[key] = g if key not in pending else pending[key] + g
        elif wanted is None:
            t.grad = g if t.grad is None else t.grad + g
        elif id(t) in wanted_ids:
            leaf_grads[id(t)] = g if id(t) not in leaf_grads else leaf_grads[id(t)] + g

    roots = []
    for y, g in zip(outputs, grads):
        if not y.requires_grad:
            continue
        if y._ctx is not None:
            roots.append(y._ctx)
        with set_grad_enabled(create_graph):
            deliver(y, g if create_graph else g.detach())
    order = _topological_order(roots)

    # With specific inputs wanted, only nodes on a path to one of them need to run.
    if wanted is not None:
        useful = set()
        for node in order:  # inputs come before their consumers in `order`
            for t in node.inputs:
                if id(t) in wanted_ids or (t._ctx is not None and id(t._ctx) in useful):
                    useful.add(id(node))
                    break

    with set_grad_enabled(create_graph):
        for node in reversed(order):
            g = pending.pop(id(node), None)
            if id(node) in wanted_nodes:
                results[id(wanted_nodes[id(node)])] = g
            if g is None or (wanted is not None and id(node) not in useful):
                continue
            if create_graph and not node.differentiable_backward:
                raise RuntimeError(
                    f"{type(node).__name__} has no differentiable backward, so its gradient "
                    "cannot be differentiated again (create_graph=True)")
            if _VersionClock.value != node._clock:  # something was written since forward
                _check_versions(node)
            in_grads = node.backward(g)
            if not isinstance(in_grads, tuple):
                in_grads = (in_grads,)
            for t, gi, needs in zip(node.inputs, in_grads, node.needs_input_grad):
                if gi is None or not needs:
                    continue
                if gi.shape != t.shape:
                    gi = sum_to(gi, t.shape)  # undo broadcasting: the one place it happens
                deliver(t, gi)

    if not retain_graph:
        for node in order:  # free saved arrays and links so memory is returned at once
            node.__dict__.clear()
            node.inputs = None
    if wanted is None:
        return None
    results.update(leaf_grads)
    return [results.get(id(t)) for t in wanted]


def backward(tensors, grad_tensors=None, retain_graph=None, create_graph=False) -> None:
    """Accumulate the gradients of ``tensors`` into the ``.grad`` of the leaves.

    Equivalent to ``sum_i (tensors[i] * grad_tensors[i]).sum()`` followed by backward().
    """
    if isinstance(tensors, Tensor):
        tensors = [tensors]
        grad_tensors = None if grad_tensors is None else [grad_tensors]
    tensors = list(tensors)
    if not any(t.requires_grad for t in tensors):
        raise RuntimeError(
            "backward: the tensor does not require grad and has no graph; did you forget "
            "requires_grad=True on the inputs, or compute it under no_grad()?")
    grads = _default_grads(tensors, grad_tensors)
    if retain_graph is None:
        retain_graph = create_graph
    _run_backward(tensors, grads, create_graph, retain_graph)


def grad(outputs, inputs, grad_outputs=None, retain_graph=None, create_graph=False,
         allow_unused=False):
    """The gradients of ``outputs`` with respect to ``inputs``, like torch.autograd.grad.

    Args:
        outputs: a Tensor or sequence of Tensors y_k.
        inputs: a Tensor or sequence of Tensors x_i (leaves or intermediate results).
        grad_outputs: the vectors v_k of the vector-Jacobian product (default: ones, for
            single-element outputs).
        create_graph: record the computation, so the result can be differentiated again.
        allow_unused: return None for an input the outputs do not depend on, instead of
            raising.

    Returns:
        A tuple with, for each x_i, the Tensor sum_k v_k^T dy_k/dx_i (shape of x_i).
        ``.grad`` attributes are not touched.
    """
    outputs = [outputs] if isinstance(outputs, Tensor) else list(outputs)
    single = isinstance(inputs, Tensor)
    inputs = [inputs] if single else list(inputs)
    if isinstance(grad_outputs, Tensor):
        grad_outputs = [grad_outputs]
    for i, x in enumerate(inputs):
        if not isinstance(x, Tensor) or not x.requires_grad:
            raise RuntimeError(f"grad: input {i} does not require grad")
    if not any(y.requires_grad for y in outputs):
        raise RuntimeError("grad: no output requires grad, so there is no graph to differentiate")
    grads = _default_grads(outputs, grad_outputs)
    if retain_graph is None:
        retain_graph = create_graph
    result = _run_backward(outputs, grads, create_graph, retain_graph, wanted=inputs)
    for i, g in enumerate(result):
        if g is None and not allow_unused:
            raise RuntimeError(
                f"grad: input {i} (shape {inputs[i].shape}) is not used in computing the "
                "outputs; pass allow_unused=True to get None for it")
        if g is not None and not create_graph:
            result[i] = g.detach()
    return tuple(result)


# --------------------------------------------------------------------------- creating tensors

def tensor(data, requires_grad: bool = False, dtype=None, device: str = "cpu") -> Tensor:
    """A new leaf tensor from a number, a (nested) list, or an array.

    dtype: given, it is used. Otherwise an array keeps its dtype (a float64 NumPy array
    stays float64), Python floats and lists of them become float32, Python ints int64,
    bools bool.
    """
    device = backend.check_device(device)
    xp = backend.array_module(device)
    if isinstance(data, Tensor):
        data = data.data
    if hasattr(data, "dtype") and hasattr(data, "shape"):  # an array of either module
        arr = backend.to_device(data, device)
        arr = arr.astype(np.dtype(dtype)) if dtype is not None else arr.copy()
    elif dtype is not None:
        arr = xp.array(backend.to_device(np.array(data), device), dtype=np.dtype(dtype))
    else:
        arr = np.array(data)
        if arr.dtype == np.float64:
            arr = arr.astype(np.float32)
        elif arr.dtype.kind == "O":
            raise TypeError(f"cannot make a tensor from {type(data).__name__}: {data!r:.80}")
        arr = backend.to_device(arr, device)
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"unsupported dtype {arr.dtype}; tensors hold numbers or booleans")
    return Tensor(arr, requires_grad=requires_grad)


def as_tensor(x, like: Tensor | None = None) -> Tensor:
    """``x`` as a Tensor: Tensors pass through; a Python number takes the dtype and device
    of ``like`` (so ``x_float32 * 2.0`` stays float32); arrays keep their dtype."""
    if isinstance(x, Tensor):
        return x
    if like is not None:
        xp = backend.get_array_module(like)
        if isinstance(x, (numbers.Number, np.generic)) and not isinstance(x, (bool, np.bool_)):
            # A number (Python's or a NumPy scalar such as np.log(2)) takes the tensor's
            # dtype, as in PyTorch: a float32 tensor stays float32.
            dtype = like.dtype
            if np.issubdtype(np.asarray(x).dtype, np.floating) and not _is_float(dtype):
                dtype = np.float32
            return Tensor(xp.asarray(x, dtype=dtype))
        return Tensor(xp.asarray(x))
    if isinstance(x, numbers.Number) and not isinstance(x, np.generic):
        return tensor(x)
    return Tensor(x if hasattr(x, "dtype") else np.asarray(x))


from . import ops  # noqa: E402  (the ops build on Tensor and Function defined above)
