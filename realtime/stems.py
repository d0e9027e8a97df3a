"""Canonical stem names and the sample rate the shipped models run at."""

from __future__ import annotations

#: The four stems every shipped model separates, in this order (the seeds' Slakh2100 set).
STEMS: tuple[str, ...] = ("bass", "drums", "guitar", "piano")

#: Sample rate of the shipped models, in Hz.
MODEL_SAMPLE_RATE: int = 44100
