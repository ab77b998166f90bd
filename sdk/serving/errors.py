"""The serving error: what failed on the server (it did not start, a request was refused) and what to do."""
from __future__ import annotations

from sdk.core.errors import SegEdgeError


class ServingError(SegEdgeError):
    """tritonserver could not be found or started, its model environment is missing, or a request was refused."""
