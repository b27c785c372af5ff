"""``sspo-data``: prepare math training and evaluation sets as verl parquet files.

    sspo-data list
    sspo-data prepare math500 --input ~/raw/math500/test.jsonl --out data/math500.parquet
    sspo-data prepare gsm8k --out data/gsm8k.parquet            # HF cache, else downloaded from the Hub
    sspo-data prepare-all --out-dir data --input-dir ~/raw       # every dataset found; see --help

Inputs are local files/directories, else the dataset's Hub repo at its pinned revision (`sspo-data list`): from
the local Hugging Face cache, downloaded into it when missing and the Hub is reachable (HF_ENDPOINT; never with
HF_HUB_OFFLINE=1, where only the caches are read).
Exit code 2 with a message naming the file and row on missing or corrupt input.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from sspo_verl.data.prepare import prepare_dataset
from sspo_verl.data.readers import DATA_SUFFIXES, DataError
from sspo_verl.data.sources import EVAL_BENCHMARKS, EXTRA_EVAL, SOURCES, TRAIN_SETS
from sspo_verl.data.templates import DEFAULT_TEMPLATE, TEMPLATES


def _levels(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"--levels wants comma-separated integers, got {text!r}") from None


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--template", default=DEFAULT_TEMPLATE, choices=TEMPLATES, help="prompt template (default %(default)s)"
    )
    p.add_argument("--skip-invalid", action="store_true", help="drop invalid source rows instead of failing")
    p.add_argument("--limit", type=int, default=None, help="keep at most N rows per dataset (smoke tests)")
    p.add_argument(
        "--max-prompt-tokens", type=int, default=None,
        help="drop rows whose chat prompt is longer (match sspo-train's data.max_prompt_length); needs --tokenizer",
    )
    p.add_argument("--tokenizer", default=None, help="the model's tokenizer directory, for --max-prompt-tokens")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sspo-data", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)

    sub.add_parser("list", help="list known datasets and their default sources")

    p = sub.add_parser("prepare", help="prepare one dataset")
    p.add_argument("dataset", choices=sorted(SOURCES))
    p.add_argument("--out", required=True, help="output parquet path")
    p.add_argument("--input", default=None, help="file/dir/HF id; default: the dataset's HF id from the local cache")
    p.add_argument("--config", default=None, help="HF config (sub-directory), e.g. main for gsm8k")
    p.add_argument("--split", default=None, help="split to take from a directory (default: the dataset's)")
    p.add_argument("--levels", type=_levels, default=None, help="MATH levels to keep, e.g. 3,4,5")
    _add_common(p)

    p = sub.add_parser("prepare-all", help="prepare several datasets into one directory (<name>.parquet)")
    p.add_argument("--out-dir", required=True)
    p.add_argument(
        "--input-dir",
        default=None,
        help="directory holding <name>.jsonl|.json|.parquet or <name>/ per dataset; "
        "datasets not found there are read from the HF cache or downloaded",
    )
    p.add_argument(
        "--datasets",
        default=",".join(TRAIN_SETS + EVAL_BENCHMARKS + EXTRA_EVAL),
        help="comma-separated names (default: all); 'eval' and 'train' expand to their groups",
    )
    _add_common(p)
    return parser


def _expand(names: str) -> list[str]:
    out: list[str] = []
    for name in (n.strip() for n in names.split(",") if n.strip()):
        group = {"train": TRAIN_SETS, "eval": EVAL_BENCHMARKS + EXTRA_EVAL}.get(name, (name,))
        for item in group:
            if item not in SOURCES:
                raise DataError(f"unknown dataset {item!r}; known: {', '.join(SOURCES)}")
            if item not in out:
                out.append(item)
    return out


def _local_input(input_dir: Path, name: str) -> str | None:
    for suffix in DATA_SUFFIXES:
        if (input_dir / f"{name}{suffix}").is_file():
            return str(input_dir / f"{name}{suffix}")
    return str(input_dir / name) if (input_dir / name).is_dir() else None


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "list":
            for spec in SOURCES.values():
                config = f" config {spec.hf_config}" if spec.hf_config else ""
                revision = spec.revision or "main (not pinned)"
                print(f"{spec.name:15s} {spec.role:5s} {spec.hf_id}@{revision}{config} [{spec.hf_split}]  "
                      f"{spec.description}")
            return 0
        if args.command == "prepare":
            report = prepare_dataset(
                args.dataset, args.out, input_path=args.input, template=args.template, config=args.config,
                split=args.split, levels=args.levels, skip_invalid=args.skip_invalid, limit=args.limit,
                max_prompt_tokens=args.max_prompt_tokens, tokenizer_path=args.tokenizer,
            )
            print(report.summary())
            return 0
        names = _expand(args.datasets)
        if args.input_dir and not Path(args.input_dir).is_dir():
            raise DataError(f"--input-dir {args.input_dir} is not a directory")
        out_dir = Path(args.out_dir)
        for name in names:
            local = _local_input(Path(args.input_dir), name) if args.input_dir else None
            report = prepare_dataset(
                name, out_dir / f"{name}.parquet", input_path=local, template=args.template,
                skip_invalid=args.skip_invalid, limit=args.limit, max_prompt_tokens=args.max_prompt_tokens,
                tokenizer_path=args.tokenizer,
            )
            print(report.summary())
        return 0
    except DataError as exc:
        print(f"sspo-data: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
