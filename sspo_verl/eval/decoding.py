"""Decoding settings of an evaluation: validated once, recorded in every results file."""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class DecodingConfig:
    """How answers are sampled.

    Attributes:
        temperature: 0 means greedy decoding (default, the usual zero-RL report: SimpleRL-Zoo and Dr. GRPO
            evaluate Qwen2.5-Math greedily with 3000 new tokens).
        top_p: nucleus sampling mass (1.0 = off). Ignored when greedy.
        top_k: top-k sampling (-1 = off). Ignored when greedy.
        n: samples per problem. Greedy needs n = 1; sampled runs report avg@n.
        max_new_tokens: generation budget per answer; answers cut by it count as they are (usually wrong).
        seed: sampling seed (vLLM per-request seed; torch seed for HF).
        pass_k: k values for unbiased pass@k, each <= n.
    """

    temperature: float = 0.0
    top_p: float = 1.0
    top_k: int = -1
    n: int = 1
    max_new_tokens: int = 3000
    seed: int = 0
    pass_k: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if self.temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.top_k == 0 or self.top_k < -1:
            raise ValueError(f"top_k must be -1 (off) or >= 1, got {self.top_k}")
        if self.n < 1:
            raise ValueError(f"n must be >= 1, got {self.n}")
        if self.greedy and self.n != 1:
            raise ValueError(
                f"greedy decoding (temperature 0) gives {self.n} identical answers; use n=1, or a temperature > 0 "
                "(e.g. --temperature 0.6 --top-p 0.95) for avg@n and pass@k"
            )
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {self.max_new_tokens}")
        bad = [k for k in self.pass_k if not 1 <= k <= self.n]
        if bad:
            raise ValueError(f"pass@k needs 1 <= k <= n={self.n}; got k={bad}. Raise --n or drop those k")

    @property
    def greedy(self) -> bool:
        return self.temperature == 0

    @property
    def metric_name(self) -> str:
        """What the table's numbers are: ``greedy`` accuracy or ``avg@n``."""
        return "greedy" if self.greedy else f"avg@{self.n}"

    def describe(self) -> str:
        if self.greedy:
            return f"greedy decoding, max {self.max_new_tokens} new tokens"
        top_k = f", top-k {self.top_k}" if self.top_k != -1 else ""
        return (
            f"{self.n} samples per problem at temperature {self.temperature}, top-p {self.top_p}{top_k}, "
            f"max {self.max_new_tokens} new tokens, seed {self.seed}"
        )

    def to_dict(self) -> dict:
        data = asdict(self)
        data["pass_k"] = list(self.pass_k)
        data["metric"] = self.metric_name
        return data

    @classmethod
    def from_dict(cls, data: dict) -> "DecodingConfig":
        fields = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        fields["pass_k"] = tuple(fields.get("pass_k", ()))
        return cls(**fields)
