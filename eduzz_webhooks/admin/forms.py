"""The period, and the course, that the insight page covers."""

from __future__ import annotations

import datetime as dt
import html
from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.forms.renderers import BaseRenderer
from django.forms.utils import flatatt
from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import SafeString, mark_safe
from django.utils.translation import gettext_lazy as _

from ..models import Course
from ..payloads import KEPT_YEARS

DEFAULT_PERIOD_DAYS = 30
MAX_PERIOD_DAYS = 366  # one bar per day: beyond a year the bars get too thin to read


class DatePicker(forms.DateInput):
    input_type = "date"  # the browser's own date picker; it submits ISO dates

    def __init__(self) -> None:
        super().__init__(format="%Y-%m-%d")


class CourseSelect(forms.Select):
    """A select whose options are written in one go, not through a template each.

    A site may have thousands of courses: Django's template per option then
    takes most of the page's time.
    """

    def render(
        self,
        name: str,
        value: Any,
        attrs: dict[str, Any] | None = None,
        renderer: BaseRenderer | None = None,
    ) -> SafeString:
        chosen = "" if value is None else str(value)
        # html.escape, not Django's lazy-aware escape: this runs once per course.
        options = "".join(
            f'<option value="{html.escape(str(key))}"{" selected" if str(key) == chosen else ""}>'
            f"{html.escape(str(label))}</option>"
            for key, label in self.choices
        )
        return format_html(
            '<select name="{}"{}>{}</select>',
            name,
            flatatt(self.build_attrs(self.attrs, attrs)),
            mark_safe(options),  # noqa: S308 (every value above is escaped)
        )


def whole_days(start: dt.date | None, end: dt.date | None) -> dict[str, Any]:
    """The days from ``start`` to ``end`` and the instants that bound them, in the current zone.

    A missing ``end`` is today, a missing ``start`` makes a period of
    ``DEFAULT_PERIOD_DAYS``. Raises ``ValidationError`` for a period the page
    can't show.
    """
    tz = timezone.get_current_timezone()
    try:
        last: dt.date = end or timezone.localdate()
        first: dt.date = start or last - dt.timedelta(days=DEFAULT_PERIOD_DAYS - 1)
    except OverflowError:
        first = last = dt.date.min
    # Only the days of the dates the app keeps: their bounds exist in every zone.
    if first.year not in KEPT_YEARS or last.year not in KEPT_YEARS:
        raise ValidationError(_("These dates are out of range."), code="range")
    since = dt.datetime.combine(first, dt.time.min, tzinfo=tz)
    until = dt.datetime.combine(last + dt.timedelta(days=1), dt.time.min, tzinfo=tz)
    if first > last:
        raise ValidationError(_("The start date must not be after the end date."), code="reversed")
    if (last - first).days >= MAX_PERIOD_DAYS:
        raise ValidationError(
            _("Choose a period of at most %(days)d days."),
            code="too_long",
            params={"days": MAX_PERIOD_DAYS},
        )
    return {"start": first, "end": last, "since": since, "until": until}


class PeriodForm(forms.Form):
    """Whole days in the current time zone, both ends included; default: the last 30 days.

    Cleaned, it holds the days (``start``, ``end``), the instants that bound
    them (``since`` included, ``until`` excluded), the ``course`` (or None:
    every course), and whether the dates were ``chosen`` or are the default.
    """

    start = forms.DateField(label=_("From"), required=False, widget=DatePicker())
    end = forms.DateField(label=_("To"), required=False, widget=DatePicker())
    course = forms.ModelChoiceField(
        Course.objects.order_by("title", "hash"),
        label=_("Course"),
        required=False,
        empty_label=_("All courses"),
        widget=CourseSelect,
    )

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if self.errors:
            return cleaned
        start, end = cleaned.get("start"), cleaned.get("end")
        return {
            **whole_days(start, end),
            "course": cleaned.get("course"),
            "chosen": bool(start or end),
        }
