"""``--stems`` for ``separate`` and ``live``: which stems a user gets, and from which model."""

from __future__ import annotations

from typing import Any

from stemstream.realtime.errors import StemstreamError, bad_value
from stemstream.realtime.stems import GROUP_STEMS, parse_stems

HELP = ("what to output (default: the model's stems; dj-live's are vocals, drums, bass, other): dj (vocals, "
        "drums, bass, other), vocals (vocals + instrumental), instruments (bass, drums, guitar, piano) or "
        "stem names, e.g. 'vocals' or 'drums,bass'; the stems of a whole set sum to the input")


def asked_stems(spec: str | None) -> tuple[str, ...] | None:
    """The stems a ``--stems`` value asks for (None: the model's own)."""
    return parse_stems(spec) if spec is not None else None


def with_stems(model: Any, spec: str | None) -> Any:
    """``model`` giving the ``--stems`` asked for (``stemstream.realtime.models.grouped``), or a
    one-line error naming what this model can give."""
    from stemstream.realtime.models.grouped import grouped

    try:
        return grouped(model, asked_stems(spec))
    except StemstreamError:
        stems = tuple(model.info.stems)
        can = list(stems) + [g for g, out in GROUP_STEMS.items() if set(out) <= set(stems)]
        hint = "; for the DJ stems use --model dj-live" if "vocals" not in stems else ""
        raise bad_value("--stems", spec, f"stems model {model.info.name!r} can give ({', '.join(can)}){hint}") from None
