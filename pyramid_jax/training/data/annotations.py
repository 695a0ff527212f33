"""The reference's jsonl annotations (pipeline_spec.md §6b): one JSON object per line, one sample each.

Fields: `video` (an mp4; or `image`, as in the reference's image annotations), `text` (the caption), `latent`
(its pre-extracted latents), `text_fea` (its pre-extracted text features) and optionally `frames` (the frame
indices to use). Relative file paths are taken
relative to the annotation file's folder, so a dataset folder can be moved as a whole.
"""

from __future__ import annotations

import json
import os
from typing import Iterable

from pyramid_jax.io.atomic import atomic_file
from pyramid_jax.training.data.errors import DataError

PATH_FIELDS = ("video", "image", "latent", "text_fea")


def read_annotations(path: str) -> list[dict]:
    """The records of `path`, file paths made absolute; a malformed line raises a DataError naming it."""
    if not os.path.isfile(path):
        raise DataError(path, "no such annotation file")
    folder = os.path.dirname(os.path.abspath(path))
    records = []
    with open(path) as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as e:
                raise DataError(f"{path}:{number}", f"not a JSON object ({e})") from None
            if not isinstance(record, dict):
                raise DataError(f"{path}:{number}", "not a JSON object")
            for field in PATH_FIELDS:
                if isinstance(record.get(field), str):
                    record[field] = os.path.join(folder, record[field])
            records.append(record)
    if not records:
        raise DataError(path, "the annotation file has no records")
    return records


def write_annotations(path: str, records: Iterable[dict]) -> None:
    """Writes `records` as jsonl, their file paths relative to `path`'s folder (the inverse of the reading)."""
    folder = os.path.dirname(os.path.abspath(path))
    with atomic_file(path) as temporary, open(temporary, "w") as f:
        for record in records:
            paths = {k: os.path.relpath(record[k], folder) for k in PATH_FIELDS if isinstance(record.get(k), str)}
            f.write(json.dumps({**record, **paths}) + "\n")


def sample_path(record: dict, field: str, folder: str, index: int, suffix: str) -> str:
    """Where an extraction writes a record's `field` file: the path the record names, else `folder/<index>suffix`."""
    return record.get(field) or os.path.join(os.path.abspath(folder), f"{index:08d}{suffix}")
