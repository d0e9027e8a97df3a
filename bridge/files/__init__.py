"""Audio files for ``stemstream separate``: crates of songs in, stem files out, disk to disk.

* ``sources`` - reading a song block by block (libsndfile, or ffmpeg for what it cannot read).
* ``sinks`` - writing stems block by block to temporaries, renamed into place only when complete
  (WAV / FLAC at 16, 24 or 32-bit float).
* ``stem_mp4`` - the Native Instruments Stems container (``.stem.mp4``: the mixture and four
  stems, AAC or ALAC through ffmpeg, NI's stem metadata), with ``mp4_boxes`` for the metadata box.
* ``crate`` - the songs a list of files and folders holds, their output names, and the
  manifests that say which are done.
* ``song`` - one song from its source through the streaming engine to its sink.
"""
