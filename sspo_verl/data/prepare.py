"""Turn source records into verl's RL parquet rows, validate them, and write them.

A row (what ``verl.utils.dataset.rl_dataset.RLHFDataset`` and verl's reward managers read)::

    data_source   str    dataset name, e.g. "math500" (verl groups validation metrics by it)
    prompt        list   chat messages [{"role", "content"}] from the template (sspo_verl.data.templates)
    ability       str    "math"
    reward_model  dict   {"style": "rule", "ground_truth": <answer text>}
    extra_info    dict   {"split", "index", "question", "answer", "level", "subject", "source", "source_row"}

Validation: every kept row has a non-empty question and answer. Invalid source rows fail the whole run
with their row numbers (``skip_invalid=True`` drops and counts them instead). Training sets marked
``dedup`` drop repeated questions (other sets keep them; the summary counts them either way); MATH keeps levels
3-5. With ``max_prompt_tokens`` and a tokenizer, rows whose chat prompt (the tokenizer's chat template with the
generation prompt, as verl renders it) is longer are dropped, counted and listed.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from sspo_verl.data.readers import DataError, resolve_records
from sspo_verl.data.sources import RowError, SourceSpec, get_source
from sspo_verl.data.templates import DEFAULT_TEMPLATE, build_prompt

ABILITY = "math"
MAX_REPORTED_ERRORS = 10


@dataclass
class PrepareReport:
    """What one ``prepare_dataset`` call did (printed by the CLI)."""

    name: str
    source: str
    out_path: str
    read: int = 0
    written: int = 0
    invalid: int = 0
    filtered_level: int = 0
    duplicates: int = 0
    duplicates_kept: bool = False
    too_long: int = 0
    errors: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)

    def summary(self) -> str:
        dup = f"duplicates {self.duplicates}" + (" (kept)" if self.duplicates_kept and self.duplicates else "")
        text = (
            f"{self.name}: read {self.read} rows from {self.source}; wrote {self.written} to {self.out_path} "
            f"(invalid {self.invalid}, other levels {self.filtered_level}, {dup}, too long {self.too_long})"
        )
        if self.dropped:
            text += "\n  dropped: " + "\n  dropped: ".join(self.dropped)
        return text


def build_rows(
    spec: SourceSpec,
    records: list[dict],
    source_label: str,
    template: str = DEFAULT_TEMPLATE,
    split_label: str | None = None,
    levels: tuple[int, ...] | None = None,
    skip_invalid: bool = False,
    limit: int | None = None,
    max_prompt_tokens: int | None = None,
    tokenizer=None,
) -> tuple[list[dict], PrepareReport]:
    """Map, validate, filter and deduplicate ``records`` into verl rows.

    ``max_prompt_tokens`` with ``tokenizer`` (a transformers tokenizer): drop rows whose rendered chat prompt has
    more tokens (counted in ``too_long``, the first ones listed in ``dropped``).

    Raises:
        DataError: invalid rows and ``skip_invalid`` is False (the message lists the first ones), or no row
            survives.
    """
    report = PrepareReport(spec.name, source_label, "", read=len(records), duplicates_kept=not spec.dedup)
    if (max_prompt_tokens is None) != (tokenizer is None):
        raise DataError("--max-prompt-tokens needs --tokenizer (the model's tokenizer directory), and vice versa")
    split_label = split_label or ("train" if spec.role == "train" else "test")
    levels = spec.levels if levels is None else levels
    build_prompt("", template)  # unknown template: fail before reading rows
    rows: list[dict] = []
    seen: set[str] = set()
    for source_row, record in enumerate(records):
        try:
            if not isinstance(record, dict):
                raise RowError(f"expected a record (dict), got {type(record).__name__}")
            parsed = spec.parse_row(record)
            if not parsed.question.strip():
                raise RowError("empty question")
            if not parsed.answer.strip():
                raise RowError("empty answer")
        except RowError as exc:
            report.invalid += 1
            if len(report.errors) < MAX_REPORTED_ERRORS:
                report.errors.append(f"{source_label} row {source_row}: {exc}")
            continue
        if levels is not None and parsed.level not in levels:
            report.filtered_level += 1
            continue
        key = " ".join(parsed.question.split())
        if key in seen:
            report.duplicates += 1
            if spec.dedup:
                continue
        seen.add(key)
        prompt = build_prompt(parsed.question, template)
        if max_prompt_tokens is not None:
            text = tokenizer.apply_chat_template(prompt, add_generation_prompt=True, tokenize=False)
            n_tokens = len(tokenizer(text, add_special_tokens=False)["input_ids"])
            if n_tokens > max_prompt_tokens:
                report.too_long += 1
                if len(report.dropped) < MAX_REPORTED_ERRORS:
                    report.dropped.append(
                        f"{source_label} row {source_row}: prompt of {n_tokens} tokens > --max-prompt-tokens "
                        f"{max_prompt_tokens}"
                    )
                continue
        rows.append(
            {
                "data_source": spec.name,
                "prompt": prompt,
                "ability": ABILITY,
                "reward_model": {"style": "rule", "ground_truth": parsed.answer},
                "extra_info": {
                    "split": split_label,
                    "index": len(rows),
                    "question": parsed.question,
                    "answer": parsed.answer,
                    "level": -1 if parsed.level is None else parsed.level,
                    "subject": parsed.subject,
                    "source": source_label,
                    "source_row": source_row,
                },
            }
        )
        if limit is not None and len(rows) >= limit:
            break
    if report.invalid and not skip_invalid:
        listed = "\n  ".join(report.errors)
        raise DataError(
            f"{spec.name}: {report.invalid} of {report.read} rows are invalid, e.g.\n  {listed}\n"
            "Fix the input, or pass --skip-invalid to drop such rows (they are counted in the summary)."
        )
    if not rows:
        raise DataError(
            f"{spec.name}: no rows left from {source_label} (read {report.read}, invalid {report.invalid}, "
            f"outside levels {levels}: {report.filtered_level}, too long: {report.too_long}); is this the right file for {spec.name}?"
        )
    report.written = len(rows)
    return rows, report


def write_parquet(rows: list[dict], out_path: str | os.PathLike) -> None:
    """Write rows atomically (temp file + rename), so a crash never leaves a half-written parquet."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    pq.write_table(pa.Table.from_pylist(rows), tmp)
    os.replace(tmp, out)


def prepare_dataset(
    name: str,
    out_path: str | os.PathLike,
    input_path: str | None = None,
    template: str = DEFAULT_TEMPLATE,
    config: str | None = None,
    split: str | None = None,
    levels: tuple[int, ...] | None = None,
    skip_invalid: bool = False,
    limit: int | None = None,
    max_prompt_tokens: int | None = None,
    tokenizer_path: str | None = None,
) -> PrepareReport:
    """Read ``name`` from ``input_path`` (or the HF caches, or the Hub: :func:`~sspo_verl.data.readers.resolve_records`), convert, validate and write ``out_path``;
    ``max_prompt_tokens`` with ``tokenizer_path`` (a local tokenizer directory) drops over-long prompts."""
    spec = get_source(name)
    tokenizer = None
    if tokenizer_path is not None:
        from transformers import AutoTokenizer

        try:
            tokenizer = AutoTokenizer.from_pretrained(tokenizer_path, local_files_only=True)
        except (OSError, ValueError) as exc:
            raise DataError(f"--tokenizer {tokenizer_path}: cannot load a tokenizer there ({exc})") from None
    records, label = resolve_records(
        input_path, spec.hf_id, spec.hf_config if config is None else config, spec.hf_split if split is None else split,
        revision=spec.revision, name=spec.name,
    )
    rows, report = build_rows(
        spec, records, label, template=template, levels=levels, skip_invalid=skip_invalid, limit=limit,
        max_prompt_tokens=max_prompt_tokens, tokenizer=tokenizer,
    )
    write_parquet(rows, out_path)
    report.out_path = str(out_path)
    return report


REQUIRED_COLUMNS = ("data_source", "prompt", "reward_model")


def read_verl_rows(path: str | os.PathLike) -> list[dict]:
    """Read a verl parquet written by ``sspo-data`` (or any verl math parquet) and check its schema.

    Raises:
        DataError: missing file, unreadable parquet, missing columns, or a row without prompt/ground truth.
    """
    from sspo_verl.data.readers import read_parquet

    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file; create it with `sspo-data prepare ...` (see sspo-data --help)")
    rows = read_parquet(path)
    if not rows:
        raise DataError(f"{path}: empty parquet")
    missing = [c for c in REQUIRED_COLUMNS if c not in rows[0]]
    if missing:
        raise DataError(f"{path}: missing columns {missing}; have {sorted(rows[0])}. Was it written by sspo-data?")
    for i, row in enumerate(rows):
        prompt, reward = row.get("prompt"), row.get("reward_model") or {}
        if not prompt or not all(isinstance(m, dict) and m.get("content") for m in prompt):
            raise DataError(f"{path} row {i}: empty or malformed 'prompt' (need a list of role/content messages)")
        if reward.get("ground_truth") in (None, ""):
            raise DataError(f"{path} row {i}: empty reward_model.ground_truth")
    return rows
