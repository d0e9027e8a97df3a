"""Per-stem effects at run time: the rack, chain specs, boards (pedalboard, VST3, LV2) and the pyo engine."""
