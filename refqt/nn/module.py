"""``Module`` and ``Parameter``: layers that hold state and find it by name.

A :class:`Module` registers what is assigned to its attributes::

    class MLP(Module):
        def __init__(self, rng):
            super().__init__()
            self.fc1 = Linear(64, 32, rng=rng)      # a sub-module
            self.fc2 = Linear(32, 10, rng=rng)
            self.scale = Parameter(np.ones(10))     # a parameter

        def forward(self, x):
            return self.fc2(self.fc1(x).relu()) * self.scale

and then knows, in assignment order, its ``named_parameters()``
(``fc1.weight``, ``fc1.bias``, ..., ``scale``), its sub-modules, and its
*buffers* -- raw arrays that are state but not parameters, such as batch
norm's running statistics, registered with :meth:`Module.register_buffer`.
``state_dict()`` copies parameters and buffers to host NumPy arrays;
``load_state_dict()`` puts them back, checking names and shapes; ``to()``
moves everything to another backend.

Registration happens in ``__setattr__`` only; attribute *reads* are plain
Python (no ``__getattr__``), so a typo is an ``AttributeError`` as usual.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np

from refqt.backend import Backend, backend_of, get_backend, is_array
from refqt.tensor import Tensor


class Parameter(Tensor):
    """A Tensor that a Module learns: ``requires_grad`` is always True.

    Parameters
    ----------
    data : array or Tensor
        The initial value (kept as is: same backend, dtype, no copy).
    name : str, optional
        A label for ``repr`` and tape listings.
    """

    def __init__(self, data: Any, name: str | None = None):
        super().__init__(data, requires_grad=True, name=name)


class Module:
    """Base class of layers and models: override ``__init__`` and ``forward``.

    Attributes
    ----------
    training : bool
        Whether the module is in training mode (see :meth:`train`, :meth:`eval`).
    """

    def __init__(self) -> None:
        # Names only, in assignment order; the values live in the instance
        # __dict__ as ordinary attributes. Dicts serve as ordered sets.
        object.__setattr__(self, "_parameter_names", {})
        object.__setattr__(self, "_module_names", {})
        object.__setattr__(self, "_buffer_names", {})
        object.__setattr__(self, "training", True)

    # -- registration ----------------------------------------------------------
    def __setattr__(self, name: str, value: Any) -> None:
        if "_parameter_names" not in self.__dict__:
            raise AttributeError(
                f"cannot assign {name!r} before Module.__init__() ran; call super().__init__() first "
                f"in {type(self).__name__}.__init__"
            )
        self._parameter_names.pop(name, None)
        self._module_names.pop(name, None)
        if isinstance(value, Parameter):
            self._parameter_names[name] = None
        elif isinstance(value, Module):
            self._module_names[name] = None
        elif name in self._buffer_names and value is not None and not is_array(value):
            raise TypeError(f"{type(self).__name__}.{name} is a buffer and must be an array")
        object.__setattr__(self, name, value)

    def register_buffer(self, name: str, array: Any) -> None:
        """Store ``array`` as attribute ``name``, part of the state but not learned."""
        self._buffer_names[name] = None
        setattr(self, name, array)

    # -- running -----------------------------------------------------------------
    def forward(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__} does not define forward()")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.forward(*args, **kwargs)

    def train(self, mode: bool = True) -> Module:
        """Set training mode on this module and every sub-module; return self."""
        for m in self.modules():
            object.__setattr__(m, "training", mode)
        return self

    def eval(self) -> Module:
        """Evaluation mode (``train(False)``): dropout off, batch norm uses running stats."""
        return self.train(False)

    def zero_grad(self) -> None:
        """Forget the gradients of all parameters (set ``.grad`` to None)."""
        for p in self.parameters():
            p.grad = None

    # -- walking the tree ----------------------------------------------------------
    def named_children(self) -> Iterator[tuple[str, Module]]:
        """Direct sub-modules, in assignment order."""
        for name in self._module_names:
            yield name, getattr(self, name)

    def children(self) -> Iterator[Module]:
        for _, m in self.named_children():
            yield m

    def named_modules(self, prefix: str = "") -> Iterator[tuple[str, Module]]:
        """This module (named ``prefix``) and all below it, depth first, dotted names."""
        yield prefix, self
        for name, child in self.named_children():
            yield from child.named_modules(f"{prefix}.{name}" if prefix else name)

    def modules(self) -> Iterator[Module]:
        for _, m in self.named_modules():
            yield m

    def named_parameters(self, prefix: str = "") -> Iterator[tuple[str, Parameter]]:
        """Every parameter with its dotted path (``"encoder.0.weight"``); each only once.

        Order: a module's own parameters (in assignment order), then those of
        its sub-modules, depth first -- the same order as PyTorch.
        """
        seen: set[int] = set()
        for mod_name, m in self.named_modules(prefix):
            for name in m._parameter_names:
                p = getattr(m, name)
                if id(p) not in seen:
                    seen.add(id(p))
                    yield (f"{mod_name}.{name}" if mod_name else name), p

    def parameters(self) -> Iterator[Parameter]:
        for _, p in self.named_parameters():
            yield p

    def named_buffers(self, prefix: str = "") -> Iterator[tuple[str, Any]]:
        """Every buffer (raw array) with its dotted path; None-valued buffers are skipped."""
        for mod_name, m in self.named_modules(prefix):
            for name in m._buffer_names:
                b = getattr(m, name)
                if b is not None:
                    yield (f"{mod_name}.{name}" if mod_name else name), b

    # -- state -----------------------------------------------------------------------
    def state_dict(self) -> dict[str, np.ndarray]:
        """Parameters then buffers, by dotted name, as host NumPy copies."""
        state = {}
        for name, p in self.named_parameters():
            state[name] = np.array(p.numpy(), copy=True)
        for name, b in self.named_buffers():
            state[name] = np.array(backend_of(b).to_numpy(b), copy=True)
        return state

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Copy ``state`` (from :meth:`state_dict`) into the parameters and buffers.

        Values are converted to each parameter's backend and dtype.

        Raises
        ------
        KeyError
            When names are missing or unexpected (all of them are listed).
        ValueError
            When a shape differs.
        """
        targets = self._state_targets()
        missing = [k for k in targets if k not in state]
        unexpected = [k for k in state if k not in targets]
        if missing or unexpected:
            raise KeyError(
                f"{type(self).__name__}.load_state_dict: missing keys {missing}, unexpected keys {unexpected}"
            )
        for key, (owner, attr) in targets.items():
            value = np.asarray(state[key])
            current = getattr(owner, attr)
            shape = tuple(current.shape)
            if value.shape != shape:
                raise ValueError(
                    f"{type(self).__name__}.load_state_dict: {key!r} has shape {value.shape} in the "
                    f"state but {shape} in the model"
                )
        for key, (owner, attr) in targets.items():
            current = getattr(owner, attr)
            if isinstance(current, Tensor):
                current.data = current.backend.asarray(np.asarray(state[key]), dtype=current.dtype)
            else:
                b = backend_of(current)
                setattr(owner, attr, b.asarray(np.asarray(state[key]), dtype=current.dtype))

    def _state_targets(self) -> dict[str, tuple[Module, str]]:
        """Dotted state name -> (module that holds it, attribute name)."""
        targets: dict[str, tuple[Module, str]] = {}
        seen: set[int] = set()
        for mod_name, m in self.named_modules():
            for name in m._parameter_names:
                if id(getattr(m, name)) not in seen:
                    seen.add(id(getattr(m, name)))
                    targets[f"{mod_name}.{name}" if mod_name else name] = (m, name)
        for mod_name, m in self.named_modules():
            for name in m._buffer_names:
                if getattr(m, name) is not None:
                    targets[f"{mod_name}.{name}" if mod_name else name] = (m, name)
        return targets

    def to(self, backend: Backend | str) -> Module:
        """Move every parameter and buffer to ``backend`` (a Backend or its name); return self.

        Parameters keep their identity (their ``.data`` is replaced), so an
        optimizer built before the move still holds them; gradients are dropped.
        Optimizer state (momentum, Adam moments) is *not* moved: move the model
        before the first ``step()``, or save and reload the optimizer state.
        """
        target = get_backend(backend) if isinstance(backend, str) else backend
        for p in self.parameters():
            p.data = target.asarray(p.numpy())
            p.grad = None
        for m in self.modules():
            for name in m._buffer_names:
                b = getattr(m, name)
                if b is not None:
                    setattr(m, name, target.asarray(backend_of(b).to_numpy(b)))
        return self

    # -- printing --------------------------------------------------------------------
    def extra_repr(self) -> str:
        """The layer's settings for ``repr`` (override in layers)."""
        return ""

    def __repr__(self) -> str:
        children = list(self.named_children())
        if not children:
            return f"{type(self).__name__}({self.extra_repr()})"
        lines = [f"{type(self).__name__}({self.extra_repr()}"]
        for name, child in children:
            body = repr(child).replace("\n", "\n  ")
            lines.append(f"  ({name}): {body}")
        lines.append(")")
        return "\n".join(lines)
