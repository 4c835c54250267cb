"""What the codec's code generators share: compiling their source, and making entities.

eventstore/kafka/codec/fastbuild.py, fastwrite.py and fastread.py each generate, once per
kio schema class, one Python function per entity class it holds, and compile them
together in one namespace; the values the functions need (struct packers, classes,
defaults) are put in that namespace as constants.
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any


class Generator:
    """Source of one function per entity class, compiled together."""

    prefix = "_f"  # of the functions' names

    def __init__(self, namespace: dict[str, Any]) -> None:
        self.namespace = {"_new": object.__new__, **namespace}
        self.names: dict[type, str] = {}
        self.sources: list[str] = []

    def compiled(self, entity_type: type) -> Any:
        """The function of ``entity_type``, all sources compiled."""
        name = self.function(entity_type)
        exec("\n\n".join(self.sources), self.namespace)  # noqa: S102 - our own source
        return self.namespace[name]

    def function(self, entity_type: type) -> str:
        """The name of ``entity_type``'s function, its source generated once."""
        name = self.names.get(entity_type)
        if name is None:
            name = self.names[entity_type] = f"{self.prefix}{len(self.names)}"
            self.sources.append(f"def {name}{self.source(entity_type)}")
        return name

    def source(self, entity_type: type) -> str:
        """The function's parameters and body (after ``def name``)."""
        raise NotImplementedError

    def constant(self, value: Any) -> str:
        """A name for ``value`` in the generated code."""
        name = f"_c{len(self.namespace)}"
        self.namespace[name] = value
        return name

    def construction(self, entity_type: type, values: list[str], indent: str) -> list[str]:
        """Lines setting ``o`` to an entity of ``entity_type`` from the expressions
        ``values`` (one a field, in order). kio's classes are frozen dataclasses with
        slots and no ``__post_init__``: their slots are set directly, which is what their
        ``__init__`` does through a slower ``object.__setattr__`` per field. Any other
        class is called."""
        names = [field.name for field in fields(entity_type)]
        cls = self.constant(entity_type)
        slots = getattr(entity_type, "__slots__", ())
        if hasattr(entity_type, "__post_init__") or sorted(slots) != sorted(names):
            arguments = ", ".join(f"{name}={value}"
                                  for name, value in zip(names, values, strict=True))
            return [f"{indent}o = {cls}({arguments})"]
        lines = [f"{indent}o = _new({cls})"]
        for name, value in zip(names, values, strict=True):
            lines.append(f"{indent}{self.constant(entity_type.__dict__[name].__set__)}"
                         f"(o, {value})")
        return lines
