"""Datasets as verl parquet: the math training and evaluation sets ``sspo-data`` prepares, and the tiny task.

Public API:
    prepare.prepare_dataset     read, convert, validate and write one dataset
    prepare.build_rows          records → verl rows (validation, MATH level filter, dedup)
    prepare.read_verl_rows      read a verl parquet back, checking its schema (used by ``sspo-eval``)
    readers.resolve_records     local file/dir, or the offline Hub / ``datasets`` cache
    sources.SOURCES             the known datasets (train: math_l35, dapo_math_17k, gsm8k;
                                eval: aime24, amc23, math500, minerva_math, olympiadbench, aime25)
    sources.DISPLAY             each evaluation set's column title in tables (sspo-eval, sweeps, sspo-report)
    templates.build_prompt      the Qwen-Math ``\\boxed{}`` prompt templates
    tiny_task                   the tiny synthetic task: its parquet files (write_dataset) and reward (compute_score)
"""
