"""The verl reward function: an equivalence table, adversarial outputs, and verl's own reward manager."""

import asyncio
import threading
import time

import numpy as np
import pytest
import torch

from sspo_verl.reward import math_reward
from sspo_verl.reward.verifier_pool import VerifierPool

# (ground truth, boxed model answer): equal values in different forms.
EQUIVALENT = [
    (r"\frac{1}{2}", "0.5"),
    (r"\frac{1}{2}", r"\dfrac{1}{2}"),
    (r"\frac{1}{2}", "1/2"),
    (r"2\sqrt{2}", r"\sqrt{8}"),
    ("(1,2)", "(1, 2)"),
    (r"\{1,2\}", r"\{2,1\}"),
    ("x^2+2x+1", "(x+1)^2"),
    (r"10\%", "10"),  # percent sign is a unit (MATH convention)
    (r"90^\circ", "90"),
    ("1000", "1,000"),
    ("3", "3.0"),
    (r"\frac{\pi}{2}", r"\pi/2"),
    ("[1,2)", "[1, 2)"),
    (r"\text{(A)}", "A"),
    (r"-\frac{3}{4}", "-0.75"),
    (r"\infty", r"\infty"),
    ("5", "x=5"),
    (r"\$18", "18"),
    ("18", r"18 \text{ dollars}"),
    ("2", r"\sqrt{4}"),
    ("1.5", r"\frac32"),
    (r"\begin{pmatrix}1\\2\end{pmatrix}", r"\begin{pmatrix}1 \\ 2\end{pmatrix}"),
    (r"x\in[1,2]", "[1,2]"),
]
# (ground truth, boxed model answer): different values.
NOT_EQUIVALENT = [
    (r"\frac{1}{2}", "0.51"),
    ("2", "3"),
    ("(1,2)", "(2,1)"),
    ("x^2", "x^3"),
    ("[1,2)", "[1,2]"),
    ("10", "100"),
    (r"\sqrt{2}", "1.41"),
    ("A", "B"),
    ("-1", "1"),
    (r"\pi", "3.14"),
    ("1000", "100"),
    (r"\{1,2\}", r"\{1,2,3\}"),
]


def test_equivalence_table(pool):
    responses = [f"Some reasoning.\nThe answer is $\\boxed{{{pred}}}$." for _, pred in EQUIVALENT + NOT_EQUIVALENT]
    golds = [gold for gold, _ in EQUIVALENT + NOT_EQUIVALENT]
    results = math_reward.score_many(responses, golds, timeout_s=10, pool=pool)
    wrong = []
    for (gold, pred), result, expected in zip(
        EQUIVALENT + NOT_EQUIVALENT, results, [1.0] * len(EQUIVALENT) + [0.0] * len(NOT_EQUIVALENT)
    ):
        if result["score"] != expected or result["verify_timeout"] or result["verify_error"]:
            wrong.append((gold, pred, result))
    assert not wrong


def test_list_and_numeric_ground_truths(pool):
    assert math_reward.score_response(r"\boxed{7}", ["6", "7"], pool=pool)["score"] == 1.0
    assert math_reward.score_response(r"\boxed{7}", np.array(["6", "8"]), pool=pool)["score"] == 0.0
    assert math_reward.score_response(r"\boxed{204}", 204.0, pool=pool)["score"] == 1.0
    empty = math_reward.score_response(r"\boxed{7}", "", pool=pool)
    assert empty["score"] == 0.0 and empty["verify_error"] == 1.0


ADVERSARIAL = {
    "no answer": "I think it is 42 but I will not box it.",
    "unbalanced box": r"The answer is \boxed{42",
    "huge string": "7" * 20_000_000 + " no box",
    "huge before box": "x" * 20_000_000 + r"\boxed{41}",
    "deep nesting": r"\boxed{" + "{" * 400 + "42" + "}" * 400 + "}",
    "deep frac": r"\boxed{" + r"\frac{1}{" * 150 + "2" + "}" * 150 + "}",
    "power tower": r"\boxed{9^{9^{9^{9^{9}}}}}",
    "huge factorial": r"\boxed{99999999999999999!}",
    "binary junk": "\x00\x01\xff\ud800\x1b[31m" * 100_000 + r"\boxed{\x00\xff}",
    "latex junk": r"\boxed{\begin{array}\end{matrix}}}}\left(\right.\frac{}{}^^^__}",
    "none": None,
    "bytes": b"\xff\xfe\\boxed{42",
}


@pytest.mark.parametrize("name", sorted(ADVERSARIAL))
def test_adversarial_outputs_score_zero_and_return(pool, name):
    start = time.monotonic()
    result = math_reward.score_response(ADVERSARIAL[name], "42", timeout_s=1.0, pool=pool)
    assert result["score"] == 0.0 and result["acc"] == 0.0
    assert time.monotonic() - start < 8.0
    assert set(result) == {"score", "acc", "pred", "has_answer", "verify_timeout", "verify_error"}


def test_timeout_is_reported(pool):
    result = math_reward.score_response(r"\boxed{9^{9^{9^{9^{9}}}}}", "1", timeout_s=0.5, pool=pool)
    assert result["score"] == 0.0 and result["verify_timeout"] == 1.0 and result["has_answer"] == 1.0


def test_compute_score_signature_and_keys():
    """verl's call: keywords data_source/solution_str/ground_truth/extra_info plus reward_kwargs."""
    out = math_reward.compute_score(
        data_source="aime24",
        solution_str=r"so \boxed{\frac{6}{8}}",
        ground_truth="0.75",
        extra_info={"split": "test", "index": 0},
        timeout_s=10.0,
        reward_router_address=None,  # verl may add such keywords; they are ignored
    )
    assert out["score"] == 1.0 and out["acc"] == 1.0 and out["pred"] == r"\frac{6}{8}"
    miss = math_reward.compute_score("x", "no box", "1")
    assert set(miss) == set(out) and miss["score"] == 0.0 and miss["pred"] == ""


class _CharTokenizer:
    """Just enough tokenizer for verl's NaiveRewardManager: ids are code points."""

    eos_token = "\x03"

    def decode(self, ids, skip_special_tokens=True):
        return "".join(chr(int(i)) for i in ids)


def _verl_batch(responses, golds, width=64):
    from verl import DataProto

    ids = torch.zeros(len(responses), width, dtype=torch.long)
    mask = torch.zeros(len(responses), 4 + width, dtype=torch.long)
    for row, text in enumerate(responses):
        codes = [ord(c) for c in text][:width]
        ids[row, : len(codes)] = torch.tensor(codes)
        mask[row, : 4 + len(codes)] = 1
    return DataProto.from_dict(
        tensors={"responses": ids, "attention_mask": mask, "prompts": torch.ones(len(responses), 4, dtype=torch.long)},
        non_tensors={
            "data_source": np.array(["aime24"] * len(responses), dtype=object),
            "reward_model": np.array([{"style": "rule", "ground_truth": g} for g in golds], dtype=object),
            "extra_info": np.array([{"index": i} for i in range(len(responses))], dtype=object),
        },
    )


def test_runs_under_verl_reward_manager_threads():
    """Load the function the way verl does (custom_reward_function path pkg://...) and run verl's
    NaiveRewardManager.run_single concurrently: compute_score then runs in executor threads."""
    from omegaconf import OmegaConf

    from verl.trainer.ppo.reward import load_reward_manager

    config = OmegaConf.create(
        {
            "reward": {
                "custom_reward_function": {
                    "path": "pkg://sspo_verl.reward.math_reward",
                    "name": "compute_score",
                    "reward_kwargs": {"timeout_s": 1.0},
                },
                "reward_manager": {"source": "register", "name": "naive"},
                "sandbox_fusion": None,
            }
        }
    )
    responses = [r"\boxed{1/2}", r"\boxed{9^{9^{9^{9^{9}}}}}", "no answer", r"\boxed{3}", r"\boxed{\sqrt{9}}"]
    golds = [r"\frac{1}{2}", "1", "2", "4", "3"]
    expected = [1.0, 0.0, 0.0, 0.0, 1.0]
    data = _verl_batch(responses, golds)

    thread_names = set()
    original = math_reward.score_response

    def spy(*args, **kwargs):
        thread_names.add(threading.current_thread().name)
        return original(*args, **kwargs)

    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        math_reward.score_response = spy
        manager = load_reward_manager(config, _CharTokenizer())

        async def run_all():
            return await asyncio.gather(*(manager.run_single(data[i : i + 1]) for i in range(len(data))))

        start = time.monotonic()
        outputs = loop.run_until_complete(run_all())
        elapsed = time.monotonic() - start
    finally:
        math_reward.score_response = original
        asyncio.set_event_loop(None)
        loop.close()
    assert [o["reward_score"] for o in outputs] == expected
    assert outputs[1]["reward_extra_info"]["verify_timeout"] == 1.0
    assert all(set(o["reward_extra_info"]) == set(outputs[0]["reward_extra_info"]) for o in outputs)
    assert thread_names and threading.main_thread().name not in thread_names  # called from worker threads
    assert elapsed < 30


@pytest.mark.slow  # starts a private Ray cluster (~15 s on 2 cores)
def test_timeout_inside_a_ray_async_actor():
    """verl's RewardLoopWorker is an async Ray actor calling compute_score through run_in_executor."""
    import ray

    @ray.remote
    class RewardWorker:
        async def score(self, items):
            from sspo_verl.reward.math_reward import compute_score

            loop = asyncio.get_running_loop()
            start = time.monotonic()
            calls = [
                loop.run_in_executor(None, lambda s=s, g=g: compute_score("aime24", s, g, timeout_s=1.0))
                for s, g in items
            ]
            outs = await asyncio.gather(*calls)
            return [o["score"] for o in outs], [o["verify_timeout"] for o in outs], time.monotonic() - start

    items = [(r"\boxed{1/2}", "0.5"), (r"\boxed{9^{9^{9^{9^{9}}}}}", "1"), (r"\boxed{3}", "4"), ("no box", "1")]
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        worker = RewardWorker.remote()
        for _ in range(2):  # the second round reuses the pool (one worker was killed and replaced)
            scores, timeouts, seconds = ray.get(worker.score.remote(items), timeout=120)
            assert scores == [1.0, 0.0, 0.0, 0.0] and timeouts == [0.0, 1.0, 0.0, 0.0]
            assert seconds < 60
    finally:
        ray.shutdown()


MARKER = "SSPO_REWARD_SIDE_EFFECT"


def _injections(marker):
    """Answers that would create ``marker`` if any part of the reward evaluated them as code."""
    m = str(marker)
    return {
        "__import__": rf"\boxed{{__import__('os').system('touch {m}')}}",
        "__import__ bare": rf"\boxed{{__import__('pathlib').Path('{m}').touch()}}",
        "eval": rf"\boxed{{eval(\"open('{m}','w')\")}}",
        "exec": rf"\boxed{{exec(\"import os; os.makedirs('{m}')\")}}",
        "parse_expr lambda": rf"\boxed{{(lambda: __import__('os').mkdir('{m}'))()}}",
        "sympy Function": rf"\boxed{{Function('system')('touch {m}')}}",
        "class mro": r"\boxed{().__class__.__base__.__subclasses__()}",
        "latex text": rf"\boxed{{\text{{__import__('os').system('touch {m}')}}}}",
        "1 MB string": r"\boxed{" + "1+" * 500_000 + "1}",
        "10k-deep latex": r"\boxed{" + r"\frac{1}{" * 10_000 + "2" + "}" * 10_000 + "}",
        "10k-deep braces": r"\boxed{" + "{" * 10_000 + "42" + "}" * 10_000 + "}",
    }


def test_injection_attempts_execute_nothing(pool, tmp_path):
    """No answer is ever evaluated as code: no marker file appears, in this process or in a verifier worker
    (whose working directory is this one's), and the pool still answers afterwards."""
    import os

    marker = tmp_path / MARKER
    for name, answer in _injections(marker).items():
        result = math_reward.score_response(answer, "42", timeout_s=1.0, pool=pool)
        assert result["score"] == 0.0, name
        assert not marker.exists() and not os.path.exists(MARKER), f"{name}: a side effect happened"
    assert math_reward.score_response(r"\boxed{\frac{1}{2}}", "0.5", pool=pool)["score"] == 1.0


def test_plain_numbers_are_decided_without_a_worker():
    class NoPool:
        def verify(self, *args, **kwargs):
            raise AssertionError("a plain number went to the verifier pool")

    assert math_reward.score_response(r"\boxed{3}", "2", pool=NoPool())["score"] == 0.0
    assert math_reward.score_response(r"\boxed{0.50}", "0.5", pool=NoPool())["score"] == 1.0
    assert math_reward.score_response(r"\boxed{-7}", "-7.0", pool=NoPool())["score"] == 1.0


def test_a_burst_of_pathological_answers_bounds_every_samples_wall_time():
    """16 answers that each cost a timeout, on 1 worker, from 8 threads at once (as verl's reward loop calls):
    without a bound on the queue wait the last would wait ~16 timeouts; with it every sample, queue included,
    ends within max_wait_s + timeout_s + a worker's replacement, and numeric answers in the burst still score."""
    from concurrent.futures import ThreadPoolExecutor

    timeout_s, max_wait_s = 0.5, 1.0
    hang = [(r"\boxed{9^{9^{9^{9^{" + str(i + 2) + "}}}}}", "1") for i in range(16)]
    plain = [(r"\boxed{" + str(i) + "}", str(i)) for i in range(8)]

    def timed(pair):
        start = time.monotonic()
        result = math_reward.score_response(pair[0], pair[1], timeout_s=timeout_s, pool=burst_pool,
                                            max_wait_s=max_wait_s)
        return time.monotonic() - start, result

    with VerifierPool(num_procs=1) as burst_pool:
        burst_pool.verify("1", "1", timeout_s=60)  # started: start-up is not the burst's
        with ThreadPoolExecutor(max_workers=8) as executor:
            timings = list(executor.map(timed, hang + plain))
    worst = max(t for t, _ in timings)
    assert worst < max_wait_s + timeout_s + 6.0, f"a sample took {worst:.1f} s"  # 6 s: a worker's start, loaded
    assert all(r["score"] == 0.0 and r["verify_timeout"] == 1.0 for _, r in timings[:16])
    assert all(r["score"] == 1.0 for _, r in timings[16:])
