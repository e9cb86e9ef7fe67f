"""The csrc/ files our TensorFlow ops compile from (relative to csrc/).

A module of its own, without imports: setup.py reads it without importing the
package, to install copies of these files with it (an installed package
builds the ops from them on first use; see `nengo_cuda.training.ops`).
"""

SOURCES = ("tf/nc_tf_ops.cc", "tf/nc_tf_ops_gpu.cu.cc", "kernels/neuron_rates.h",
           "kernels/neurons.h", "kernels/linear_filter.h", "common/host_device.h")
GPU_SOURCE = "tf/nc_tf_ops_gpu.cu.cc"
