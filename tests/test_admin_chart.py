"""The insight chart's geometry (admin/chart.py): value steps, date labels, scaling."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import translation

from eduzz_webhooks.admin import chart


def days(first, count):
    return [first + dt.timedelta(days=n) for n in range(count)]


@pytest.mark.parametrize(
    ("peak", "step"),
    [(0, 1), (1, 1), (4, 1), (5, 1), (6, 2), (10, 2), (11, 5), (47, 10), (180, 50), (5500, 2000)],
)
def test_value_axis_steps_are_round(peak, step):
    assert chart.nice_step(peak) == step


def test_value_axis_tops_at_a_step_above_the_busiest_day():
    drawn = chart.draw([(day, 47, 30, "") for day in days(dt.date(2024, 3, 1), 3)])
    assert [tick.value for tick in drawn.value_ticks] == [0, 10, 20, 30, 40, 50]
    assert drawn.value_ticks[-1].y == str(chart.TOP) + ".0"


def test_a_month_is_labelled_weekly_back_from_its_last_day():
    with translation.override("en"):
        ticks = chart.date_ticks(days(dt.date(2024, 3, 2), 30), chart.PLOT_WIDTH / 30)
    assert [t.label for t in ticks] == ["March 3", "March 10", "March 17", "March 24", "March 31"]
    assert [t.year for t in ticks] == ["2024", "", "", "", ""]
    # The last label would cross the right edge centred on its day: it ends there instead.
    assert [t.anchor for t in ticks] == ["middle"] * 4 + ["end"]


def test_a_year_is_labelled_by_month_with_each_new_year():
    with translation.override("pt-br"):
        ticks = chart.date_ticks(days(dt.date(2024, 12, 15), 366), chart.PLOT_WIDTH / 366)
    assert [(t.label.lower(), t.year) for t in ticks[:2]] == [
        ("janeiro", "2025"),
        ("fevereiro", ""),
    ]
    assert len(ticks) == 12


def test_markers_only_while_days_are_wide_enough_to_tell_apart():
    assert chart.draw([(day, 1, 1, "") for day in days(dt.date(2024, 1, 1), 30)]).markers
    assert not chart.draw([(day, 1, 1, "") for day in days(dt.date(2024, 1, 1), 366)]).markers
