"""Open a consistency student as a segment model, through PyTorch or ONNX Runtime.

Kept apart from :mod:`stemstream.realtime.diffusion.student` (the network) and
:mod:`stemstream.realtime.diffusion.student_onnx` (its exported graph) so that imports run one
way: this loader uses both, neither uses it.
"""

from __future__ import annotations

from pathlib import Path

from stemstream.realtime.diffusion.student import DiffusionSegmentModel, load_student_step
from stemstream.realtime.errors import bad_value


def load_student(path: str | Path, steps: int = 1, backend: str = "torch", name: str | None = None,
                 channels: int = 2, onnx_path: str | Path | None = None) -> DiffusionSegmentModel:
    """A ready :class:`DiffusionSegmentModel` from a student weight file.

    ``backend``: ``"torch"``, or ``"onnx"`` to run the step graph with ONNX Runtime on the CPU
    (one thread): ``onnx_path`` if given, else ``path`` with suffix ``.onnx`` if it exists,
    else a graph exported into the cache (``stemstream.realtime.diffusion.student_onnx``); ``"auto"``
    (every command's default) as ``stemstream.realtime.backends.segment_backend`` decides. ``name`` defaults to ``diffusion-{steps}step``.
    """
    from stemstream.realtime.backends import segment_backend

    step, _ = load_student_step(path)
    session = None
    backend = segment_backend(backend)
    if backend == "onnx":
        from stemstream.realtime.errors import require

        ort = require("onnxruntime", "onnx")
        graph = Path(onnx_path) if onnx_path is not None else Path(path).with_suffix(".onnx")
        if onnx_path is None and not graph.exists():
            from stemstream.realtime.diffusion.student_onnx import cached_student_graph

            graph = cached_student_graph(step, Path(path).stem)
        if not graph.exists():
            raise bad_value("onnx_path", str(graph), "an exported student graph (stemstream.realtime.diffusion.student_onnx)")
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        session = ort.InferenceSession(str(graph), options, providers=["CPUExecutionProvider"])
    return DiffusionSegmentModel(step, name=name or f"diffusion-{steps}step", steps=steps, channels=channels,
                                 onnx_session=session)
