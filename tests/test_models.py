from __future__ import annotations

import datetime as dt

import pytest
from django.test import override_settings

from eduzz_webhooks.testing import FileDownloadFactory

pytestmark = pytest.mark.django_db


@override_settings(TIME_ZONE="America/Sao_Paulo")
def test_a_downloads_title_shows_the_sites_time_zone():
    download = FileDownloadFactory(downloaded_at=dt.datetime(2023, 9, 25, 19, 4, tzinfo=dt.UTC))
    assert str(download).endswith(" · 2023-09-25 16:04")  # UTC-3, as its field shows
