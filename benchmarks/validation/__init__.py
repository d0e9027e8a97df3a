"""``stemstream validate``: a pluginval-style battery any user can run on their machine and model.

* ``checks`` - the engine: host rates, block sizes, mono/stereo, edge signals, latency.
* ``live_checks`` - the live path: fuzzed OSC datagrams, a backend failing mid-stream, a JACK
  server killed and restarted.
* ``battery`` - runs a selection, prints the table, writes JSON and Markdown.
"""
