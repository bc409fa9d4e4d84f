"""Benchmarks: the C kernels against the NumPy backend, the memory-copy floor
and PyTorch (when installed), measured side by side in one process.

Every figure is the median of several timed runs after a warm-up. Ratios are
formed from figures taken in the same run, which is the only honest way to
compare on a shared, noisy machine.

Run it as ``fastconv bench`` or ``python -m fastconv.bench``.
"""
from .children import onnxruntime_available, torch_available
from .command import SECTIONS, add_arguments, main, run
from .kernels import KERNEL_CASES, bench_kernels, format_table
from .report import (bench_commands, format_commands_table, format_float64_table,
                     format_forward_table, format_inference_table, format_training_table)
from .steps import bench_forward, bench_inference, bench_training
from .timing import environment, time_interleaved, touch_memory

__all__ = ["KERNEL_CASES", "SECTIONS", "time_interleaved", "bench_kernels", "bench_training",
           "bench_forward", "bench_inference", "bench_commands", "format_table",
           "format_training_table", "format_float64_table", "format_forward_table",
           "format_inference_table", "format_commands_table", "main", "run", "add_arguments",
           "touch_memory", "environment", "torch_available", "onnxruntime_available"]
