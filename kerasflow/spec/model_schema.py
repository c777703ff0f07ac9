"""The `model` section: a DAG of nodes (or a `sequential:` chain) whose node
types come from the layer/block registry."""

from pydantic import Field, model_validator

from kerasflow.spec.auto import AutoSpec
from kerasflow.spec.base import SpecModel
from kerasflow.spec.registry import Node, NodeSpec


class ModelSpec(SpecModel):
    """The architecture: named inputs (features), a graph of nodes, named outputs."""

    inputs: list[str] | None = Field(None, description="Features the model reads (default: every feature).")
    nodes: dict[str, Node] | None = Field(None, description="Graph nodes by name; each names its input(s).")
    sequential: list[Node] | None = Field(None, description="A chain of nodes, each reading the previous one.")
    outputs: dict[str, str] | str | None = Field(
        None, description="Target name -> node name (a single node name for one target; default: last node)."
    )
    auto: AutoSpec | None = Field(
        None, description="A model chosen from the feature and target types (expanded into `nodes` at validation).")
    imports: list[str] = Field(
        default_factory=list, description="Python modules with custom registered layers (opt-in; nothing else is imported)."
    )

    @model_validator(mode="after")
    def _one_form(self):
        given = [key for key in ("nodes", "sequential", "auto") if getattr(self, key) is not None]
        if len(given) != 1:
            raise ValueError("expected exactly one of `nodes`, `sequential` or `auto`, received "
                             + (" and ".join(f"`{k}`" for k in given) if given else "none"))
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
