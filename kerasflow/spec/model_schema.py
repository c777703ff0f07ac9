"""The `model` section: a DAG of nodes (or a `sequential:` chain) whose node
types come from the layer/block registry."""

from pydantic import Field, model_validator

from kerasflow.spec.auto import AutoSpec
from kerasflow.spec.base import SpecModel, lazy
from kerasflow.spec.registry import Node, NodeChoice, NodeSpec


class ModelSpec(SpecModel):
    """The architecture: named inputs (features), a graph of nodes, named outputs."""

    inputs: list[str] | None = Field(None, description="Features the model reads (default: every feature).")
    nodes: dict[str, Node] | None = Field(None, description="Graph nodes by name; each names its input(s).")
    sequential: list[Node] | None = Field(None, description="A chain of nodes, each reading the previous one.")
    outputs: dict[str, str] | str | None = Field(
        None, description="Target name -> node name (a single node name for one target; default: last node)."
    )
    auto: lazy(AutoSpec) | None = Field(
        None, description="A model chosen from the feature and target types (expanded into `nodes` at validation).")
    imports: list[str] = Field(
        default_factory=list, description="Python modules registering custom layers or blocks. Importing runs "
        "their code, so it needs --allow-imports (or KERASFLOW_ALLOW_IMPORTS=1); without it `validate` checks "
        "everything else and lists the nodes it could not check, and the verbs that build a model refuse."
    )

    @model_validator(mode="after")
    def _one_form(self):
        given = [key for key in ("nodes", "sequential", "auto") if getattr(self, key) is not None]
        if len(given) != 1:
            raise ValueError("expected exactly one of `nodes`, `sequential` or `auto`, received "
                             + (" and ".join(f"`{k}`" for k in given) if given else "none"))
        return self

    def graph(self, default_input: str | None = None) -> dict[str, NodeSpec]:
        """The node dict, with `sequential:` expanded into a chain named `<type>_<i>`
        and `repeat` blocks into their repetitions (see `Repeat`)."""
        return _expand_repeats(self._graph(default_input))

    def _graph(self, default_input: str | None) -> dict[str, NodeSpec]:
        if self.nodes is not None:
            return dict(self.nodes)
        out: dict[str, NodeSpec] = {}
        prev = default_input
        for i, node in enumerate(self.sequential or []):
            if isinstance(node, NodeChoice):
                name = f"choice_{i}"
                if prev is not None:  # each alternative reads the previous node, unless it says otherwise
                    node = node.model_copy(update={"values": [_reading(v, prev) for v in node.values]})
            else:
                name = node.name or f"{getattr(node, 'layer', None) or getattr(node, 'block')}_{i}"
                if prev is not None:
                    node = _reading(node, prev)
            out[name] = node
            prev = name
        return out


def repetition_name(name: str, index: int) -> str:
    """Graph name of repetition `index` of repeat node `name` (all but the last)."""
    return f"{name}_{index}"


def _expand_repeats(graph: dict[str, NodeSpec]) -> dict[str, NodeSpec]:
    """Each `repeat` node becomes its chain `<name>_0`, ..., `<name>_<n-2>`, `<name>` in its place."""
    out: dict[str, NodeSpec] = {}
    for name, node in graph.items():
        repetitions = node.repetitions() if getattr(node, "block", None) == "repeat" else None
        if not repetitions:
            out[name] = node
            continue
        previous = node.input if node.input is not None else node.inputs
        for i, item in enumerate(repetitions):
            item_name = name if i == len(repetitions) - 1 else repetition_name(name, i)
            out[item_name] = item.model_copy(update={"input": previous}) if previous is not None else item
            previous = item_name
    return out


def _reading(node: NodeSpec, prev: str) -> NodeSpec:
    if node.input is None and node.inputs is None:
        return node.model_copy(update={"input": prev})
    return node
