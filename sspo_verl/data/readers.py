"""Read source records from local files, the local Hugging Face caches, or the Hub (downloaded when missing).

Accepted inputs (``resolve_records``):
- a file: ``.jsonl``, ``.json`` (an array, ``{"data": [...]}``, or JSON lines as ``Dataset.to_json`` writes),
  ``.parquet``;
- a directory written by ``Dataset.save_to_disk`` / ``DatasetDict.save_to_disk``;
- a directory of data files, e.g. a ``huggingface-cli download --repo-type dataset`` snapshot or a git
  clone of the dataset repo: files are picked by config (a path component) and split (``train-0000.parquet``,
  ``test.jsonl``, ``train/…``);
- nothing: the dataset's default Hub id at its pinned revision (:mod:`sspo_verl.data.sources`), in this order:
  the Hub cache (``HF_HUB_CACHE``) at that revision; a download of that revision into the Hub cache with
  ``huggingface_hub.snapshot_download`` when the Hub (``HF_ENDPOINT``) is reachable and ``HF_HUB_OFFLINE`` is
  not set; then, offline or unreachable, a cached snapshot of another revision (the label says which) and the
  ``datasets`` cache (filled by an earlier online ``load_dataset``). A dataset in none of them fails naming
  the dataset and the command that fetches it.

Every failure is a :class:`DataError` naming the file (and line or row) and how to fix it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

DATA_SUFFIXES = (".parquet", ".jsonl", ".json")
_DATA_PATTERNS = [f"*{suffix}" for suffix in DATA_SUFFIXES]  # what is downloaded of a Hub repo (and needed cached)


class DataError(Exception):
    """Missing or corrupt input; the message names the file and the fix."""


def read_jsonl(path: Path) -> list[dict]:
    records = []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(f"{path}:{lineno}: invalid JSON ({exc.msg}); fix or remove that line") from None
            if not isinstance(record, dict):
                raise DataError(f"{path}:{lineno}: expected a JSON object per line, got {type(record).__name__}")
            records.append(record)
    return records


def read_json(path: Path) -> list[dict]:
    text = path.read_text(encoding="utf-8")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        if exc.msg == "Extra data":  # JSON lines under a .json name (Dataset.to_json's default)
            return read_jsonl(path)
        raise DataError(f"{path}: invalid JSON at line {exc.lineno} ({exc.msg})") from None
    if isinstance(data, dict):
        for key in ("data", "rows", "examples", "instances"):
            if isinstance(data.get(key), list):
                data = data[key]
                break
        else:
            data = [data]
    if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
        raise DataError(f"{path}: expected a JSON array of objects (or JSON lines)")
    return data


def read_parquet(path: Path) -> list[dict]:
    import pyarrow.parquet as pq

    try:
        return pq.read_table(path).to_pylist()
    except Exception as exc:  # noqa: BLE001 - pyarrow raises several types for corrupt files
        raise DataError(f"{path}: not a readable parquet file ({type(exc).__name__}: {exc})") from None


def read_file(path: Path) -> list[dict]:
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        return read_jsonl(path)
    if suffix == ".json":
        return read_json(path)
    if suffix == ".parquet":
        return read_parquet(path)
    raise DataError(f"{path}: unsupported file type {suffix!r}; use .jsonl, .json or .parquet")


def _is_saved_dataset(directory: Path) -> bool:
    return (directory / "dataset_dict.json").exists() or (
        (directory / "state.json").exists() and (directory / "dataset_info.json").exists()
    )


def _read_saved_dataset(directory: Path, split: str | None) -> list[dict]:
    import datasets

    try:
        loaded = datasets.load_from_disk(str(directory))
    except Exception as exc:  # noqa: BLE001
        raise DataError(f"{directory}: cannot load_from_disk ({type(exc).__name__}: {exc})") from None
    if isinstance(loaded, datasets.DatasetDict):
        if split is None or split not in loaded:
            raise DataError(f"{directory}: split {split!r} not found; it has {sorted(loaded)} (pass --split)")
        loaded = loaded[split]
    return loaded.to_list()


def _split_matches(rel: Path, split: str) -> bool:
    stem = rel.name.split(".")[0]
    if split in rel.parts[:-1] or stem == split:
        return True
    return stem.startswith((f"{split}-", f"{split}_")) or f"-{split}-" in stem or stem.endswith(f"-{split}")


def data_files(directory: Path, config: str | None, split: str | None) -> list[Path]:
    """The data files of ``directory`` for ``config``/``split`` (sorted shards)."""
    files = sorted(
        p
        for p in directory.rglob("*")
        if p.is_file()
        and p.suffix.lower() in DATA_SUFFIXES
        and not any(part.startswith(".") for part in p.relative_to(directory).parts)
        and p.name not in ("dataset_info.json", "state.json", "dataset_dict.json")
    )
    if not files:
        raise DataError(f"{directory}: no .parquet/.jsonl/.json data files inside")
    rels = [f.relative_to(directory) for f in files]
    if config:
        chosen = [r for r in rels if config in r.parts[:-1] or r.name.startswith(config)]
        if not chosen:
            raise DataError(f"{directory}: no files for config {config!r}; files: {[str(r) for r in rels][:20]}")
        rels = chosen
    if split and len(rels) > 1:
        chosen = [r for r in rels if _split_matches(r, split)]
        if not chosen:
            raise DataError(
                f"{directory}: no files for split {split!r} among {[str(r) for r in rels][:20]}; "
                "pass --split (or point --input at one file)"
            )
        rels = chosen
    return [directory / r for r in rels]


def read_directory(directory: Path, config: str | None, split: str | None) -> list[dict]:
    if _is_saved_dataset(directory):
        return _read_saved_dataset(directory, split)
    records: list[dict] = []
    for path in data_files(directory, config, split):
        records.extend(read_file(path))
    return records


def _hub_cache_dir() -> str:
    """The Hub cache, read from the environment at call time (HF_HUB_CACHE, else HF_HOME/hub)."""
    if os.environ.get("HF_HUB_CACHE"):
        return os.environ["HF_HUB_CACHE"]
    return os.path.join(os.environ.get("HF_HOME", os.path.expanduser("~/.cache/huggingface")), "hub")


def hub_offline() -> bool:
    """``HF_HUB_OFFLINE`` as huggingface_hub reads it (at its import), or set since in this process."""
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE) or os.environ.get("HF_HUB_OFFLINE", "").upper() in {"1", "ON", "YES", "TRUE"}


def _hub_snapshot(hf_id: str, revision: str | None = None) -> Path | None:
    """A snapshot of ``hf_id`` at ``revision`` (None: the cached ``main``) in the local Hub cache, else None."""
    try:
        from huggingface_hub import snapshot_download
    except ImportError:  # pragma: no cover - a dependency of datasets/transformers
        return None
    cache_dir = _hub_cache_dir()
    try:
        return Path(snapshot_download(hf_id, repo_type="dataset", revision=revision, local_files_only=True,
                                      cache_dir=cache_dir, allow_patterns=_DATA_PATTERNS))
    except Exception:  # noqa: BLE001 - not in the cache (LocalEntryNotFoundError and friends)
        return None


def _download(hf_id: str, revision: str | None) -> Path:
    """Download the data files of ``hf_id`` at ``revision`` into the Hub cache (huggingface_hub, ``HF_ENDPOINT``).

    Raises:
        OSError or huggingface_hub / httpx errors: the Hub is not reachable or has no such repo or revision.
    """
    from huggingface_hub import snapshot_download

    return Path(snapshot_download(hf_id, repo_type="dataset", revision=revision, cache_dir=_hub_cache_dir(),
                                  allow_patterns=_DATA_PATTERNS))


def _datasets_cache(hf_id: str, config: str | None, split: str) -> list[dict] | None:
    """``load_dataset`` from the ``datasets`` cache with the Hub switched off for the duration of the call."""
    import datasets
    from huggingface_hub import constants as hub_constants

    saved = (datasets.config.HF_HUB_OFFLINE, hub_constants.HF_HUB_OFFLINE)
    datasets.config.HF_HUB_OFFLINE = hub_constants.HF_HUB_OFFLINE = True
    try:
        return datasets.load_dataset(hf_id, config, split=split).to_list()
    except Exception:  # noqa: BLE001 - not cached
        return None
    finally:
        datasets.config.HF_HUB_OFFLINE, hub_constants.HF_HUB_OFFLINE = saved


def fetch_command(name: str, hf_id: str, revision: str | None) -> str:
    """The commands that put dataset ``name`` into the local Hub cache, for messages."""
    rev = f" --revision {revision}" if revision else ""
    return (f"`sspo-data prepare-all --datasets {name} --out-dir DIR` where the Hub is reachable (without "
            f"HF_HUB_OFFLINE=1), or `hf download --repo-type dataset {hf_id}{rev}` there and copy the Hub cache "
            "(HF_HOME)")


def resolve_records(
    input_path: str | None, hf_id: str, config: str | None, split: str | None, revision: str | None = None,
    name: str | None = None,
) -> tuple[list[dict], str]:
    """Read the records; return them with a label saying where they came from (and which revision).

    Args:
        input_path: a file or directory, or None to use ``hf_id`` from the caches or the Hub.
        hf_id: the dataset's Hub id (``org/name``), used when ``input_path`` is None or is itself an id.
        config: Hub config name (a sub-directory in snapshots), e.g. ``main`` for GSM8K.
        split: which split to take from a directory or saved DatasetDict.
        revision: the Hub commit to read (None: ``main``); see the module docstring for the order.
        name: the dataset's sspo-data name, for messages.
    """
    name = name or hf_id
    if input_path:
        path = Path(input_path).expanduser()
        if path.is_file():
            return read_file(path), str(path)
        if path.is_dir():
            return read_directory(path, config, split), str(path)
        if input_path.count("/") == 1 and not input_path.startswith((".", "/", "~")):
            hf_id, revision = input_path, None  # an explicit Hub id: its main
        else:
            raise DataError(
                f"input {input_path!r} does not exist (expected a .jsonl/.json/.parquet file or a directory)"
            )
    at = f"@{revision}" if revision else ""
    snapshot = _hub_snapshot(hf_id, revision)
    if snapshot is not None:
        return read_directory(snapshot, config, split), f"hf-hub-cache:{hf_id}@{snapshot.name}"
    offline, failure = hub_offline(), None
    if not offline:
        try:
            snapshot = _download(hf_id, revision)
        except Exception as exc:  # noqa: BLE001 - unreachable, no such repo or revision: said below
            failure = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        else:
            return read_directory(snapshot, config, split), f"hf-hub-download:{hf_id}@{snapshot.name}"
    if revision is not None:
        snapshot = _hub_snapshot(hf_id, None)
        if snapshot is not None:
            return (read_directory(snapshot, config, split),
                    f"hf-hub-cache:{hf_id}@{snapshot.name} (not the pinned {revision})")
    records = _datasets_cache(hf_id, config, split or "train")
    if records is not None:
        return records, f"hf-datasets-cache:{hf_id}"
    from huggingface_hub import constants

    why = ("HF_HUB_OFFLINE is set" if offline else
           f"the download from {constants.ENDPOINT} failed ({failure})")
    raise DataError(
        f"dataset {name} ({hf_id}{at}, config {config!r}, split {split!r}) is not in the local Hugging Face caches "
        f"(hub cache {_hub_cache_dir()}; datasets cache) and {why}. Fetch it with {fetch_command(name, hf_id, revision)}"
        ", or pass --input PATH to a local .jsonl/.json/.parquet file or directory."
    )
