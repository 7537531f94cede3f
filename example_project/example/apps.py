from django.apps import AppConfig


class ExampleConfig(AppConfig):
    name = "example"

    def ready(self) -> None:
        from . import receivers  # noqa: F401  (connects the receivers)
