"""The period the insight page covers."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from ..payloads import EARLIEST, LATEST

DEFAULT_PERIOD_DAYS = 30
MAX_PERIOD_DAYS = 366  # one bar per day: beyond a year the bars get too thin to read


class DatePicker(forms.DateInput):
    input_type = "date"  # the browser's own date picker; it submits ISO dates

    def __init__(self) -> None:
        super().__init__(format="%Y-%m-%d")


class PeriodForm(forms.Form):
    """Whole days in the current time zone, both ends included; default: the last 30 days.

    Cleaned, it holds the days (``start``, ``end``) and the instants that bound
    them (``since`` included, ``until`` excluded).
    """

    start = forms.DateField(label=_("From"), required=False, widget=DatePicker())
    end = forms.DateField(label=_("To"), required=False, widget=DatePicker())

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if self.errors:
            return cleaned
        tz = timezone.get_current_timezone()
        try:
            end: dt.date = cleaned.get("end") or timezone.localdate()
            start: dt.date = cleaned.get("start") or end - dt.timedelta(
                days=DEFAULT_PERIOD_DAYS - 1
            )
            since = dt.datetime.combine(start, dt.time.min, tzinfo=tz)
            until = dt.datetime.combine(end + dt.timedelta(days=1), dt.time.min, tzinfo=tz)
            # Only instants every time zone can show (the database compares in UTC).
            in_range = since >= EARLIEST and until <= LATEST
        except OverflowError:
            in_range = False
        if not in_range:
            raise ValidationError(_("These dates are out of range."), code="range")
        if start > end:
            raise ValidationError(
                _("The start date must not be after the end date."), code="reversed"
            )
        if (end - start).days >= MAX_PERIOD_DAYS:
            raise ValidationError(
                _("Choose a period of at most %(days)d days."),
                code="too_long",
                params={"days": MAX_PERIOD_DAYS},
            )
        return {"start": start, "end": end, "since": since, "until": until}
