"""The embedded default and the README's main job: the real verl trainer on CPU with GRPO, GSPO and SSPO.

    python -m sspo_verl.demo            (``make demo``) build everything from a seed, train each algorithm,
                                        write runs/demo/{<algorithm>/metrics.jsonl, report.md, *.png}

Modules:
    tiny_model   build_tiny_model(out_dir, seed): random-weight Qwen2 + byte-level BPE tokenizer, no download
    assets       build_assets(tiny_dir, seed): model + the tiny task's data (sspo_verl.data.tiny_task) on disk,
                 as ``model=tiny`` reads them
    job          run_job(...): one sspo-train run in a subprocess, bounded in time, watched step by step
    report       jobs_markdown(...): the runs as jobs (times, memory, failures); figures and metric tables
                 come from sspo_verl.report.write_report, as for sspo-report
"""
