"""The `model` section: a DAG of nodes (or a `sequential:` chain) whose node
types come from the layer/block registry."""

from __future__ import annotations

import functools
import importlib
from typing import Annotated, Any, Union

from pydantic import Discriminator, Field, Tag, model_validator

from kerasflow.model.registry import NodeSpec, load_all
from kerasflow.spec.base import TAG_PREFIX, SpecModel

LAYER_TAG = TAG_PREFIX + "layer:"
BLOCK_TAG = TAG_PREFIX + "block:"
UNKNOWN_LAYER = "unknown_layer"


def _node_tag(value: Any) -> str | None:
    if isinstance(value, dict):
        if "layer" in value:
            return LAYER_TAG + str(value["layer"])
        if "block" in value:
            return BLOCK_TAG + str(value["block"])
        return None
    if isinstance(value, NodeSpec):
        kind = "layer" if hasattr(value, "layer") else "block"
        return (LAYER_TAG if kind == "layer" else BLOCK_TAG) + getattr(value, kind)
    return None


@functools.lru_cache(maxsize=1)
def node_type() -> Any:
    """The discriminated union of every registered layer and block schema."""
    layers, blocks = load_all()
    members = [Annotated[e.params, Tag(LAYER_TAG + n)] for n, e in layers.items()]
    members += [Annotated[e.params, Tag(BLOCK_TAG + n)] for n, e in blocks.items()]
    return Annotated[
        Union[tuple(members)],
        Discriminator(
            _node_tag,
            custom_error_type=UNKNOWN_LAYER,
            custom_error_message="unknown node type",
        ),
    ]


Node = node_type()


def use_imports(modules: list, locs: dict | None = None) -> None:
    """Import a spec's `model.imports` (the only code a spec can bring in) and,
    if they registered new layer or block types, rebuild the node union so
    validation accepts them."""
    from kerasflow.model.registry import BLOCKS, LAYERS
    from kerasflow.spec.errors import Problem, SpecError, join_path

    before = (len(LAYERS), len(BLOCKS))
    problems = []
    for i, module in enumerate(modules):
        if not isinstance(module, str):
            continue  # the schema reports the wrong type
        try:
            importlib.import_module(module)
        except Exception as exc:  # the user's module may fail in any way: report where it was named
            from kerasflow.spec.schema import locate

            path = ("model", "imports", i)
            problems.append(Problem(path=join_path(path), message=f"cannot import `{module}`: {exc}",
                                    hint="install the module or add its directory to PYTHONPATH",
                                    location=locate(locs or {}, path)))
    if problems:
        raise SpecError(problems)
    if (len(LAYERS), len(BLOCKS)) != before:
        global Node
        node_type.cache_clear()
        Node = node_type()
        from kerasflow.spec.schema import Spec

        ModelSpec.model_fields["nodes"].annotation = dict[str, Node] | None
        ModelSpec.model_fields["sequential"].annotation = list[Node] | None
        ModelSpec.model_rebuild(force=True)
        Spec.model_rebuild(force=True)


class ModelSpec(SpecModel):
    """The architecture: named inputs (features), a graph of nodes, named outputs."""

    inputs: list[str] | None = Field(None, description="Features the model reads (default: every feature).")
    nodes: dict[str, Node] | None = Field(None, description="Graph nodes by name; each names its input(s).")
    sequential: list[Node] | None = Field(None, description="A chain of nodes, each reading the previous one.")
    outputs: dict[str, str] | str | None = Field(
        None, description="Target name -> node name (a single node name for one target; default: last node)."
    )
    imports: list[str] = Field(
        default_factory=list, description="Python modules with custom registered layers (opt-in; nothing else is imported)."
    )

    @model_validator(mode="after")
    def _one_form(self):
        if (self.nodes is None) == (self.sequential is None):
            raise ValueError("expected exactly one of `nodes` or `sequential`, received "
                             + ("both" if self.nodes is not None else "neither"))
        return self

    def graph(self, default_input: str | None = None) -> dict[str, NodeSpec]:
        """The node dict, with `sequential:` expanded into a chain named `<type>_<i>`."""
        if self.nodes is not None:
            return dict(self.nodes)
        out: dict[str, NodeSpec] = {}
        prev = default_input
        for i, node in enumerate(self.sequential or []):
            kind = getattr(node, "layer", None) or getattr(node, "block")
            name = node.name or f"{kind}_{i}"
            if node.input is None and node.inputs is None and prev is not None:
                node = node.model_copy(update={"input": prev})
            out[name] = node
            prev = name
        return out
