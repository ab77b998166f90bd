"""Calibration, INT8 quantization, evaluation and reports. The public entry point for INT8 is ``quantize``
(``calibration.int8``): what ``segedge quantize``, ``segedge report`` and the benchmarks all call;
``LatencyAwareOptions`` tunes its ``latency_aware`` route."""
from calibration.int8 import QuantizeResult, quantize
from calibration.latency_aware import LatencyAwareOptions

__all__ = ["quantize", "QuantizeResult", "LatencyAwareOptions"]
