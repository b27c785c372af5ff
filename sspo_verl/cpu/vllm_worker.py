"""verl's vLLM worker extension with a weight sync that works on vLLM's CPU platform (runs inside vLLM's workers).

verl's receiver (``vLLMColocateWorkerExtension.update_weights_from_ipc``) loads each bucket with
``model.load_weights`` into the live parameters and re-runs ``process_weights_after_loading`` at the end. On
vLLM's CPU platform that cannot work: the unquantized linear and embedding layers' ``process_weights_after_loading``
(``dispatch_cpu_unquantized_gemm``, vllm/model_executor/layers/utils.py) pack each weight into a oneDNN handle
that holds a **copy**, and replace ``layer.weight`` by an empty Parameter without a ``weight_loader``. verl's load
then fails (``'Parameter' object has no attribute 'weight_loader'``), and an in-place copy would leave the packed
copies stale. vLLM's own in-place reload (``GPUModelRunner.reload_weights``, and its IPC weight-transfer engine)
wraps the load in its layerwise reload: restore each layer's checkpoint-format parameters, buffer the incoming
tensors, and re-run that layer's ``process_weights_after_loading`` once all of them arrived. This extension does
exactly that around verl's own receiver (``BucketedWeightReceiver``) and verl's own per-bucket loader
(``_update_weights``), then checks that every layer with parameters received weights (a renamed or missing tensor
fails the sync instead of leaving that layer on stale weights).

Selected by :class:`sspo_verl.cpu.vllm_server.CPUvLLMHttpServer` through verl's ``_get_worker_extension_cls`` hook;
imported by vLLM in its worker processes (it imports vllm: never import it elsewhere). Full-weight sync of
unquantized models only: LoRA adapters and quantized / QAT models are refused at start-up by
:mod:`sspo_verl.cpu.vllm_checks`, and again here.
"""

from __future__ import annotations

import logging

import torch

from sspo_verl.cpu import vllm_distribution

vllm_distribution.install()  # verl's vllm_rollout package refuses to import without a 'vllm' distribution

from verl.workers.rollout.vllm_rollout.utils import vLLMColocateWorkerExtension  # noqa: E402

__all__ = ["WORKER_EXTENSION", "CPUWorkerExtension", "layers_without_weights"]

logger = logging.getLogger("sspo_verl.cpu")
if logger.level == logging.NOTSET:
    logger.setLevel(logging.INFO)

# What CPUvLLMHttpServer passes to vLLM as worker_extension_cls.
WORKER_EXTENSION = "sspo_verl.cpu.vllm_worker.CPUWorkerExtension"


def layers_without_weights(model: torch.nn.Module) -> list[str]:
    """Layers with parameters that are still waiting for their first tensor during a layerwise reload.

    Call between ``initialize_layerwise_reload`` and ``finalize_layerwise_reload``: vLLM's finalize puts such a
    layer's previous tensors back (with a warning), i.e. it would keep stale weights. Attention layers are not
    counted (vLLM processes them in finalize; their scales are not in a state dict), nor layers holding only
    buffers (the rotary embedding's cos/sin cache).
    """
    from vllm.model_executor.layers.attention import Attention, MLAAttention
    from vllm.model_executor.model_loader.reload.layerwise import get_layerwise_info

    missing = []
    for name, layer in model.named_modules():
        if isinstance(layer, (Attention, MLAAttention)) or not any(True for _ in layer.parameters(recurse=False)):
            continue
        info = get_layerwise_info(layer)
        if info.can_load() and info.load_numel == 0:
            missing.append(name or type(layer).__name__)
    return missing


class CPUWorkerExtension(vLLMColocateWorkerExtension):
    """verl's vLLM worker extension whose weight sync goes through vLLM's layerwise reload (CPU platform)."""

    def update_weights_from_ipc(self, peft_config: dict = None, base_sync_done=False, use_shm: bool = False):
        """Receive one full set of weights from the trainer (verl's bucketed transfer) and load it in place."""
        from verl.utils.vllm.vllm_quant_utils import is_quantized_model
        from verl.workers.rollout.vllm_rollout.bucketed_weight_transfer import BucketedWeightReceiver
        from vllm.model_executor.model_loader.reload import finalize_layerwise_reload, initialize_layerwise_reload

        vllm_config = self.model_runner.vllm_config
        if peft_config or self._is_qat_model or self._is_modelopt_qat or is_quantized_model(vllm_config):
            raise NotImplementedError(
                "sspo-verl's vLLM-CPU rollout syncs full weights of unquantized models only: LoRA adapters "
                "(actor_rollout_ref.model.lora_rank > 0), quantization and QAT are not supported on CPU."
            )
        if self.device is None:
            self.device = torch.device("cpu")
        model = self.model_runner.model
        initialize_layerwise_reload(model)
        received = {"tensors": 0, "bytes": 0}
        load_errors: list[BaseException] = []

        def on_bucket_received(weights, is_last):
            # The receiver's tensors are views of the shared-memory bucket, which the next bucket overwrites, while
            # the layerwise loader keeps them until all of a layer's tensors have arrived: copy them.
            weights = [(name, tensor.clone()) for name, tensor in weights]
            received["tensors"] += len(weights)
            received["bytes"] += sum(t.numel() * t.element_size() for _, t in weights)
            try:
                self._update_weights(weights, peft_config=None, base_sync_done=base_sync_done)
            except Exception as e:
                shapes = ", ".join(f"{name} {tuple(t.shape)}" for name, t in weights[:3])
                load_errors.append(RuntimeError(
                    f"vLLM-CPU weight sync: the rollout model could not load a bucket of {len(weights)} tensors from "
                    f"the trainer ({shapes}{', ...' if len(weights) > 3 else ''}): {type(e).__name__}: "
                    f"{str(e).rstrip('.')}. The actor and the rollout model must have the same architecture (check "
                    "engine_kwargs.vllm.hf_overrides and actor_rollout_ref.model.override_config)."
                ))
                raise load_errors[-1] from e

        receiver = BucketedWeightReceiver(zmq_handle=self._get_zmq_handle(), device=self.device, use_shm=use_shm)
        try:
            receiver.receive_weights(on_bucket_received=on_bucket_received)
        except BaseException:
            # verl's receiver cleans up in `finally`; after a failed load that cleanup itself fails ("cannot close
            # exported pointers exist": the bucket's views are still alive), which would hide the real error.
            if load_errors:
                raise load_errors[0]  # (its cause is the loader's error)
            raise
        missing = layers_without_weights(model)
        finalize_layerwise_reload(model, vllm_config.model_config)
        if missing:
            raise RuntimeError(
                f"vLLM-CPU weight sync: no tensor arrived for {len(missing)} layer(s) with parameters "
                f"({', '.join(missing[:8])}{', ...' if len(missing) > 8 else ''}), so the rollout would keep their "
                f"previous weights. The trainer sent {received['tensors']} tensors; the actor's parameter names "
                "must match the rollout model's (same architecture and checkpoint)."
            )
        logger.debug("vLLM-CPU weight sync: %d tensors (%d bytes) reloaded layerwise", received["tensors"],
                     received["bytes"])
