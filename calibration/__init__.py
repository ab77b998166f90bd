"""Calibration, INT8 quantization, evaluation and reports. The public entry point for INT8 is ``quantize``
(``calibration.int8``): what ``segedge quantize``, ``segedge report`` and the benchmarks all call."""
from calibration.int8 import QuantizeResult, quantize

__all__ = ["quantize", "QuantizeResult"]
