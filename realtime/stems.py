"""Canonical stem names and the sample rate the shipped models run at."""

from __future__ import annotations

#: The instrument set of the seeds' Slakh2100 protocol (live, live-pruned, quality), in this order.
STEMS: tuple[str, ...] = ("bass", "drums", "guitar", "piano")

#: Sample rate of the shipped models, in Hz.
MODEL_SAMPLE_RATE: int = 44100

#: The DJ stem set (what DJ software calls stems): vocals, drums, bass and the rest.
DJ_STEMS: tuple[str, ...] = ("vocals", "drums", "bass", "other")

#: The instrument set of the seeds' Slakh2100 protocol (the same as :data:`STEMS`).
INSTRUMENT_STEMS: tuple[str, ...] = STEMS

#: Stems that are a group of others: name -> the stems left out (every other stem is summed).
#: ``accompaniment`` is MUSDB's and Spleeter's name for what DJ software calls ``instrumental``.
GROUP_STEMS: dict[str, tuple[str, ...]] = {"instrumental": ("vocals",), "accompaniment": ("vocals",)}

#: Named stem selections a user can ask for (``--stems NAME``), and the model family each needs.
STEM_SETS: dict[str, tuple[str, ...]] = {
    "dj": DJ_STEMS,
    "vocals": ("vocals", "instrumental"),
    "instruments": INSTRUMENT_STEMS,
}


def parse_stems(spec: str) -> tuple[str, ...]:
    """A ``--stems`` value: a set of :data:`STEM_SETS` (``dj``, ``vocals``, ``instruments``) or
    comma-separated stem names (``vocals``, ``vocals,instrumental``, ``drums,bass``)."""
    from stemstream.realtime.errors import bad_value

    text = spec.strip()
    if text in STEM_SETS:
        return STEM_SETS[text]
    names = tuple(s.strip() for s in text.split(",") if s.strip())
    if not names or len(set(names)) != len(names):
        raise bad_value("stems", spec, f"one of {', '.join(STEM_SETS)} or comma-separated distinct stem names")
    return names


def group_matrix(available: tuple[str, ...] | list[str], wanted: tuple[str, ...] | list[str]) -> "np.ndarray":
    """A ``(len(wanted), len(available))`` 0/1 matrix: output ``k`` is the sum of the ``available``
    stems in row ``k`` (a stem itself, or a group of :data:`GROUP_STEMS` such as ``instrumental``,
    every stem but ``vocals``). A stem the model cannot give is a ``ConfigError`` naming what it can."""
    import numpy as np

    from stemstream.realtime.errors import bad_value

    available, wanted = tuple(available), tuple(wanted)
    rows = np.zeros((len(wanted), len(available)), dtype=np.float32)
    for k, name in enumerate(wanted):
        if name in available:
            rows[k, available.index(name)] = 1.0
        elif name in GROUP_STEMS and all(s in available for s in GROUP_STEMS[name]):
            rows[k] = [float(s not in GROUP_STEMS[name]) for s in available]
        else:
            groups = [g for g, out in GROUP_STEMS.items() if all(s in available for s in out)]
            raise bad_value("stems", ",".join(wanted), f"stems the model outputs ({','.join(available)})"
                            + (f" or the groups {','.join(groups)}" if groups else ""))
    return rows
