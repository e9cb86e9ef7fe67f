"""Training and TensorFlow inside models (NengoDL 3's API), an optional extra.

Importing this package (and ``nengo_cuda``) never imports TensorFlow: the
modules that need it (`ops`, `graph`, `trainer`) import it when first used.
``pip install nengo_cuda[tf]`` installs TensorFlow.

- `config.configure_settings`: NengoDL's settings and ``trainable`` config.
- `tensor_node.TensorNode`, `tensor_node.Layer`: TensorFlow code in a model.
- `objectives` (``nengo_cuda.obj``): loss functions.
- `ops`: our TensorFlow custom ops (csrc/tf/), built on first use.
- `graph`: the model's step loop as TensorFlow operations (for gradients).
- `trainer`: ``sim.compile/fit/evaluate/predict/train/loss`` and parameters.
"""
