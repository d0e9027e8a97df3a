"""The streaming engine: one code path for files and live audio.

* ``streamer.StreamingSeparator`` - any block size in, sample-aligned stems out
  (``process``/``flush``/``reset``/``latency_samples``), resampling host <-> model rate.
* ``overlap_add`` - hop runner (stateful hop models) and segment runner (overlap-add with
  autoregressive context) at the model rate.
* ``offline.separate_array`` - whole arrays through the streamer, latency trimmed.
* ``session.RealtimeSession`` - copy-only audio callback, inference on a worker thread,
  deadline fallback to the time-aligned mix with short fades.
* ``ringbuffer`` / ``resample`` - the preallocated rings and the low-delay stream resampler.
* ``wakeup`` - the eventfd through which the callback's numba kernel wakes the worker.

Submodules are imported explicitly (``from stemstream.realtime.engine.streamer import ...``) so that
importing one does not pull in numba for the others.
"""
