"""TokenModel.add_many is add() of each call in turn, bit for bit."""

from __future__ import annotations

import random

from hermes_sdk.graph.token_model import TokenModel


def test_add_many_equals_add_one_by_one() -> None:
    rng = random.Random(4)
    calls = [(rng.randint(0, 9000), rng.randint(0, 900), rng.expovariate(3.0)) for _ in range(500)]
    one, many = TokenModel(), TokenModel()
    one.add(10, 2, 0.5)
    many.add(10, 2, 0.5)
    for x_in, x_out, y in calls:
        one.add(x_in, x_out, y)
    many.add_many(calls[:123])
    many.add_many([])
    many.add_many(iter(calls[123:]))
    assert [x.hex() for x in many._sums] == [x.hex() for x in one._sums]
    assert many.n == one.n == 501
    assert many.coef() is not None and (many.coef() == one.coef()).all()
