"""One actor update through verl's real worker on a large-vocabulary model: GRPO against SSPO, per entropy source.

Not a test: prints what it measured in one run, with the conditions.

    python benchmarks/bench_actor_update.py                       # defaults below, CPU
    python benchmarks/bench_actor_update.py --repeats 9 --threads 2

What runs: verl's ``ActorRolloutRefWorker(role="actor")`` (its ``TrainingWorker``, FSDP2 engine, optimizer,
``ppo_loss`` with the sspo_verl plugin) built in this process from the composed ``sspo-train`` config
(``hardware=cpu algorithm=<grpo|sspo>``), on a random-weight Qwen2 with Qwen2.5's vocabulary size
(V = 151,936, hidden 256, 2 layers, tied embeddings, float32) and a synthetic word-level tokenizer of the same
size (every 13th piece ends with a comma, so SSPO has subsentences). One update = ``update_actor`` on one
mini-batch (one optimizer step) in verl's V1 layout: every per-response field nested (jagged), the sampling
policy's ``entropy`` stored per response, as the V1 trainer's TransferQueue holds them; dynamic batching splits
it into micro-batches. Variants:

    grpo           verl's vanilla loss (calculate_entropy off)
    sspo_current   SSPO, entropy_source=current: calculate_entropy on, H and μ from π_θ per micro-batch
    sspo_old       SSPO, entropy_source=old (the preset): calculate_entropy off, H the batch's stored entropy,
                   μ the rollout batch's (attached as the V1 trainer's wrapped _update_actor attaches it)

Time: median of ``--repeats`` interleaved rounds (one update per variant in turn), after one warm-up update per
variant; wall time and this process's CPU time. Peak memory: a fresh process per variant, one warm-up update,
then the resident high-water mark of one update above the resident size before it (glibc told to mmap every
block of 64 KiB or more, so freed tensors leave RSS at once).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time

from rss import CHILD_ENV, peak_rss_growth  # benchmarks/rss.py (this script's directory)

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

VARIANTS = ("grpo", "sspo_current", "sspo_old")
VOCAB = 151_936


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _single_process_env() -> None:
    """This process is rank 0 of 1 on the CPU platform (what Ray and sspo-train give a trainer worker)."""
    os.environ.setdefault("VERL_PLATFORM", "cpu")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    for key, value in (("RANK", "0"), ("LOCAL_RANK", "0"), ("WORLD_SIZE", "1"), ("LOCAL_WORLD_SIZE", "1"),
                       ("MASTER_ADDR", "127.0.0.1"), ("MASTER_PORT", str(_free_port()))):
        os.environ.setdefault(key, value)


def build_model(out_dir: str, hidden: int, layers: int) -> str:
    """Random Qwen2 with V = 151,936 and a word-level tokenizer of the same size, saved to ``out_dir``."""
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
    config = Qwen2Config(vocab_size=VOCAB, hidden_size=hidden, intermediate_size=4 * hidden,
                         num_hidden_layers=layers, num_attention_heads=4, num_key_value_heads=2,
                         max_position_embeddings=4096, tie_word_embeddings=True,
                         eos_token_id=vocab["<|im_end|>"], pad_token_id=vocab["<|endoftext|>"])
    Qwen2ForCausalLM(config).save_pretrained(out_dir)
    return out_dir


def compose_actor_config(variant: str, model_dir: str, args):
    """The ``actor_rollout_ref`` section sspo-train composes for this variant, with the CPU backend applied."""
    from sspo_verl.cpu.launch import apply_to_config
    from sspo_verl.train import compose

    algorithm = "grpo" if variant == "grpo" else "sspo"
    overrides = ["hardware=cpu", "model=tiny", "rollout=hf", f"algorithm={algorithm}",
                 f"actor_rollout_ref.model.path={model_dir}",
                 "actor_rollout_ref.actor.use_dynamic_bsz=true",
                 "actor_rollout_ref.rollout.log_prob_use_dynamic_bsz=true",
                 f"actor_rollout_ref.actor.ppo_max_token_len_per_gpu={args.token_budget}",
                 f"actor_rollout_ref.rollout.log_prob_max_token_len_per_gpu={args.token_budget}",
                 "actor_rollout_ref.actor.optim.lr=0.0"]  # same weights in every round (the work is the same)
    if variant == "sspo_current":
        overrides += ["actor_rollout_ref.actor.policy_loss.entropy_source=current",
                      "actor_rollout_ref.actor.calculate_entropy=true"]
    config = compose(overrides)
    apply_to_config(config)
    return config


def build_worker(variant: str, model_dir: str, args):
    from verl.workers.engine_workers import ActorRolloutRefWorker

    config = compose_actor_config(variant, model_dir, args)
    worker = ActorRolloutRefWorker(config=config.actor_rollout_ref, role="actor")
    worker.init_model()
    return worker, config


def v1_batch(args, calculate_entropy: bool, entropy_mean: float | None):
    """One mini-batch as the V1 trainer's TransferQueue holds it (nested fields) plus the update's settings."""
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


def update_fn(variant: str, worker, args):
    from sspo_verl.adapter.entropy_reference import rollout_entropy_mean

    calculate_entropy = variant == "sspo_current"
    probe = v1_batch(args, calculate_entropy, None)
    mu = rollout_entropy_mean(probe["entropy"], probe["response_mask"]) if variant == "sspo_old" else None

    def update():
        out = worker.update_actor(v1_batch(args, calculate_entropy, mu))  # a fresh batch: verl pops settings
        return out

    return update


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
    _single_process_env()
    worker, _ = build_worker(args.child, args.model_dir, args)
    update = update_fn(args.child, worker, args)
    update()
    print(json.dumps({"peak": peak_rss_growth(update)}))


def peak_memory(variant: str, args) -> int:
    cmd = [sys.executable, __file__, "--child", variant, "--model-dir", args.model_dir, "--responses",
           str(args.responses), "--prompt-len", str(args.prompt_len), "--response-len", str(args.response_len),
           "--token-budget", str(args.token_budget), "--threads", str(args.threads)]
    # its own rendezvous port: this process still holds the one it put in MASTER_PORT
    env = dict(os.environ, **CHILD_ENV, MASTER_PORT=str(_free_port()))
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=1200, env=env)
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-3000:])
    return json.loads(out.stdout.strip().splitlines()[-1])["peak"]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--responses", type=int, default=8, help="responses in the mini-batch")
    parser.add_argument("--prompt-len", type=int, default=32)
    parser.add_argument("--response-len", type=int, default=224, help="responses have [len/2, len] tokens")
    parser.add_argument("--token-budget", type=int, default=1024, help="ppo_max_token_len_per_gpu")
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch default)")
    parser.add_argument("--no-memory", action="store_true", help="skip the per-variant peak-memory processes")
    parser.add_argument("--model-dir", default=None)
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.child:
        return peak_memory_child(args)
    variants = [v for v in args.variants.split(",") if v]
    with tempfile.TemporaryDirectory() as tmp:
        if args.model_dir is None:
            args.model_dir = build_model(tmp, args.hidden, args.layers)
        _single_process_env()
        workers = {v: build_worker(v, args.model_dir, args)[0] for v in variants}
        updates = {v: update_fn(v, workers[v], args) for v in variants}
        for v, update in updates.items():
            check_metrics(v, update())  # warm-up (first boundary-table build, allocator), and the loss that ran
        wall = {v: [] for v in variants}
        cpu = {v: [] for v in variants}
        for r in range(args.repeats):
            for v in (variants if r % 2 == 0 else list(reversed(variants))):
                t0, c0 = time.perf_counter(), time.process_time()
                updates[v]()
                wall[v].append(time.perf_counter() - t0)
                cpu[v].append(time.process_time() - c0)
        load = " ".join(f"{x:.1f}" for x in os.getloadavg())
        del workers, updates
        mems = {} if args.no_memory else {v: peak_memory(v, args) for v in variants}

    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                            cwd=HERE).stdout.strip()
    print(f"# bench_actor_update  torch={torch.__version__}  threads={torch.get_num_threads()}  "
          f"cpu={platform.processor() or platform.machine()}  cores={os.cpu_count()}  commit={commit}  "
          f"load after timing: {load}")
    print(f"# Qwen2 V={VOCAB} hidden={args.hidden} layers={args.layers} float32; {args.responses} responses x "
          f"({args.prompt_len} prompt + {args.response_len // 2}-{args.response_len} response) tokens, "
          f"ppo_max_token_len_per_gpu={args.token_budget}; median of {args.repeats} interleaved rounds")
    print("| variant | update wall s | × grpo | update CPU s | × grpo | peak extra MiB | × grpo |")
    print("|---|---|---|---|---|---|---|")
    med = lambda xs: statistics.median(xs)  # noqa: E731
    for v in variants:
        base_w, base_c = med(wall.get("grpo", wall[v])), med(cpu.get("grpo", cpu[v]))
        mem = f"{mems[v] / 2**20:.0f} | {mems[v] / max(mems.get('grpo', mems[v]), 1):.3f}" if mems else " | "
        print(f"| {v} | {med(wall[v]):.3f} | {med(wall[v]) / base_w:.3f} | {med(cpu[v]):.3f} | "
              f"{med(cpu[v]) / base_c:.3f} | {mem} |")
    print("# per-round wall ratios vs grpo: " + "; ".join(
        f"{v}: " + ", ".join(f"{a / b:.3f}" for a, b in zip(wall[v], wall["grpo"])) for v in variants if v != "grpo")
        if "grpo" in wall else "")


if __name__ == "__main__":
    main()
