"""The live path: the per-block processor, its kernels (Python and native), model switching, delay lines, the mixer and its controls, the runner."""
