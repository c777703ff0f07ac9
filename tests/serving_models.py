"""Small real models for the export and serving tests, following the model
conventions (one named `keras.Input` per raw feature, preprocessing inside the
model, a dict of outputs keyed by target name)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

DIGIT_NAMES = [str(i) for i in range(10)]
DIGITS_TARGETS = {"label": {"type": "category", "class_names": DIGIT_NAMES}}
COLORS = ["red", "green", "blue"]
SHOP_TARGETS = {"good": {"type": "binary", "class_names": ["no", "yes"]}, "price": {"type": "numeric"}}


@dataclass
class Trained:
    model: object
    x_train: dict
    x_test: dict
    y_test: np.ndarray


def train_digits(epochs: int = 10) -> Trained:
    """MLP on sklearn digits: raw pixel values 0..16 in, `label` probabilities out."""
    import keras
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    keras.utils.set_random_seed(0)
    x, y = load_digits(return_X_y=True)
    x_tr, x_te, y_tr, y_te = train_test_split(x.astype("float32"), y, test_size=0.2, random_state=0, stratify=y)
    pixels = keras.Input(shape=(64,), name="pixels")
    h = keras.layers.Rescaling(1 / 16)(pixels)
    h = keras.layers.Dense(64, activation="relu")(h)
    label = keras.layers.Dense(10, activation="softmax", name="label")(h)
    model = keras.Model({"pixels": pixels}, {"label": label})
    model.compile(keras.optimizers.Adam(0.01), {"label": "sparse_categorical_crossentropy"})
    model.fit({"pixels": x_tr}, {"label": y_tr}, epochs=epochs, batch_size=64, verbose=0)
    return Trained(model, {"pixels": x_tr}, {"pixels": x_te}, y_te)


def train_shop(epochs: int = 25) -> Trained:
    """A string `color` (StringLookup inside the model) and a numeric `size`;
    binary `good` (red is good) and numeric `price` (3 * size) targets."""
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    n = 400
    colors = rng.choice(COLORS, size=n)
    sizes = rng.uniform(0, 1, size=n).astype("float32")
    color = keras.Input(shape=(1,), dtype="string", name="color")
    size = keras.Input(shape=(1,), name="size")
    onehot = keras.layers.Reshape((len(COLORS) + 1,))(
        keras.layers.StringLookup(vocabulary=COLORS, output_mode="one_hot")(color))
    h = keras.layers.Concatenate()([onehot, size])
    good = keras.layers.Dense(1, activation="sigmoid", name="good")(h)
    price = keras.layers.Dense(1, name="price")(h)
    model = keras.Model({"color": color, "size": size}, {"good": good, "price": price})
    model.compile(keras.optimizers.Adam(0.05), {"good": "binary_crossentropy", "price": "mse"})
    x = {"color": colors.astype(object)[:, None], "size": sizes[:, None]}
    y = {"good": (colors == "red").astype("float32")[:, None], "price": 3 * sizes[:, None]}
    # Keras' numpy adapter rejects string arrays; tf.data takes them
    model.fit(tf.data.Dataset.from_tensor_slices((x, y)).batch(64), epochs=epochs, verbose=0)
    return Trained(model, x, x, (colors == "red").astype(int))


def export_shop_with_example_signatures(shop: Trained, base) -> None:
    """The shop model as version 1 of `base`, with TF Serving's Classify and Regress
    signatures next to `serving_default`: `kerasflow.export` writes `classify_good`
    (`classes`/`scores` for `good`) and `regress_price` (`outputs` for `price`),
    both over serialized tf.Examples (`inputs`, DT_STRING [batch])."""
    from kerasflow.export import export_version

    export_version(shop.model, base, version=1, sample_inputs=shop.x_test, target_info=SHOP_TARGETS,
                   model_name="shop", check_parity=False)
