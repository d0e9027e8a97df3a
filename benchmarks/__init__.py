"""Latency, speed and quality measurements that write JSON, Markdown and plots."""
