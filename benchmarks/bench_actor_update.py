"""One actor update through verl's real worker on a large-vocabulary model: GRPO against SSPO, on CPU or CUDA.

Not a test: prints what it measured in one run, with the conditions (``--json``: also as JSON).

    python benchmarks/bench_actor_update.py                       # defaults below, CPU (or CUDA when present)
    python benchmarks/bench_actor_update.py --repeats 9 --threads 2
    python benchmarks/bench_actor_update.py --device cuda --shape qwen2-0.5b --variants grpo,sspo_token,sspo_old

What runs: verl's ``ActorRolloutRefWorker(role="actor")`` (its ``TrainingWorker``, FSDP2 engine, optimizer,
``ppo_loss`` with the sspo_verl plugin) built in this process (rank 0 of 1) from the composed ``sspo-train``
config, on a random-weight Qwen2 with Qwen2.5's vocabulary size (V = 151,936, tied embeddings; ``--shape small``:
hidden 256, 2 layers; ``qwen2-0.5b``: Qwen2.5-0.5B's shape, 0.49B parameters) and a synthetic word-level
tokenizer of the same size (every 13th piece ends with a comma, so SSPO has subsentences).
``--device cpu``: ``hardware=cpu`` (VERL_PLATFORM=cpu, float32, gloo). ``--device cuda``: ``hardware=gpu_1x8``
with one GPU and FSDP2, VERL_PLATFORM unset (verl's CUDA platform, NCCL), verl's default bf16 mixed precision and
gradient checkpointing, SDPA attention on padded micro-batches (no flash-attn needed), no torch.compile.
One update = ``update_actor`` on one mini-batch (one optimizer step, lr 0 so every round does the same work) in
verl's V1 layout: every per-response field nested (jagged); old log-probs and the sampling policy's ``entropy``
are the worker's own ``compute_log_prob`` output (float32, as the V1 trainer stores them) with per-token noise
``--old-noise`` added to the old log-probs so that ratios leave the clip range; dynamic batching splits the
mini-batch into micro-batches. Variants:

    grpo           verl's vanilla loss (calculate_entropy off)
    sspo_token     SSPO at token granularity, entropy clip off, grpo's token-mean: must equal grpo (--tolerance)
    sspo_current   SSPO, entropy_source=current: calculate_entropy on, H and μ from π_θ per micro-batch
    sspo_old       SSPO, entropy_source=old (the preset): calculate_entropy off, H the batch's stored entropy,
                   μ the rollout batch's (attached as the V1 trainer's wrapped _update_actor attaches it)

GRPO ≡ SSPO-token: with grpo and sspo_token both run, their first updates (same weights, same batch) must
report the same ``loss`` and ``grad_norm`` to ``--tolerance`` (relative; default 1e-5 on CPU, where the update is
deterministic and the two losses differ by float32 rounding only; 1e-3 on CUDA, where the bf16 backward of
attention and reductions may be non-deterministic run to run). Every SSPO variant's loss and grad norm must
be finite.

Time: median of ``--repeats`` interleaved rounds (one update per variant in turn), after one warm-up update per
variant; wall time (synchronised on CUDA) and this process's CPU time. Peak memory: on CPU a fresh process per
variant, one warm-up update, then the resident high-water mark of one update above the resident size before it
(glibc told to mmap every block of 64 KiB or more, so freed tensors leave RSS at once); on CUDA in this process,
``torch.cuda.max_memory_allocated`` of one update above the memory allocated before it ("extra"), and the
variant's whole peak = its worker's own resident memory after the warm-up (parameters, gradients, AdamW
state) + that extra, printed next to ``sspo_verl.preflight.memory.estimate`` of the same config (update phase,
without the runtime term that torch's counter does not see).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time

from conditions import conditions, load  # benchmarks/conditions.py (this script's directory)
from rss import CHILD_ENV, peak_rss_growth  # benchmarks/rss.py (this script's directory)

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

VARIANTS = ("grpo", "sspo_token", "sspo_current", "sspo_old")
DEFAULT_VARIANTS = ("grpo", "sspo_current", "sspo_old")
VOCAB = 151_936
# Qwen2 shapes with Qwen2.5's vocabulary: hidden, layers, attention heads, KV heads, intermediate size
SHAPES = {
    "small": dict(hidden=256, layers=2, heads=4, kv_heads=2, intermediate=1024),
    "qwen2-0.5b": dict(hidden=896, layers=24, heads=14, kv_heads=2, intermediate=4864),  # Qwen2.5-0.5B
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _single_process_env(device: str) -> None:
    """This process is rank 0 of 1 (what Ray and sspo-train give a trainer worker): on the CPU platform for
    ``cpu``; for ``cuda`` verl's own platform detection, so VERL_PLATFORM must not name another."""
    if device == "cpu":
        os.environ.setdefault("VERL_PLATFORM", "cpu")
    elif os.environ.get("VERL_PLATFORM", "cuda").strip().lower() not in ("", "cuda", "nvidia"):
        raise SystemExit(f"--device cuda with VERL_PLATFORM={os.environ['VERL_PLATFORM']!r}: unset VERL_PLATFORM "
                         "(verl then detects CUDA) or run with --device cpu")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    for key, value in (("RANK", "0"), ("LOCAL_RANK", "0"), ("WORLD_SIZE", "1"), ("LOCAL_WORLD_SIZE", "1"),
                       ("MASTER_ADDR", "127.0.0.1"), ("MASTER_PORT", str(_free_port()))):
        os.environ.setdefault(key, value)


def build_model(out_dir: str, hidden: int, layers: int, heads: int = 4, kv_heads: int = 2,
                intermediate: int | None = None, dtype: str = "float32", device: str = "cpu") -> str:
    """Random Qwen2 with V = 151,936 and a word-level tokenizer of the same size, saved to ``out_dir`` in ``dtype``
    (its random initialisation runs on ``device``: seconds for 0.5B parameters on a GPU)."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    words = [f"w{i}," if i % 13 == 12 else f"w{i}" for i in range(VOCAB - len(specials))]
    vocab = {w: i for i, w in enumerate(words + specials)}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<|endoftext|>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    hf_tok = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>",
                                     additional_special_tokens=["<|im_start|>"])
    hf_tok.save_pretrained(out_dir)
    torch.manual_seed(0)
    config = Qwen2Config(vocab_size=VOCAB, hidden_size=hidden, intermediate_size=intermediate or 4 * hidden,
                         num_hidden_layers=layers, num_attention_heads=heads, num_key_value_heads=kv_heads,
                         max_position_embeddings=4096, tie_word_embeddings=True,
                         eos_token_id=vocab["<|im_end|>"], pad_token_id=vocab["<|endoftext|>"])
    with torch.device(device):
        model = Qwen2ForCausalLM(config)
    model.to(getattr(torch, dtype)).save_pretrained(out_dir)
    del model
    if device == "cuda":
        torch.cuda.empty_cache()
    return out_dir


def compose_overrides(variant: str, model_dir: str, args) -> list[str]:
    """The ``sspo-train`` overrides of this variant on ``args.device`` (what the update runs with)."""
    algorithm = "grpo" if variant == "grpo" else "sspo"
    if args.device == "cpu":
        overrides = ["hardware=cpu", "model=tiny", "rollout=hf"]
    else:
        overrides = ["hardware=gpu_1x8", "trainer.n_gpus_per_node=1", "rollout=hf",
                     "actor_rollout_ref.actor.strategy=fsdp2",  # FSDP2 as on CPU (verl default fsdp: FSDP1)
                     # SDPA on padded micro-batches: the path that needs no flash-attn (verl default
                     # flash_attention_2 with remove-padding)
                     "+actor_rollout_ref.model.override_config.attn_implementation=sdpa",
                     "actor_rollout_ref.model.use_remove_padding=false",
                     # no compile: minutes of inductor would dominate a one-call proof
                     "actor_rollout_ref.actor.use_torch_compile=false",
                     "actor_rollout_ref.actor.fsdp_config.use_torch_compile=false"]
    overrides += [f"algorithm={algorithm}",
                  f"actor_rollout_ref.model.path={model_dir}",
                  "actor_rollout_ref.actor.use_dynamic_bsz=true",
                  "actor_rollout_ref.rollout.log_prob_use_dynamic_bsz=true",
                  f"actor_rollout_ref.actor.ppo_max_token_len_per_gpu={args.token_budget}",
                  f"actor_rollout_ref.rollout.log_prob_max_token_len_per_gpu={args.token_budget}",
                  "actor_rollout_ref.actor.optim.lr=0.0"]  # same weights in every round (the work is the same)
    if variant == "sspo_token":  # GRPO's loss written as SSPO: one token per segment, no entropy clip, GRPO's
        overrides += ["actor_rollout_ref.actor.policy_loss.granularity=token",  # aggregation (token-mean)
                      "actor_rollout_ref.actor.policy_loss.entropy_clip=false",
                      "actor_rollout_ref.actor.loss_agg_mode=token-mean"]
    if variant == "sspo_current":
        overrides += ["actor_rollout_ref.actor.policy_loss.entropy_source=current",
                      "actor_rollout_ref.actor.calculate_entropy=true"]
    return overrides


def compose_actor_config(variant: str, model_dir: str, args):
    """The config sspo-train composes for this variant (with the CPU backend applied on ``cpu``)."""
    from sspo_verl.train import compose

    config = compose(compose_overrides(variant, model_dir, args))
    if args.device == "cpu":
        from sspo_verl.cpu.launch import apply_to_config

        apply_to_config(config)
    return config


def build_worker(variant: str, model_dir: str, args):
    from verl.workers.engine_workers import ActorRolloutRefWorker

    from sspo_verl.adapter.plugin import ensure_registered, register

    register()  # idempotent; verl's entry point already did it where sspo-verl is installed
    ensure_registered()
    config = compose_actor_config(variant, model_dir, args)
    worker = ActorRolloutRefWorker(config=config.actor_rollout_ref, role="actor")
    worker.init_model()
    return worker, config


def v1_batch(args, calculate_entropy: bool, entropy_mean: float | None, old=None):
    """One mini-batch as the V1 trainer's TransferQueue holds it (nested fields) plus the update's settings.

    ``old``: ``(old_log_probs, entropy)`` lists of per-response float32 tensors (from :func:`old_policy`); None:
    random placeholders (what :func:`old_policy` feeds the worker's ``compute_log_prob``).
    """
    import torch
    from tensordict import TensorDict
    from verl.utils import tensordict_utils as tu

    from sspo_verl.adapter.entropy_reference import ENTROPY_MEAN_KEY

    g = torch.Generator().manual_seed(0)
    n, p_len = args.responses, args.prompt_len
    r_lens = torch.randint(args.response_len // 2, args.response_len + 1, (n,), generator=g)
    nested = lambda rows: torch.nested.as_nested_tensor(list(rows), layout=torch.jagged)  # noqa: E731
    prompts = [torch.randint(0, VOCAB - 3, (p_len,), generator=g) for _ in range(n)]
    responses = [torch.randint(0, VOCAB - 3, (int(r),), generator=g) for r in r_lens]
    input_ids = [torch.cat([p, r]) for p, r in zip(prompts, responses)]
    masks = [torch.ones(int(r), dtype=torch.long) for r in r_lens]
    olds = [-torch.rand(int(r), generator=g) * 3 for r in r_lens]
    ents = [torch.rand(int(r), generator=g) * 3 for r in r_lens]
    advs = [torch.randn(1, generator=g).expand(int(r)).clone() for r in r_lens]
    if old is not None:
        olds, ents = old
    td = TensorDict(dict(prompts=nested(prompts), responses=nested(responses), input_ids=nested(input_ids),
                         attention_mask=nested([torch.ones_like(x) for x in input_ids]),
                         position_ids=nested([torch.arange(len(x)) for x in input_ids]),
                         response_mask=nested(masks), loss_mask=nested(masks), old_log_probs=nested(olds),
                         entropy=nested(ents), advantages=nested(advs)), batch_size=[n])
    settings = dict(calculate_entropy=calculate_entropy, global_batch_size=n, mini_batch_size=n, epochs=1,
                    seed=0, dataloader_kwargs={"shuffle": False}, temperature=1.0)
    if entropy_mean is not None:
        settings[ENTROPY_MEAN_KEY] = entropy_mean
    tu.assign_non_tensor(td, **settings)
    return td


def old_policy(worker, args):
    """The sampling policy's per-response log-probs (+ ``args.old_noise`` · N(0, 1) per token, so that ratios leave
    the clip range) and entropy, from the worker's own ``compute_log_prob`` as verl's trainer calls it, float32."""
    import torch
    from verl.utils import tensordict_utils as tu
    from verl.workers.utils.padding import no_padding_2_padding

    td = v1_batch(args, calculate_entropy=True, entropy_mean=None)
    lengths = [int(x.numel()) for x in td["responses"].unbind()]
    tu.assign_non_tensor(td, calculate_entropy=True, compute_loss=False)
    out = worker.compute_log_prob(td)
    log_probs = no_padding_2_padding(tu.get(out, "log_probs"), td).float()  # (n, R) as verl's trainer stores them
    entropy = no_padding_2_padding(tu.get(out, "entropy"), td).float()
    g = torch.Generator().manual_seed(1)
    olds = [log_probs[i, :r] + args.old_noise * torch.randn(r, generator=g) for i, r in enumerate(lengths)]
    return olds, [entropy[i, :r] for i, r in enumerate(lengths)]


def update_fn(variant: str, worker, args, old):
    from sspo_verl.adapter.entropy_reference import rollout_entropy_mean

    calculate_entropy = variant == "sspo_current"
    probe = v1_batch(args, calculate_entropy, None, old)
    mu = rollout_entropy_mean(probe["entropy"], probe["response_mask"]) if variant == "sspo_old" else None

    def update():
        out = worker.update_actor(v1_batch(args, calculate_entropy, mu, old))  # a fresh batch: verl pops settings
        return out

    return update


def update_figures(output) -> dict:
    """loss and grad norm of one update (verl's ``update_actor`` metrics)."""
    from verl.utils import tensordict_utils as tu

    metrics = tu.get(output, "metrics")

    def mean(x):  # verl lists one value per mini-batch (one here)
        x = x if isinstance(x, (list, tuple)) else [x]
        return sum(float(v) for v in x) / len(x)

    return {"loss": mean(metrics["loss"]), "grad_norm": mean(metrics["grad_norm"]),
            "pg_clipfrac": mean(metrics.get("actor/pg_clipfrac", [float("nan")]))}


def check_equivalence(first: dict, tolerance: float) -> list[str]:
    """GRPO ≡ SSPO-token and finite SSPO figures; the failures as sentences (empty: all hold)."""
    import math

    failures = []
    for v, fig in first.items():
        if not all(math.isfinite(x) for x in fig.values()):
            failures.append(f"{v}: non-finite update figures {fig}")
    if "grpo" in first and "sspo_token" in first:
        for key in ("loss", "grad_norm", "pg_clipfrac"):
            a, b = first["grpo"][key], first["sspo_token"][key]
            if not abs(a - b) <= tolerance * max(abs(a), abs(b), 1e-30):
                failures.append(f"grpo {key} {a!r} != sspo_token {key} {b!r} (relative tolerance {tolerance:g})")
    return failures


def check_metrics(variant: str, output) -> None:
    """The update ran the variant's loss: SSPO metrics for SSPO only, verl's entropy loss only with entropy on."""
    from verl.utils import tensordict_utils as tu

    keys = set(tu.get(output, "metrics"))
    sspo = any(k.startswith("actor/sspo/") for k in keys)
    entropy = "actor/entropy_loss" in keys
    if sspo != (variant != "grpo") or entropy != (variant == "sspo_current"):
        raise RuntimeError(f"{variant}: unexpected update metrics (SSPO metrics {sspo}, entropy loss {entropy}): "
                           f"{sorted(keys)}")



def peak_memory_child(args) -> None:
    _single_process_env(args.device)
    worker, _ = build_worker(args.child, args.model_dir, args)
    update = update_fn(args.child, worker, args, old_policy(worker, args))
    update()
    print(json.dumps({"peak": peak_rss_growth(update)}))


def peak_memory(variant: str, args) -> int:
    """CPU: the variant's resident high-water mark of one update, in a fresh process."""
    cmd = [sys.executable, __file__, "--child", variant, "--model-dir", args.model_dir, "--responses",
           str(args.responses), "--prompt-len", str(args.prompt_len), "--response-len", str(args.response_len),
           "--token-budget", str(args.token_budget), "--threads", str(args.threads), "--device", args.device,
           "--old-noise", str(args.old_noise)]
    # its own rendezvous port: this process still holds the one it put in MASTER_PORT
    env = dict(os.environ, **CHILD_ENV, MASTER_PORT=str(_free_port()))
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=1200, env=env)
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-3000:])
    return json.loads(out.stdout.strip().splitlines()[-1])["peak"]


def memory_estimate(config, model_dir: str) -> int | None:
    """``sspo_verl.preflight.memory.estimate`` of the update phase without its runtime term, in bytes (None where
    the estimate is not there)."""
    try:
        from sspo_verl.preflight.files import read_model_config
        from sspo_verl.preflight.memory import estimate, relative_error
    except ImportError:
        return None
    model_config, _ = read_model_config(model_dir)
    est_bytes, _ = relative_error(estimate(config, model_config), 1)
    return est_bytes


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", choices=("cpu", "cuda"), default=None, help="default: cuda when present")
    parser.add_argument("--variants", default=",".join(DEFAULT_VARIANTS), help=f"comma-separated, of {VARIANTS}")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--responses", type=int, default=8, help="responses in the mini-batch")
    parser.add_argument("--prompt-len", type=int, default=32)
    parser.add_argument("--response-len", type=int, default=224, help="responses have [len/2, len] tokens")
    parser.add_argument("--token-budget", type=int, default=1024, help="ppo_max_token_len_per_gpu")
    parser.add_argument("--shape", choices=tuple(SHAPES), default="small", help="the Qwen2 shape (V = 151,936)")
    parser.add_argument("--hidden", type=int, default=None, help="override the shape's hidden size")
    parser.add_argument("--layers", type=int, default=None, help="override the shape's layer count")
    parser.add_argument("--old-noise", type=float, default=0.2,
                        help="std of the per-token noise added to the worker's log-probs to make old log-probs")
    parser.add_argument("--tolerance", type=float, default=None,
                        help="relative tolerance of GRPO = SSPO-token (default 1e-5 on cpu, 1e-3 on cuda)")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch default)")
    parser.add_argument("--no-memory", action="store_true", help="skip the per-variant peak-memory measurement")
    parser.add_argument("--json", default=None, help="also write the conditions and rows to this JSON file")
    parser.add_argument("--model-dir", default=None)
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    import torch

    if args.device is None:
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    unknown = [v for v in args.variants.split(",") if v and v not in VARIANTS]
    if unknown:
        parser.error(f"--variants {args.variants}: unknown {unknown}; choose from {', '.join(VARIANTS)}")
    shape = dict(SHAPES[args.shape])
    shape.update({k: getattr(args, k) for k in ("hidden", "layers") if getattr(args, k) is not None})
    args.model_shape = shape
    if args.tolerance is None:
        args.tolerance = 1e-5 if args.device == "cpu" else 1e-3
    return args


def run(args) -> dict:
    """Build, warm up, check and time every variant; the figures as a dict (see :func:`main` for the table)."""
    import torch

    cuda = args.device == "cuda"
    if cuda and not torch.cuda.is_available():
        raise SystemExit("--device cuda: torch sees no CUDA device")
    variants = [v for v in args.variants.split(",") if v]
    cond = conditions()

    def sync():
        if cuda:
            torch.cuda.synchronize()

    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        if args.model_dir is None:
            args.model_dir = build_model(tmp, dtype="bfloat16" if cuda else "float32", device=args.device,
                                         **args.model_shape)
        build_s = time.perf_counter() - t0
        _single_process_env(args.device)
        workers, configs, resident, first, old, estimates = {}, {}, {}, {}, None, {}
        updates = {}
        t0 = time.perf_counter()
        for v in variants:
            before = torch.cuda.memory_allocated() if cuda else 0
            workers[v], configs[v] = build_worker(v, args.model_dir, args)
            if old is None:
                old = old_policy(workers[v], args)  # the sampling policy: the first worker's (same weights in all)
            updates[v] = update_fn(v, workers[v], args, old)
            out = updates[v]()  # warm-up (first boundary-table build, allocator, optimizer state)
            check_metrics(v, out)  # the loss that ran
            first[v] = update_figures(out)
            sync()
            if cuda:
                resident[v] = torch.cuda.memory_allocated() - before  # this worker's params, grads, AdamW state
            estimates[v] = memory_estimate(configs[v], args.model_dir)
        setup_s = time.perf_counter() - t0
        failures = check_equivalence(first, args.tolerance)

        wall = {v: [] for v in variants}
        cpu = {v: [] for v in variants}
        for r in range(args.repeats):
            for v in (variants if r % 2 == 0 else list(reversed(variants))):
                sync()
                t0, c0 = time.perf_counter(), time.process_time()
                updates[v]()
                sync()
                wall[v].append(time.perf_counter() - t0)
                cpu[v].append(time.process_time() - c0)
        load_after_timing = load()
        extra, peak = {}, {}
        if cuda and not args.no_memory:
            for v in variants:
                sync()
                base = torch.cuda.memory_allocated()
                torch.cuda.reset_peak_memory_stats()
                updates[v]()
                sync()
                extra[v] = torch.cuda.max_memory_allocated() - base
                peak[v] = resident[v] + extra[v]
        del workers, updates
        if not cuda and not args.no_memory:
            extra = {v: peak_memory(v, args) for v in variants}

    med = statistics.median
    rows = []
    for v in variants:
        base_w, base_c = med(wall.get("grpo", wall[v])), med(cpu.get("grpo", cpu[v]))
        rows.append(dict(variant=v, wall_s=med(wall[v]), wall_x_grpo=med(wall[v]) / base_w, cpu_s=med(cpu[v]),
                         cpu_x_grpo=med(cpu[v]) / base_c, extra_mib=extra[v] / 2**20 if v in extra else None,
                         extra_x_grpo=extra[v] / max(extra.get("grpo", extra[v]), 1) if v in extra else None,
                         peak_gib=peak[v] / 2**30 if v in peak else None,
                         estimate_gib=estimates[v] / 2**30 if estimates.get(v) else None,
                         loss=first[v]["loss"], grad_norm=first[v]["grad_norm"], pg_clipfrac=first[v]["pg_clipfrac"],
                         wall_rounds_s=wall[v]))
    shape = args.model_shape
    return dict(
        conditions=dict(cond, device=args.device, device_name=torch.cuda.get_device_name() if cuda else None,
                        threads=torch.get_num_threads(), load_after_timing=load_after_timing, shape=args.shape,
                        vocab=VOCAB, **shape,
                        dtype="bf16 mixed precision (fp32 master)" if cuda else "float32",
                        responses=args.responses, prompt_len=args.prompt_len, response_len=args.response_len,
                        token_budget=args.token_budget, repeats=args.repeats, old_noise=args.old_noise,
                        tolerance=args.tolerance, model_build_s=build_s, setup_s=setup_s),
        rows=rows, failures=failures)


def table(result: dict) -> str:
    c = result["conditions"]
    device = c["device"] + (f" ({c['device_name']})" if c["device_name"] else "")
    lines = [
        f"# bench_actor_update  device={device}  torch={c['torch']}  threads={c['threads']}  cpu={c['cpu']}  "
        f"cores={c['logical_cpus']}  commit={c['commit']}  verl={c.get('verl')}  {c['date']}  "
        f"load before: {c['load_before']}, after timing: {c['load_after_timing']}",
        f"# Qwen2 {c['shape']}: V={c['vocab']} hidden={c['hidden']} layers={c['layers']} heads={c['heads']}/"
        f"{c['kv_heads']} I={c['intermediate']} {c['dtype']}; {c['responses']} responses x ({c['prompt_len']} prompt + "
        f"{c['response_len'] // 2}-{c['response_len']} response) tokens, ppo_max_token_len_per_gpu={c['token_budget']}; "
        f"median of {c['repeats']} interleaved rounds; model built in {c['model_build_s']:.0f} s, workers + warm-up "
        f"{c['setup_s']:.0f} s",
        "| variant | update wall s | × grpo | update CPU s | × grpo | peak extra MiB | × grpo | peak GiB | estimate GiB "
        "| loss | grad norm | pg_clipfrac |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    fmt = lambda x, f: "" if x is None else format(x, f)  # noqa: E731
    for r in result["rows"]:
        lines.append(f"| {r['variant']} | {r['wall_s']:.3f} | {r['wall_x_grpo']:.3f} | {r['cpu_s']:.3f} | "
                     f"{r['cpu_x_grpo']:.3f} | {fmt(r['extra_mib'], '.0f')} | {fmt(r['extra_x_grpo'], '.3f')} | "
                     f"{fmt(r['peak_gib'], '.2f')} | {fmt(r['estimate_gib'], '.2f')} | {r['loss']:.6g} | "
                     f"{r['grad_norm']:.6g} | {r['pg_clipfrac']:.3f} |")
    lines.append("# checks: " + ("; ".join(result["failures"]) if result["failures"] else
                                 "all update figures finite" + (f"; grpo = sspo_token (loss, grad norm, pg_clipfrac) to "
                                                                f"{c['tolerance']:g} relative"
                                                                if {"grpo", "sspo_token"} <= {r["variant"] for r in
                                                                                              result["rows"]} else "")))
    return "\n".join(lines)


def main(argv=None):
    args = parse_args(argv)
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.child:
        return peak_memory_child(args)
    result = run(args)
    print(table(result))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)
    if result["failures"]:
        raise SystemExit("bench_actor_update: " + "; ".join(result["failures"]))


if __name__ == "__main__":
    main()
