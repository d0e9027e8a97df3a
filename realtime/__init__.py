"""stemstream's inference path: models, streaming engine, backends, shipped weights.

Imports nothing from ``export``, ``bridge`` or training-only packages.
"""

from stemstream.realtime.errors import StemstreamError
from stemstream.realtime.stems import MODEL_SAMPLE_RATE, STEMS

__all__ = ["MODEL_SAMPLE_RATE", "STEMS", "StemstreamError"]
__version__ = "0.1.0"
