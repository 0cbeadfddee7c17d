"""Keyword-spotting models that are not DS-CNN, as a user brings them: factories called as
``factory(input_shape=..., num_labels=...)`` that return a tf_keras model."""

from __future__ import annotations


def _conv_bn_relu(conv, x, name):
    """``conv`` (a convolution layer named ``name``), then BatchNorm and ReLU."""
    from kws.compat import keras

    x = conv(x)
    x = keras.layers.BatchNormalization(momentum=0.9, name=f"{name}_bn")(x)
    return keras.layers.ReLU(name=f"{name}_relu")(x)


def plain_cnn(input_shape, num_labels):
    """Two standard 3x3 convolutions with BatchNorm, max pooling, a dense head: every
    technique of the tree can touch it; it has no width multiplier."""
    from kws.compat import keras

    L = keras.layers
    inputs = keras.Input(shape=input_shape, name="features")
    x = _conv_bn_relu(L.Conv2D(12, (3, 3), padding="same", name="conv_a"), inputs, "conv_a")
    x = L.MaxPooling2D((2, 2), name="pool")(x)
    x = _conv_bn_relu(L.Conv2D(16, (3, 3), padding="same", name="conv_b"), x, "conv_b")
    x = L.GlobalAveragePooling2D(name="gap")(x)
    outputs = L.Dense(num_labels, name="logits")(x)
    return keras.Model(inputs, outputs, name="plain_cnn")


def temporal_cnn(input_shape, num_labels):
    """Convolution over time only (the coefficients are channels, as in TC-ResNet): a
    reshape and 1-D convolutions. Filter pruning does not rewrite reshapes."""
    from kws.compat import keras

    L = keras.layers
    frames, coefficients = input_shape[0], input_shape[1] * input_shape[2]
    inputs = keras.Input(shape=input_shape, name="features")
    x = L.Reshape((frames, coefficients), name="to_sequence")(inputs)
    x = _conv_bn_relu(L.Conv1D(24, 5, strides=2, padding="same", name="tconv_a"), x, "tconv_a")
    x = _conv_bn_relu(L.Conv1D(24, 3, padding="same", name="tconv_b"), x, "tconv_b")
    x = L.GlobalAveragePooling1D(name="gap")(x)
    outputs = L.Dense(num_labels, name="logits")(x)
    return keras.Model(inputs, outputs, name="temporal_cnn")


def relu6_cnn(input_shape, num_labels):
    """A CNN with a raw TensorFlow op between its layers (``tf.nn.relu6``, a TFOpLambda
    layer): TFMOT pruning and quantisation-aware training cannot wrap it."""
    from kws.compat import keras, tf

    L = keras.layers
    inputs = keras.Input(shape=input_shape, name="features")
    x = L.Conv2D(12, (3, 3), strides=(2, 2), padding="same", name="conv_a")(inputs)
    x = tf.nn.relu6(x)
    x = L.Conv2D(16, (3, 3), padding="same", name="conv_b")(x)
    x = L.ReLU(name="conv_b_relu")(x)
    x = L.GlobalAveragePooling2D(name="gap")(x)
    outputs = L.Dense(num_labels, name="logits")(x)
    return keras.Model(inputs, outputs, name="relu6_cnn")


def not_a_model(input_shape, num_labels):
    return {"input_shape": input_shape}
