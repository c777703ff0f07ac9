"""The one registry of layer and block types.

A type is registered once, by decorating its parameter schema (a pydantic
model, no TensorFlow import). The registry drives the spec schema (and so the
JSON Schema), validation messages ("did you mean ...?") and the builder, which
resolves `target` lazily: for layers a `keras.layers` class name, for blocks a
`module:function` path.

A node is validated by looking its type up here at validation time (`Node`),
so only the schemas a spec uses are built, and a type registered later (by a
spec's `model.imports`) is accepted without rebuilding any schema.
"""

import importlib
from dataclasses import dataclass
from typing import Annotated, Any, Callable, Literal, Union

from pydantic import ConfigDict, Field, GetCoreSchemaHandler, GetJsonSchemaHandler, TypeAdapter, ValidationInfo
from pydantic_core import PydanticCustomError, core_schema

from kerasflow.spec.base import SpecModel, TuneChoice, is_marker

Kind = Literal["layer", "block"]


class NodeSpec(SpecModel):
    """Fields shared by every node of the model graph."""

    input: str | list[str] | None = Field(
        None, description="Name of the input feature or node this node reads (a list for merge layers)."
    )
    inputs: list[str] | None = Field(None, description="Alias of `input` for several inputs.")
    name: str | None = Field(None, description="Node name (only inside `sequential:`; graph nodes are named by their key).")
    trainable: bool = Field(True, description="False freezes this node's weights.")

    def input_names(self) -> list[str]:
        """Names of the graph nodes or features this node reads, in order."""
        src = self.input if self.input is not None else self.inputs
        if src is None:
            return []
        return [src] if isinstance(src, str) else list(src)

    def references(self) -> list[tuple[str, str]]:
        """(field, referenced name) pairs; subclasses with extra reference fields extend this."""
        field = "input" if self.input is not None else "inputs"
        names = self.input_names()
        if isinstance(self.input, str):
            return [(field, names[0])]
        return [(f"{field}[{i}]", n) for i, n in enumerate(names)]

    def params(self) -> dict[str, Any]:
        """Constructor arguments: every field except graph wiring and the type key."""
        skip = {"input", "inputs", "name", "layer", "block"}
        return {k: v for k, v in self.model_dump().items() if k not in skip}


class LayerNode(NodeSpec):
    layer: str = Field(description="Registered layer type.")


class BlockNode(NodeSpec):
    block: str = Field(description="Registered block type (expands to several layers).")


@dataclass(frozen=True)
class Entry:
    name: str
    kind: Kind
    params: type[NodeSpec]
    target: str
    doc: str

    def resolve(self) -> Any:
        """The Keras class (layers) or build function (blocks); imports Keras."""
        if self.kind == "layer" and ":" not in self.target:
            import keras

            return getattr(keras.layers, self.target)
        module, _, attr = self.target.partition(":")
        return getattr(importlib.import_module(module), attr)


LAYERS: dict[str, Entry] = {}
BLOCKS: dict[str, Entry] = {}


def _register(table: dict[str, Entry], kind: Kind, base: type, name: str, target: str) -> Callable:
    def decorate(cls: type[NodeSpec]) -> type[NodeSpec]:
        if not issubclass(cls, base):
            raise TypeError(f"{cls.__name__} must subclass {base.__name__} to be a {kind}")
        if name in table:
            raise ValueError(f"{kind} {name!r} is already registered by {table[name].params.__name__}")
        doc = (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else ""
        table[name] = Entry(name=name, kind=kind, params=cls, target=target, doc=doc)
        return cls

    return decorate


def register_layer(name: str, target: str) -> Callable:
    """Register a layer schema; `target` is a `keras.layers` class name or `module:callable`."""
    return _register(LAYERS, "layer", LayerNode, name, target)


def register_block(name: str, target: str) -> Callable:
    """Register a block schema; `target` is `module:function(node, inputs, name) -> tensor`."""
    return _register(BLOCKS, "block", BlockNode, name, target)


# Most used first: a lookup imports these in order until the name is registered.
SCHEMA_MODULES = tuple(f"kerasflow.spec.nodes.{m}" for m in (
    "layers", "blocks", "convolution", "recurrent", "merging", "preprocessing", "backbones", "hub"))


def load_all() -> tuple[dict[str, Entry], dict[str, Entry]]:
    """Import the modules that register types (TF-free) and return the tables."""
    for module in SCHEMA_MODULES:
        importlib.import_module(module)
    return LAYERS, BLOCKS


# ---------------------------------------------------------------- node validation

UNKNOWN_NODE = "unknown_layer"  # error type the spec's error translation explains


def node_entry(value: Any) -> Entry | None:
    """The registry entry a raw node mapping names (`layer:` or `block:`), or None."""
    if not isinstance(value, dict):
        return None
    for kind, table in (("layer", LAYERS), ("block", BLOCKS)):
        if kind in value:
            name = value[kind]
            if not isinstance(name, str):
                return None
            for module in SCHEMA_MODULES:
                if name in table:
                    break
                importlib.import_module(module)
            return table.get(name)
    return None


class UncheckedNode(NodeSpec):
    """A node of a type no module registered, kept (wiring checked, parameters
    not) because the spec's `model.imports` may register it and were not
    imported: validation then checks everything else without running them."""

    model_config = ConfigDict(extra="allow")
    layer: str | None = None
    block: str | None = None


UNCHECKED_TYPES = "unchecked_types"  # validation context key: keep unknown types as UncheckedNode


def validate_node(value: Any, info: ValidationInfo) -> Any:
    """Validate one raw node against the schema of the type it names (or a
    `tune: choice` between whole nodes)."""
    if isinstance(value, (NodeSpec, NodeChoice)):
        return value
    if is_marker(value):
        if value.get("tune") != "choice":
            raise PydanticCustomError("node_marker", "a whole node is tuned with `tune: choice` over nodes, "
                                      "received `tune: {kind}`", {"kind": str(value.get("tune"))})
        return NodeChoice.model_validate(value, context=info.context)
    entry = node_entry(value)
    if entry is None:
        context = info.context if isinstance(info.context, dict) else {}
        kind = next((k for k in ("layer", "block") if isinstance(value, dict) and isinstance(value.get(k), str)), None)
        if context.get(UNCHECKED_TYPES) and kind is not None:
            return UncheckedNode.model_validate(value, context=info.context)
        raise PydanticCustomError(UNKNOWN_NODE, "unknown node type")
    # A ValidationError raised here keeps its errors, located under this node.
    return entry.params.model_validate(value, context=info.context)


class _NodeByType:
    """Pydantic hook: validate with `validate_node`; describe (JSON Schema) as
    any registered node type."""

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> core_schema.CoreSchema:
        return core_schema.with_info_plain_validator_function(validate_node)

    def __get_pydantic_json_schema__(self, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler) -> dict:
        if _describing:  # a node inside a node's schema (residual chains, choices): stop the recursion there
            return {"type": "object", "description": "A node: {layer: ...}, {block: ...} or {tune: choice, ...}."}
        layers, blocks = load_all()
        members = [e.params for e in layers.values()] + [e.params for e in blocks.values()] + [NodeChoice]
        _describing.append(True)
        try:
            return handler(TypeAdapter(Union[tuple(members)]).core_schema)
        finally:
            _describing.pop()


_describing: list[bool] = []


Node = Annotated[NodeSpec, _NodeByType()]
"""A graph node of any registered layer or block type."""


def node_adapter() -> TypeAdapter:
    """Validates one raw node dict (e.g. a block's generated nodes)."""
    return TypeAdapter(Node)


class NodeChoice(TuneChoice):
    """`tune: choice` between whole nodes (layers or blocks): the search picks
    one; markers inside an alternative are searched only while it is chosen."""

    values: list[Node] = Field(min_length=1, description="The alternatives, each a full node with its own `input`.")
    default: Node | None = Field(None, description="The alternative tried first (default: the first).")

    def input_names(self) -> list[str]:
        """Every name some alternative reads, in order."""
        return list(dict.fromkeys(n for node in self.values for n in node.input_names()))

    def references(self) -> list[tuple[str, str]]:
        return [(f"values[{i}].{field}", ref) for i, node in enumerate(self.values) for field, ref in node.references()]


def alternatives(node: Any) -> list:
    """The nodes a graph node may be: itself, or each value of a node choice."""
    return list(node.values) if isinstance(node, NodeChoice) else [node]
