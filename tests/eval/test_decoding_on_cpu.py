"""Decoding settings are validated at start-up and round-trip through the results JSON."""

import pytest

from sspo_verl.eval.decoding import DecodingConfig


def test_defaults_are_greedy():
    d = DecodingConfig()
    assert d.greedy and d.metric_name == "greedy" and d.n == 1 and d.max_new_tokens == 3000
    assert "greedy" in d.describe()


def test_sampled_metric_and_round_trip():
    d = DecodingConfig(temperature=0.6, top_p=0.95, n=16, pass_k=(1, 4, 16), seed=3)
    assert d.metric_name == "avg@16"
    assert DecodingConfig.from_dict(d.to_dict()) == d
    assert "temperature 0.6" in d.describe() and "seed 3" in d.describe()


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"n": 4}, "greedy decoding"),
        ({"temperature": -1}, "temperature"),
        ({"temperature": 1.0, "top_p": 0}, "top_p"),
        ({"temperature": 1.0, "top_k": 0}, "top_k"),
        ({"temperature": 1.0, "n": 2, "pass_k": (4,)}, "pass@k"),
        ({"max_new_tokens": 0}, "max_new_tokens"),
    ],
)
def test_invalid_settings_fail_clearly(kwargs, message):
    with pytest.raises(ValueError, match=message):
        DecodingConfig(**kwargs)
