"""The provisioned-throughput cost estimate the console shows: the operator's hourly price per
model unit, over a commitment's term (730 h a month) or per hour without one."""

from __future__ import annotations

import pytest

from tailor.errors import InvalidInput
from tailor.services.deployments import COMMITMENT_MONTHS, CostEstimate, estimated_cost
from tailor.settings import Settings


@pytest.fixture
def priced(tmp_path) -> Settings:
    return Settings(home=tmp_path, model_unit_hourly_price=2.5, price_currency="EUR")


def test_no_price_configured_means_no_estimate(tmp_path):
    assert estimated_cost(Settings(home=tmp_path), 3, "OneMonth") is None


@pytest.mark.parametrize(("units", "commitment", "amount", "hours"), [
    (1, None, 2.5, 1),
    (4, None, 10.0, 1),
    (1, "OneMonth", 2.5 * 730, 730),
    (2, "SixMonths", 2 * 2.5 * 4380, 4380),
])
def test_units_times_price_times_the_term(priced, units, commitment, amount, hours):
    estimate = estimated_cost(priced, units, commitment)
    assert estimate == CostEstimate(amount=pytest.approx(amount), currency="EUR", hours=hours,
                                    hourly=pytest.approx(2.5 * units))


def test_commitments_are_the_ones_create_provisioned_throughput_takes(priced):
    assert set(COMMITMENT_MONTHS) == {"OneMonth", "SixMonths"}
    for commitment in COMMITMENT_MONTHS:
        assert estimated_cost(priced, 1, commitment) is not None


@pytest.mark.parametrize(("units", "commitment", "field"), [
    (0, None, "modelUnits"), (True, None, "modelUnits"), (1.5, None, "modelUnits"),
    (1, "OneYear", "commitmentDuration"),
])
def test_bad_input_names_its_field(priced, tmp_path, units, commitment, field):
    for settings in (priced, Settings(home=tmp_path)):  # checked whether or not a price is set
        with pytest.raises(InvalidInput) as caught:
            estimated_cost(settings, units, commitment)
        assert caught.value.param == field


def test_a_free_price_is_an_estimate_of_zero(tmp_path):
    assert estimated_cost(Settings(home=tmp_path, model_unit_hourly_price=0), 5, "OneMonth").amount == 0
