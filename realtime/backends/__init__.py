"""Backends: one torch module, several runtimes, all behind ``stemstream.realtime.protocol.StreamModel``.

Names understood by :func:`open_backend`:

* ``torch`` - PyTorch, CPU (always available); ``stemstream.realtime.backends.torch_backend``.
* ``torch-cuda`` - PyTorch on a CUDA GPU, one hop replayed from a CUDA graph;
  ``stemstream.realtime.backends.torch_cuda_backend`` (needs a CUDA build of torch).
* ``onnx`` - ONNX Runtime, CPU execution provider; ``stemstream.realtime.backends.onnx_backend``.
* ``onnx-cuda`` - ONNX Runtime with the CUDA execution provider (``stemstream[gpu]``).
* ``tensorrt`` - TensorRT engine; ``stemstream.realtime.backends.tensorrt_backend`` (``stemstream[gpu]``).
* ``auto`` - the fastest that opens: tensorrt > onnx-cuda > torch-cuda > onnx > torch.

Backend modules are imported lazily; a missing one raises ``MissingDependencyError`` naming
the install extra. Segment modules (``torch_backend.is_segment_module``) run on ``torch`` only.
"""

from __future__ import annotations

import importlib
import importlib.util
from typing import Any

from stemstream.realtime.errors import MissingDependencyError, StemstreamError, bad_value
from stemstream.realtime.protocol import StreamModel

#: Concrete backend names, fastest first (the order ``auto`` tries them in).
BACKENDS: tuple[str, ...] = ("tensorrt", "onnx-cuda", "torch-cuda", "onnx", "torch")

#: Install extra that provides each backend's runtime.
_EXTRAS = {"onnx": "stemstream (core: onnxruntime)", "onnx-cuda": "gpu", "tensorrt": "gpu"}

#: Why ``auto`` skipped each faster backend in the last call (name -> reason), for reports.
last_auto_skipped: dict[str, str] = {}


def _backend_module(module_name: str, extra: str) -> Any:
    try:
        return importlib.import_module(f"stemstream.realtime.backends.{module_name}")
    except ImportError as exc:
        raise MissingDependencyError(
            f"backend module stemstream.realtime.backends.{module_name} cannot be imported ({exc}); "
            f"install it with: pip install 'stemstream[{extra}]'"
        ) from None


def _open(name: str, module: Any, model_name: str) -> StreamModel:
    from stemstream.realtime.backends.torch_backend import is_segment_module, open_torch

    if name == "torch":
        return open_torch(module, model_name)
    if is_segment_module(module):
        raise bad_value("backend", name, "'torch' for segment models (only hop models are exported)")
    if name in ("onnx", "onnx-cuda"):
        onnx_backend = _backend_module("onnx_backend", _EXTRAS[name])
        providers = ("cpu",) if name == "onnx" else ("cuda",)
        return onnx_backend.open_onnx(module, model_name, providers)
    if name == "torch-cuda":
        from stemstream.realtime.backends.torch_cuda_backend import open_torch_cuda

        return open_torch_cuda(module, model_name)
    if name == "tensorrt":
        trt_backend = _backend_module("tensorrt_backend", "gpu")
        return trt_backend.open_tensorrt(module, model_name)
    raise bad_value("backend", name, f"one of {sorted(BACKENDS + ('auto',))}")


def open_backend(name: str, module: Any, model_name: str) -> StreamModel:
    """Open torch ``module`` (a hop or segment module) as a ``StreamModel`` on backend ``name``.

    Args:
        name: ``torch``, ``torch-cuda``, ``onnx``, ``onnx-cuda``, ``tensorrt`` or ``auto``.
        module: the PyTorch module (``stemstream.realtime.models.base.TorchHopModule`` or a segment module).
        model_name: registry name (names cached exports and ``info.name``).

    ``auto`` tries :data:`BACKENDS` in order and returns the first that opens; the reasons
    the faster ones were skipped are kept in :data:`last_auto_skipped`.
    """
    if name != "auto":
        return _open(name, module, model_name)
    last_auto_skipped.clear()
    for candidate in BACKENDS:
        if candidate != "torch" and candidate not in available_backends():
            last_auto_skipped[candidate] = "not available in this environment"
            continue
        try:
            return _open(candidate, module, model_name)
        except (StemstreamError, ImportError, RuntimeError, OSError) as exc:
            last_auto_skipped[candidate] = str(exc)
    raise AssertionError("unreachable: the torch backend always opens")  # pragma: no cover


#: Backends a segment model (the diffusion student) runs on: its own ONNX step graph, or PyTorch.
SEGMENT_BACKENDS: tuple[str, ...] = ("onnx", "torch")
#: What ``--backend`` means everywhere (every command, every model), and its default.
BACKEND_HELP = ("torch, torch-cuda, onnx, onnx-cuda, tensorrt or auto (default auto: the fastest this machine "
                "has; the diffusion student runs on onnx or torch)")


def segment_backend(name: str) -> str:
    """The backend a segment model runs on for ``--backend name``: ``auto`` is the fastest of
    :data:`SEGMENT_BACKENDS` installed here (the same rule as for hop models, over fewer choices)."""
    if name == "auto":
        return next(b for b in SEGMENT_BACKENDS if b == "torch" or b in available_backends())
    if name not in SEGMENT_BACKENDS:
        raise bad_value("backend", name, f"one of {', '.join(SEGMENT_BACKENDS)} or auto for a segment model "
                        "(the diffusion student has no GPU engine yet)")
    return name


def available_backends() -> tuple[str, ...]:
    """Backend names whose runtime is installed here, fastest first (``torch`` always last).

    Cheap: checks installed packages and execution providers, builds no model.
    """
    found: list[str] = []
    have_ort = importlib.util.find_spec("onnxruntime") is not None
    providers: set[str] = set()
    if have_ort:
        try:
            import onnxruntime

            providers = set(onnxruntime.get_available_providers())
        except Exception:  # a broken install counts as absent  # pragma: no cover
            have_ort = False
    have_own = lambda mod: importlib.util.find_spec(f"stemstream.realtime.backends.{mod}") is not None  # noqa: E731
    if importlib.util.find_spec("tensorrt") is not None and have_own("tensorrt_backend"):
        found.append("tensorrt")
    if have_ort and "CUDAExecutionProvider" in providers and have_own("onnx_backend"):
        found.append("onnx-cuda")
    import torch

    if torch.cuda.is_available():
        found.append("torch-cuda")
    if have_ort and have_own("onnx_backend") and importlib.util.find_spec("onnx") is not None:
        found.append("onnx")
    found.append("torch")
    return tuple(found)


__all__ = ["BACKENDS", "available_backends", "last_auto_skipped", "open_backend"]
