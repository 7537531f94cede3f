"""The insight page's chart: downloads (bars) and distinct learners (a line) per day, as SVG.

Only geometry is computed here; the template draws it. Every coordinate is a
string already, because a template would localize a number ("0,5" in pt-BR),
which SVG can't read.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass

from django.utils import dateformat
from django.utils.formats import get_format

# The drawing's own units; the SVG scales to the page's width, text with it.
WIDTH = 960
HEIGHT = 300
LEFT = 56  # room for the value axis' numbers and title
RIGHT = 12
TOP = 12
BOTTOM = 52  # room for the dates, their years and the time axis' title
PLOT_WIDTH = WIDTH - LEFT - RIGHT
PLOT_HEIGHT = HEIGHT - TOP - BOTTOM
VALUE_TICKS = 5  # at most, above zero
DATE_ROOM = 100  # the width a date label needs ("30 de setembro")
MONTHS_BEYOND = 92  # days: longer periods get one date label a month
MARKERS_FROM = 8  # slot width: narrower days get the line without its dots


def number(value: float) -> str:
    """A coordinate as SVG reads it, whatever the language."""
    return f"{value:.1f}"


@dataclass(frozen=True)
class Day:
    """One day: its figures, where the list shows its downloads, and its shapes."""

    day: dt.date
    downloads: int
    learners: int
    url: str
    slot_x: str  # the whole column, the area hovering or clicking hits
    slot_width: str
    bar_x: str
    bar_y: str
    bar_width: str
    bar_height: str
    point_x: str  # the learners' point
    point_y: str


@dataclass(frozen=True)
class ValueTick:
    value: int
    y: str


@dataclass(frozen=True)
class DateTick:
    label: str
    year: str  # only under the first label and the first of each new year
    x: str
    anchor: str  # where the text hangs from x: "middle", or "end" near the right edge


@dataclass(frozen=True)
class Chart:
    days: list[Day]
    value_ticks: list[ValueTick]
    date_ticks: list[DateTick]
    line: str  # the learners' polyline points
    markers: bool
    view_box: str = f"0 0 {WIDTH} {HEIGHT}"
    left: str = str(LEFT)
    right: str = str(LEFT + PLOT_WIDTH)
    top: str = str(TOP)
    bottom: str = str(TOP + PLOT_HEIGHT)
    plot_height: str = str(PLOT_HEIGHT)
    tick_end: str = str(TOP + PLOT_HEIGHT + 5)  # the date ticks' marks, below the axis
    value_title_x: str = number(14)
    value_title_y: str = number(TOP + PLOT_HEIGHT / 2)
    date_title_x: str = number(LEFT + PLOT_WIDTH / 2)
    date_title_y: str = number(HEIGHT - 4)


def nice_step(peak: int) -> int:
    """The value axis' step: 1, 2 or 5 times a power of ten, at most ``VALUE_TICKS`` steps."""
    raw = max(peak, 1) / VALUE_TICKS
    power = int(10 ** max(math.floor(math.log10(raw)), 0))
    return next(m * power for m in (1, 2, 5, 10) if m * power >= raw)


def draw(figures: list[tuple[dt.date, int, int, str]]) -> Chart:
    """The chart of ``(day, downloads, learners, url)`` rows, one a day, in order."""
    most = max((downloads for _, downloads, _, _ in figures), default=0)
    step = nice_step(most)
    peak = max(step * math.ceil(most / step), step)  # the top of the value axis
    slot = PLOT_WIDTH / len(figures)

    def y(value: int) -> float:
        return TOP + PLOT_HEIGHT * (1 - value / peak)

    days = []
    for index, (day, downloads, learners, url) in enumerate(figures):
        x = LEFT + slot * index
        days.append(
            Day(
                day=day,
                downloads=downloads,
                learners=learners,
                url=url,
                slot_x=number(x),
                slot_width=number(slot),
                bar_x=number(x + slot * 0.15),
                bar_y=number(y(downloads)),
                bar_width=number(slot * 0.7),
                bar_height=number(PLOT_HEIGHT * downloads / peak),
                point_x=number(x + slot / 2),
                point_y=number(y(learners)),
            )
        )
    return Chart(
        days=days,
        value_ticks=[
            ValueTick(value=value, y=number(y(value))) for value in range(0, peak + 1, step)
        ],
        date_ticks=date_ticks([day for day, *_ in figures], slot),
        line=" ".join(f"{d.point_x},{d.point_y}" for d in days),
        markers=slot >= MARKERS_FROM,
    )


def date_ticks(days: list[dt.date], slot: float) -> list[DateTick]:
    """Labels under the days: every few days, counted back from the last, or each month's 1st.

    The year goes under the first label and under the first of each new year.
    """
    if len(days) > MONTHS_BEYOND:
        labelled = [i for i, day in enumerate(days) if day.day == 1]
        style = "F"
    else:
        every = next(n for n in (1, 2, 7, 14, 28) if n * slot >= DATE_ROOM or n == 28)
        labelled = list(range(len(days) - 1, -1, -every))[::-1]
        style = str(get_format("MONTH_DAY_FORMAT"))
    ticks = []
    year = None
    for index in labelled:
        day = days[index]
        x = LEFT + slot * (index + 0.5)
        ticks.append(
            DateTick(
                label=dateformat.format(day, style),
                year=str(day.year) if day.year != year else "",
                x=number(x),
                anchor="end" if x + DATE_ROOM / 2 > WIDTH else "middle",
            )
        )
        year = day.year
    return ticks
