"""The embedded default and the README's main job: the real verl trainer on CPU with GRPO, GSPO and SSPO.

    python -m sspo_verl.demo            (``make demo``) build everything from a seed, train each algorithm,
                                        write runs/demo/{<algorithm>/metrics.jsonl, demo.png, summary.md}

Modules:
    tiny_model   build_tiny_model(out_dir, seed): random-weight Qwen2 + byte-level BPE tokenizer, no download
    task         the synthetic task (verl parquet rows with subsentence answers) and its reward compute_score
    assets       build_assets(tiny_dir, seed): model + data on disk, as ``model=tiny`` reads them
    job          run_job(...): one sspo-train run in a subprocess, bounded in time, watched step by step
    report       plot_comparison(...), summary_markdown(...): the demo's figure and summary
"""
