"""sspo_verl.root_cause: the exception line of each traceback a Ray process prints, with the process, as Ray's log
stream hands them to the driver (the batches below are shaped as Ray 2.60's are); the earliest is the cause."""

from __future__ import annotations

from sspo_verl.root_cause import ErrorWatch


def _batch(actor, pid, *lines):
    return {"ip": "10.0.0.1", "pid": pid, "job": "01000000", "is_err": True, "lines": list(lines),
            "actor_name": actor, "task_name": None}


def test_the_first_traceback_names_its_process_and_error_and_vllm_prefixes_are_read():
    watch = ErrorWatch()
    watch(_batch("vLLMHttpServer", 4242, "INFO 12-06 12:00:00 [core.py:90] step 6",
                 "ERROR 12-06 12:00:01 [async_llm.py:480] AsyncLLM output_handler failed.",
                 "ERROR 12-06 12:00:01 [async_llm.py:480] Traceback (most recent call last):",
                 'ERROR 12-06 12:00:01 [async_llm.py:480]   File "async_llm.py", line 470, in output_handler',
                 "ERROR 12-06 12:00:01 [async_llm.py:480]     outputs = await engine_core.get_output_async()",
                 "ERROR 12-06 12:00:01 [async_llm.py:480] vllm.v1.engine.exceptions.EngineDeadError: EngineCore "
                 "encountered an issue. See stack trace (above) for the root cause."))
    watch(_batch("TaskRunner", 77, "Traceback (most recent call last):", '  File "trainer.py", line 1', "    x()",
                 "RuntimeError: Sync replay buffer selected terminal groups with no materializable trajectories."))
    first = watch.first_cause()
    assert (first.process, first.pid) == ("vLLMHttpServer", "4242")
    assert first.error.startswith("vllm.v1.engine.exceptions.EngineDeadError: EngineCore encountered an issue")
    assert [e.process for e in watch.errors] == ["vLLMHttpServer", "TaskRunner"]


def test_a_subprocess_named_on_its_lines_is_the_process_and_lines_outside_a_traceback_are_not_errors():
    watch = ErrorWatch()
    watch(_batch("vLLMHttpServer", 4242, "(EngineCore_DP0 pid=4300) ValueError: not in a traceback",
                 "(EngineCore_DP0 pid=4300) Traceback (most recent call last):",
                 '(EngineCore_DP0 pid=4300)   File "core.py", line 1',
                 "(EngineCore_DP0 pid=4300) torch.OutOfMemoryError: CPU out of memory"))
    (only,) = watch.errors
    assert str(only) == ("EngineCore_DP0 (in vLLMHttpServer pid 4242) (pid 4300): "
                         "torch.OutOfMemoryError: CPU out of memory")


def test_errors_older_than_the_window_are_not_the_cause_and_a_bad_batch_never_raises():
    watch = ErrorWatch()
    watch(_batch("WorkerDict", 1, "Traceback (most recent call last):", "KeyError: 'x'"))
    assert watch.first_cause(within_s=300, now=watch.errors[0].at + 301) is None
    assert watch.first_cause(within_s=300, now=watch.errors[0].at + 1).error == "KeyError: 'x'"
    watch({"lines": None})
    watch("not a dict")  # Ray's log thread calls the watch: nothing it is given may raise
