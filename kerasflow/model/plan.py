"""`kerasflow plan`: build the model from the spec alone (no data, no stats)
and describe it: Keras' summary, per-node output shapes, parameter memory and
the time of one synthetic forward/backward step."""

from __future__ import annotations

import re
import shutil
import time

_ANSI = re.compile(r"\x1b\[[0-9;]*m")
PLOT_HELP = "install them with `pip install pydot` (or `pip install kerasflow[plot]`) and `apt-get install graphviz`"


def plan_model(loaded_spec, plot: str | None = None) -> str:
    """Describe the model of a `LoadedSpec` as text; draw it to `plot` if given.

    `{tune: ...}` markers are replaced by their defaults (KerasTuner's rule:
    the marker's `default`, else min / the first choice / false) and listed.
    """
    from kerasflow.model.builder import build_graph, node_layers
    from kerasflow.spec import search_space
    from kerasflow.spec.loader import load_spec_dict

    chosen = search_space.defaults(loaded_spec.raw)
    spec = loaded_spec.spec
    if chosen:
        spec = load_spec_dict(search_space.substitute(loaded_spec.raw, {}), loaded_spec.locs).spec
    built = build_graph(spec, None, locs=loaded_spec.locs)
    model = built.model

    out = [f"Model `{spec.name}` (seed {spec.seed})"]
    if chosen:
        out.append("tune markers set to their defaults for this plan:")
        out += [f"  {path} = {value!r}" for path, value in chosen.items()]
    out += ["", summary_text(model, expand_nested=True).rstrip(), "", "Nodes:"]
    out += _node_table(built, lambda name: sum(layer.count_params() for layer in node_layers(model, name)))
    learned = _learned_widths(spec)
    if learned:
        out.append("note: parameter counts after " + ", ".join(learned) + " depend on vocabularies learned from the "
                   "data; without data this plan uses placeholders of the declared max_tokens (declare a "
                   "`vocabulary` for exact counts)")
    unused = [n for n in built.tensors if not node_layers(model, n)]
    if unused:
        out.append("note: not used by any output (left out of the model): " + ", ".join(unused))
    out += ["", _memory(model), _timing(model, spec)]
    if plot:
        out.append(_plot(model, plot))
    return "\n".join(out) + "\n"


def summary_text(model, line_length: int = 140, **kwargs) -> str:
    """Keras' `model.summary()` as plain text, `line_length` wide.

    Keras prints through a rich console sized to the terminal, 80 columns when
    output is piped or written to a file, which crops its own table (the
    "Param #" and "Connected to" columns vanish); rich reads COLUMNS instead.
    """
    import os

    lines: list[str] = []
    saved = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = str(line_length)
    try:
        model.summary(print_fn=lambda text, **_: lines.append(_ANSI.sub("", text)), line_length=line_length, **kwargs)
    finally:
        if saved is None:
            os.environ.pop("COLUMNS", None)
        else:
            os.environ["COLUMNS"] = saved
    return "\n".join(lines)


def _node_table(built, params_of) -> list[str]:
    rows = [("node", "type", "output shape", "params", "spec path")]
    for name, tensor in built.tensors.items():
        rows.append((name, built.kinds[name], str(tuple(tensor.shape)), f"{params_of(name):,}", built.paths[name]))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return ["  " + "  ".join(c.ljust(w) if i != 3 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))).rstrip()
            for r in rows]


def _size(nbytes: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if nbytes < 1024 or unit == "GB":
            return f"{nbytes:.2f} {unit}" if unit != "B" else f"{int(nbytes)} B"
        nbytes /= 1024
    return ""


def _bytes(variables) -> int:
    import numpy as np

    return sum(int(np.prod(v.shape)) * np.dtype(v.dtype).itemsize for v in variables)


def _memory(model) -> str:
    trainable, frozen = _bytes(model.trainable_weights), _bytes(model.non_trainable_weights)
    return (f"Parameter memory: {_size(trainable + frozen)} ({_size(trainable)} trainable, {_size(frozen)} "
            f"non-trainable); training with Adam adds two slots per trainable weight: ~{_size(3 * trainable + frozen)}")


def _synthetic_batch(model, spec, batch: int) -> dict:
    import numpy as np

    rng = np.random.default_rng(spec.seed)
    words = ["alpha", "beta", "gamma", "delta", "kappa", "sigma", "omega"]
    data = {}
    for tensor in model.inputs:
        name = tensor.name
        shape = (batch,) + tuple(d if d is not None else 8 for d in tensor.shape[1:])
        dtype = str(tensor.dtype)
        feature = spec.data.features.get(name)
        vocabulary = _lookup_vocabulary(model, name)
        if vocabulary:  # in-vocabulary values: with num_oov_indices 0 an unknown one is an error
            data[name] = np.array(rng.choice(np.array(vocabulary, dtype=object), size=shape)).astype(
                object if dtype == "string" else dtype)
        elif dtype == "string":
            flat = [" ".join(rng.choice(words, size=rng.integers(1, 6))) for _ in range(int(np.prod(shape)))]
            data[name] = np.array(flat, dtype=object).reshape(shape)
        elif dtype.startswith(("int", "uint")):
            high = getattr(feature, "vocab_size", None) or 2
            data[name] = rng.integers(0, high, size=shape).astype(dtype)
        elif dtype == "bool":
            data[name] = rng.random(shape) < 0.5
        else:
            data[name] = rng.random(shape).astype(dtype)
    return data


def _lookup_vocabulary(model, feature: str) -> list:
    """The vocabulary (without OOV tokens) of a category feature's lookup layer, if it has one."""
    layer = next((layer for layer in model.layers if layer.name == f"{feature}_lookup"), None)
    if layer is None or not hasattr(layer, "get_vocabulary"):
        return []
    return layer.get_vocabulary()[layer.num_oov_indices + (1 if layer.mask_token is not None else 0):]


_TIMED_BATCH = 8


def _learned_widths(spec) -> list[str]:
    """Features whose encoded width (and so the next layer's parameters) comes from the data."""
    names = spec.model.inputs if spec.model.inputs is not None else list(spec.data.features)
    return [n for n in names if spec.data.features[n].type in ("category", "text")
            and getattr(spec.data.features[n], "vocabulary", None) is None]


def _timing(model, spec) -> str:
    import keras
    import tensorflow as tf

    batch = spec.data.batch_size if isinstance(spec.data.batch_size, int) else 32
    timed = min(batch, _TIMED_BATCH)  # a big model's full batch can take minutes on a CPU
    try:
        data = _synthetic_batch(model, spec, timed)

        @tf.function  # as in fit(): the first call traces, later ones run the graph
        def step(inputs):
            with tf.GradientTape() as tape:
                outputs = keras.tree.flatten(model(inputs, training=True))
                loss = tf.add_n([tf.reduce_mean(tf.cast(o, "float32")) for o in outputs if o.dtype.is_floating]
                                or [tf.constant(0.0)])
            return tape.gradient(loss, model.trainable_variables) if model.trainable_variables else loss

        first, second = _clock(step, data), _clock(step, data)
    except Exception as exc:  # e.g. lookup layers without a vocabulary: the plan still prints
        message = _ANSI.sub("", str(exc)).strip().splitlines()
        return f"Synthetic step: failed ({type(exc).__name__}: {message[0] if message else ''})"
    if timed == batch:
        return (f"Synthetic forward+backward step (batch {batch}, random inputs): "
                f"{first:.1f} ms first (includes tracing), {second:.1f} ms next")
    return (f"Synthetic forward+backward step (random inputs): {second:.1f} ms at batch {timed} "
            f"({first:.1f} ms first, includes tracing); about {second * batch / timed:.0f} ms at batch {batch} "
            "(scaled linearly: an estimate)")


def _clock(step, data) -> float:
    import tensorflow as tf

    start = time.perf_counter()
    tf.nest.map_structure(lambda t: t.numpy() if hasattr(t, "numpy") else t, step(data))  # wait for the result
    return (time.perf_counter() - start) * 1000


def _plot(model, path: str) -> str:
    import importlib.util

    if importlib.util.find_spec("pydot") is None or shutil.which("dot") is None:
        missing = [name for name, ok in (("pydot", importlib.util.find_spec("pydot") is not None),
                                         ("graphviz", shutil.which("dot") is not None)) if not ok]
        return f"Plot skipped: {' and '.join(missing)} not found; {PLOT_HELP}"
    import keras

    keras.utils.plot_model(model, to_file=path, show_shapes=True, show_layer_names=True, expand_nested=True)
    return f"Plot written to {path}"
