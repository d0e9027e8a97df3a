"""Audio hosts: JACK and PortAudio, each with a Python and a native process callback."""
