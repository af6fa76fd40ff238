"""The canonical manifest: one JSON object per line.

``{"name", "video", "audio"?, "subtitle", "description"?, "emotions"?}`` with media paths
relative to the manifest's folder. Every reader in ``affectgpt.data`` produces ``Sample``s.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from affectgpt.core.errors import InputError
from affectgpt.core.fileio import iter_jsonl


class ManifestError(InputError, ValueError):
    """A manifest row that cannot be used; the message names the file and line."""


@dataclass(frozen=True)
class Sample:
    name: str
    video: Path | None
    audio: Path | None = None
    subtitle: str = ""
    description: str | None = None
    emotions: tuple[str, ...] | None = None
    extra: dict = field(default_factory=dict, compare=False, hash=False)

    def to_json(self, root: Path | None = None) -> dict:
        """Canonical JSON record; media paths are made relative to ``root`` when possible."""

        def rel(p: Path | None) -> str | None:
            if p is None:
                return None
            if root is not None:
                try:
                    return str(Path(p).resolve().relative_to(Path(root).resolve()))
                except ValueError:
                    pass
            return str(p)

        rec: dict = {"name": self.name, "video": rel(self.video)}
        if self.audio is not None:
            rec["audio"] = rel(self.audio)
        rec["subtitle"] = self.subtitle
        if self.description is not None:
            rec["description"] = self.description
        if self.emotions is not None:
            rec["emotions"] = list(self.emotions)
        return rec


def sample_from_record(rec: dict, root: Path, where: str) -> Sample:
    """Build a ``Sample`` from one canonical record; ``where`` names file:line for errors."""
    if not isinstance(rec, dict):
        raise ManifestError(f"{where}: expected a JSON object, found {type(rec).__name__}")
    name = rec.get("name")
    if not isinstance(name, str) or not name:
        raise ManifestError(f"{where}: missing or empty 'name'")
    if rec.get("video") is None and rec.get("audio") is None:
        raise ManifestError(f"{where}: sample {name!r} has neither 'video' nor 'audio'")

    def path(key: str) -> Path | None:
        v = rec.get(key)
        if v is None or v == "":
            return None
        if not isinstance(v, str):
            raise ManifestError(f"{where}: sample {name!r}: '{key}' must be a path string, found {v!r}")
        p = Path(v)
        return p if p.is_absolute() else root / p

    emotions = rec.get("emotions")
    if emotions is not None:
        if isinstance(emotions, str):
            emotions = [e.strip() for e in emotions.strip("[]").replace("'", "").replace('"', "").split(",")]
        if not isinstance(emotions, list) or not all(isinstance(e, str) for e in emotions):
            raise ManifestError(f"{where}: sample {name!r}: 'emotions' must be a list of strings, found {emotions!r}")
        emotions = tuple(e.strip() for e in emotions if e.strip())
    description = rec.get("description")
    if description is not None and not isinstance(description, str):
        raise ManifestError(f"{where}: sample {name!r}: 'description' must be a string")
    subtitle = rec.get("subtitle") or ""
    if not isinstance(subtitle, str):
        raise ManifestError(f"{where}: sample {name!r}: 'subtitle' must be a string")
    known = {"name", "video", "audio", "subtitle", "description", "emotions"}
    return Sample(
        name=name,
        video=path("video"),
        audio=path("audio"),
        subtitle=subtitle,
        description=description,
        emotions=emotions,
        # "faces": OpenFace crops for data.visual=faces, a path relative to the manifest like the media
        extra={k: (str(path(k)) if k == "faces" and v else v) for k, v in rec.items() if k not in known},
    )


def read_manifest(path: str | Path) -> list[Sample]:
    """Read a canonical JSONL manifest. Raises ``ManifestError`` naming file:line on bad rows
    and on duplicate names (a duplicate would silently overwrite predictions and features)."""
    path = Path(path)
    if not path.is_file():
        raise ManifestError(f"{path}: manifest not found")
    root = path.parent
    samples: list[Sample] = []
    seen: dict[str, int] = {}
    for lineno, rec in iter_jsonl(path, error=ManifestError):
        where = f"{path}:{lineno}"
        s = sample_from_record(rec, root, where)
        if s.name in seen:
            raise ManifestError(f"{where}: duplicate name {s.name!r} (first on line {seen[s.name]})")
        seen[s.name] = lineno
        samples.append(s)
    return samples


def write_manifest(path: str | Path, samples: list[Sample]) -> None:
    """Write samples as canonical JSONL with media paths relative to the manifest's folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as f:
        for s in samples:
            f.write(json.dumps(s.to_json(path.parent), ensure_ascii=False) + "\n")
