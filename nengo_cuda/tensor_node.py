"""NengoDL's ``nengo_dl.tensor_node`` module (``from nengo_dl.tensor_node
import TensorNode``): TensorNodes live in `nengo_cuda.training.tensor_node`."""

from .training.tensor_node import Layer, TensorNode, tensor_layer

__all__ = ["Layer", "TensorNode", "tensor_layer"]
