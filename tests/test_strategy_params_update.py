"""update_strategy_params (an optimizer trial's few changed keys validated on top of a
validated set) gives what validating the whole set gives: the same values or the same error."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flushback.data.errors import ConfigError
from flushback.strategies.config import (
    strategy_param_specs,
    update_strategy_params,
    validate_strategy_params,
)


def _value(p):
    if p.choices is not None:
        return st.sampled_from(list(p.choices) + ["nonsense"])
    if p.type is int:
        lo = int(p.low) if p.low is not None else -5
        hi = int(p.high) if p.high is not None else 500
        return st.integers(lo - 2, hi + 2)
    if p.type is float:
        lo = float(p.low) if p.low is not None else -1.0
        hi = float(p.high) if p.high is not None else 10.0
        return st.floats(lo - 0.5, hi + 0.5, allow_nan=False)
    return st.just(p.default)


@pytest.mark.parametrize("kind", ["contrarian", "fear_greed_accumulation"])
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_update_equals_validating_everything(kind, data):
    specs = strategy_param_specs(kind)
    base = validate_strategy_params(kind, {})
    keys = data.draw(st.lists(st.sampled_from(sorted(specs)), min_size=1, max_size=4,
                              unique=True))
    changes = {k: data.draw(_value(specs[k])) for k in keys}
    if data.draw(st.booleans()):
        changes["not_a_parameter"] = 1
    try:
        want = validate_strategy_params(kind, {**base, **changes})
    except ConfigError as exc:
        with pytest.raises(ConfigError) as got:
            update_strategy_params(kind, base, changes)
        assert type(got.value) is type(exc)
        return
    assert update_strategy_params(kind, base, changes) == want
