"""stemstream's outside world at run time: audio devices, JACK, OSC, mixing, effects, files, CLI."""
