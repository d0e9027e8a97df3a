"""``--stems`` for ``separate`` and ``live``: which stems a user gets, and from which model."""

from __future__ import annotations

from typing import Any

from stemstream.realtime.errors import StemstreamError, bad_value
from stemstream.realtime.stems import GROUP_STEMS, parse_stems

HELP = ("what to output (default: the model's stems; dj-live's are vocals, drums, bass, other): dj (vocals, "
        "drums, bass, other), vocals (vocals + instrumental), acapella (the vocals alone), instruments (bass, "
        "drums, guitar, piano) or stem names, e.g. 'drums', 'instrumental' or 'drums,bass'; only these are "
        "written; the stems of a whole set sum to the input")

#: Selections that are one stem under another name: ``vocals`` names the pair (vocals and
#: instrumental), so the vocals alone are ``acapella`` (or ``vocals,``).
ALIASES: dict[str, tuple[str, ...]] = {"acapella": ("vocals",), "a-cappella": ("vocals",)}


def asked_stems(spec: str | None) -> tuple[str, ...] | None:
    """The stems a ``--stems`` value asks for (None: the model's own)."""
    if spec is None:
        return None
    return ALIASES.get(spec.strip().lower()) or parse_stems(spec)


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
