"""What ``recipes/slurm/train.sbatch`` runs on the job's nodes (``python -m sspo_verl.cluster COMMAND``).

    head-ip      the head node's IPv4 address for Ray, NCCL and Gloo (an interface's, or the host name's)
    node-check   one node can run the trainer: the command is on PATH, the run directory is shared, verl imports
                 with SSPO registered, torch sees the GPUs, the model and tokenizer load here (a local path, this
                 node's HF cache, or the Hub answering); with --collective, one bounded all_reduce across the nodes
                 over the interface NCCL / Gloo will use (collective.py)
    probe        waits until the Ray cluster has its nodes and GPUs, bounded, naming the nodes that are missing
                 (:func:`sspo_verl.ray_probe.wait_for_cluster`, the probe pre-flight uses too)

Each prints one result line the script reads (``SSPO_<WHAT> ...``) and exits non-zero with the reason on that line.
Nothing here is imported by the trainer; only ``node-check`` imports verl and torch, and only when it runs.
"""
