"""Evaluation: SI-SDR metrics, the seeds' chunk protocol, song-bootstrap intervals and reference separators; used by training (shipping scores) and benchmarks alike."""
