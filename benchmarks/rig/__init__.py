"""Test and benchmark scaffolding: a JACK dummy server and a JACK player."""
