"""Separation models: the live hop model, its DSP pieces, and the registry of shipped models.

Public entry points: ``stemstream.realtime.models.registry.list_models()``, ``load_torch_model(name)``,
``load_model(name, backend="torch")``.
"""
